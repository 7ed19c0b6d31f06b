"""How close a durable PostgreSQL save of 100 x 1536 can get to half of stock LanceDB's save.

One process, every case once per round in alternating order (medians over the rounds), on a
durable throwaway cluster (``bench_memory_postgres._server``): stock LanceDB's save; ours on
PostgreSQL, durable and with ``synchronous_commit=off`` (``postgres-async``: measured only, to
size the fsync wait; never a default); ours above the seam alone (encode and index, the write
replaced by nothing); and the raw durable write transactions of the cheapest layouts tried, with
no client work above them: an empty commit (head row, 100 log entries), a binary COPY of the 100
rows into a table without indexes, and one row per batch holding all 100 vectors (TOAST).
The floor of a durable save is the cheapest raw write plus ours above the seam; ``x stock``
below 2.0 on that sum means 2x is out of reach with durable commits on this machine.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import interleaved_rounds, main, row  # noqa: E402
from bench_memory import _offline, _records, save_round_inputs  # noqa: E402
from bench_memory_postgres import _server  # noqa: E402

DIM = 1536
BATCH = 100
CASE = f"{BATCH} record(s) x {DIM} into 1k"
_COLUMNS = ("seq, id, content, scope, categories, metadata, importance, created_at, created_us, "
            "last_accessed, source, private, embedding")


def _raw_writers(url: str, schema: str) -> tuple[Any, dict[str, Any]]:
    """(connection, name -> write(rows)) for the raw layouts, each one durable transaction."""
    import psycopg

    from crewai_rust.memory._pg_copy import copy_payload

    conn = psycopg.connect(url, autocommit=True)
    s = f'"{schema}"'
    conn.execute(f"CREATE TABLE {s}.unindexed (LIKE {s}.records INCLUDING DEFAULTS)")
    conn.execute(f"ALTER TABLE {s}.unindexed ALTER COLUMN embedding SET STORAGE EXTERNAL,"
                 " SET (toast_tuple_target = 8160)")
    conn.execute(f"CREATE TABLE {s}.batches (bid bigserial PRIMARY KEY, ids text[] NOT NULL, data bytea NOT NULL)")
    conn.execute(f"ALTER TABLE {s}.batches ALTER COLUMN data SET STORAGE EXTERNAL")

    def prologue(rows: list[Any]) -> None:
        ids = [r.id for r in rows]
        conn.execute("BEGIN")
        conn.execute(f"UPDATE {s}.head SET num = num + %s", (len(ids),))
        conn.execute(f"INSERT INTO {s}.changes(num, record_id, op) SELECT (SELECT num FROM {s}.head) - %s + t.ord,"
                     " t.id, 'u' FROM unnest(%s::text[]) WITH ORDINALITY AS t(id, ord)", (len(ids), ids))

    def empty(rows: list[Any]) -> None:
        with conn.pipeline():
            prologue(rows)
            conn.execute("COMMIT")

    def unindexed(rows: list[Any]) -> None:
        with conn.pipeline():
            prologue(rows)
        with conn.cursor().copy(f"COPY {s}.unindexed({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(copy_payload(rows, range(len(rows))))
        conn.execute("COMMIT")

    def one_row(rows: list[Any]) -> None:
        with conn.pipeline():
            prologue(rows)
            conn.execute(f"INSERT INTO {s}.batches(ids, data) VALUES (%s, %s)",
                         ([r.id for r in rows], b"".join(r.embedding for r in rows)))
            conn.execute("COMMIT")

    return conn, {"raw: empty durable commit": empty, "raw: COPY, no index": unindexed,
                  "raw: one row per batch": one_row}


def run(quick: bool) -> list[dict[str, Any]]:
    _offline()
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from crewai_rust.memory import RustMemoryStorage

    rounds = 10 if quick else 30
    cluster, url = _server()
    try:
        with tempfile.TemporaryDirectory(prefix="crewai_rust_bench_floor_") as tmp:
            stock = LanceDBStorage(path=str(Path(tmp) / "lance"))
            ours = RustMemoryStorage(url=url, namespace="floor", snapshot=False)
            unsynced = RustMemoryStorage(url=url + "?options=-csynchronous_commit%3Doff", namespace="floor_async",
                                         snapshot=False)
            above = RustMemoryStorage(Path(tmp) / "above", snapshot=False)
            seed = _records(1_000, DIM)
            for store in (stock, ours, unsynced, above):
                store.save(seed)
            del seed
            conn, raw = _raw_writers(url, "floor")
            real_upsert = above._store.upsert

            def above_only(records: list[Any]) -> None:
                above._store.upsert = lambda rows, dim, *a, **k: dim  # type: ignore[method-assign]
                try:
                    above.save(records)
                finally:
                    above._store.upsert = real_upsert  # type: ignore[method-assign]

            cases: dict[str, Any] = {"stock": stock.save, "postgres": ours.save, "postgres-async": unsynced.save,
                                     "ours above the seam": above_only}
            names = [*cases, *raw]
            samples = interleaved_rounds(names, save_round_inputs(names, cases, raw, BATCH, DIM, seed=50_000), rounds)
            conn.close()
            for store in (ours, unsynced, above):
                store.close()
    finally:
        if cluster is not None:
            cluster.destroy()
    return [row("floor", CASE, name, values) for name, values in samples.items()]


if __name__ == "__main__":
    main(run)
