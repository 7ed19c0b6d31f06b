"""How close a save of 100 x 3072 into a SQLite store can get to a third of stock LanceDB's save.

One process, every case once per round in alternating order (medians over the rounds): stock
LanceDB's save; ours (the compiled twin); ours above the seam alone (encode, rows and index, the
SQLite write replaced by nothing); the encode alone (reading the 307,200 Python floats into
float32 bytes, which any store must do); and raw writes of the same rows with no client work
above them, each one WAL transaction on a file beside ours (``synchronous=NORMAL``, 16 KiB pages,
as ours): our schema and statements (records, their three indexes and the change log), a table
of bare blobs with no index, and one row per batch holding all 100 vectors; and, under SQLite,
the page cache itself: the batch's bytes appended to a file in one ``write()``, and in SQLite's
WAL pattern (two writes per 16 KiB frame). The floor of a save is the cheapest raw SQLite write
plus ours above the seam; ``x stock`` below 3.0 on that sum means 3x is out of reach with a
SQLite commit of these bytes on this machine.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import interleaved_rounds, main, row  # noqa: E402
from bench_memory import _offline, _records, save_round_inputs  # noqa: E402

DIM = 3072
BATCH = 100
CASE = f"{BATCH} record(s) x {DIM} into 1k"
_FRAME_HEADER = 24  # bytes SQLite writes before each WAL frame's page


def _connect(path: Path, schema: str) -> sqlite3.Connection:
    from crewai_rust.memory._checkpoint import WRITER_AUTOCHECKPOINT_BYTES
    from crewai_rust.memory._persistence import NEW_STORE_PAGE_SIZE

    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(f"PRAGMA page_size={NEW_STORE_PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # as ours: no checkpoint inside a commit (ours checkpoints on a background thread)
    conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_BYTES // NEW_STORE_PAGE_SIZE}")
    conn.executescript(schema)
    return conn


def _raw_writers(tmp: Path) -> tuple[list[Any], dict[str, Callable[[list[Any]], None]]]:
    """(handles to close, name -> write(rows)) for the raw layouts, each one transaction."""
    from crewai_rust.memory._persistence import _SCHEMA, NEW_STORE_PAGE_SIZE

    ours = _connect(tmp / "raw-ours.sqlite3", _SCHEMA)
    bare = _connect(tmp / "raw-bare.sqlite3", "CREATE TABLE t(seq INTEGER PRIMARY KEY, embedding BLOB NOT NULL);")
    batches = _connect(tmp / "raw-batch.sqlite3",
                       "CREATE TABLE b(bid INTEGER PRIMARY KEY, ids TEXT NOT NULL, data BLOB NOT NULL);")
    fd = os.open(str(tmp / "raw-bytes"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    framed = os.open(str(tmp / "raw-frames"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    header = bytes(_FRAME_HEADER)

    def our_schema(rows: list[Any]) -> None:
        ours.execute("BEGIN IMMEDIATE")
        ours.executemany(
            "INSERT INTO records(id, content, scope, categories, metadata, importance, created_at, created_us,"
            " last_accessed, source, private, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(id) DO UPDATE SET embedding=excluded.embedding", rows)
        ours.executemany("INSERT INTO changes(record_id, op) VALUES (?, 'u')", [(r.id,) for r in rows])
        ours.execute("COMMIT")

    def bare_blobs(rows: list[Any]) -> None:
        bare.execute("BEGIN IMMEDIATE")
        bare.executemany("INSERT INTO t(embedding) VALUES (?)", [(r.embedding,) for r in rows])
        bare.execute("COMMIT")

    def one_row(rows: list[Any]) -> None:
        batches.execute("BEGIN IMMEDIATE")
        batches.execute("INSERT INTO b(ids, data) VALUES (?, ?)",
                        ("\n".join(r.id for r in rows), b"".join(r.embedding for r in rows)))
        batches.execute("COMMIT")

    def one_write(rows: list[Any]) -> None:
        os.write(fd, b"".join(r.embedding for r in rows))

    def frames(rows: list[Any]) -> None:
        pad = bytes(NEW_STORE_PAGE_SIZE - len(rows[0].embedding))
        for r in rows:
            os.write(framed, header)
            os.write(framed, r.embedding + pad)

    closers = [ours, bare, batches, fd, framed]
    return closers, {"raw: our schema, one commit": our_schema, "raw: bare blobs, no index": bare_blobs,
                     "raw: one row per batch": one_row, "page cache: one write()": one_write,
                     "page cache: WAL frame writes": frames}


def run(quick: bool) -> list[dict[str, Any]]:
    _offline()
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from crewai_rust import speedups_enabled
    from crewai_rust.memory import RustMemoryStorage
    from crewai_rust.memory._records import batch_encoder
    from crewai_rust.memory._storage import to_rows

    if not speedups_enabled():
        print("note: the compiled twin is not built; ours runs the Python twin", file=sys.stderr)
    rounds = 12 if quick else 30
    with tempfile.TemporaryDirectory(prefix="crewai_rust_bench_sqlite_floor_") as tmp_name:
        tmp = Path(tmp_name)
        stock = LanceDBStorage(path=str(tmp / "lance"))
        ours = RustMemoryStorage(tmp / "ours")
        above = RustMemoryStorage(tmp / "above", snapshot=False)
        seed = _records(1_000, DIM)
        for store in (stock, ours, above):
            store.save(seed)
        closers, raw = _raw_writers(tmp)
        seed_rows = to_rows(seed, DIM)
        for write in raw.values():
            for start in range(0, len(seed_rows), BATCH):
                write(seed_rows[start : start + BATCH])
        del seed, seed_rows
        real_upsert = above._store.upsert
        encode = batch_encoder(speedups_enabled())

        def above_only(records: list[Any]) -> None:
            above._store.upsert = lambda rows, dim, *a, **k: dim  # type: ignore[method-assign]
            try:
                above.save(records)
            finally:
                above._store.upsert = real_upsert  # type: ignore[method-assign]

        cases: dict[str, Callable[[list[Any]], Any]] = {
            "stock": stock.save, "sqlite": ours.save, "ours above the seam": above_only,
            "encode only": lambda records: encode([r.embedding for r in records])}
        names = [*cases, *raw]
        samples = interleaved_rounds(names, save_round_inputs(names, cases, raw, BATCH, DIM, seed=70_000), rounds)
        for handle in closers:
            if isinstance(handle, int):
                os.close(handle)
            else:
                handle.close()
        ours.close()
        above.close()
    out = [row("floor", CASE, name, values) for name, values in samples.items()]
    out.append(_floor_row(out))
    return out


def _floor_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The floor of a save: ours above the seam plus the cheapest raw SQLite write, per round."""
    by_name = {r["impl"]: r for r in rows}
    raw = min((r for r in rows if r["impl"].startswith("raw: ")), key=lambda r: r["median_s"])
    above = by_name["ours above the seam"]["median_s"]
    return row("floor", CASE, f"floor (above + {raw['impl'][5:]})", [above + raw["median_s"]])


if __name__ == "__main__":
    main(run)
