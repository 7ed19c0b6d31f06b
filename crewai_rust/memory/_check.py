"""``memory check``: is a store sound? One read of its tables against what a process would hold.

Why a module of its own, reading the tables directly: the persistence seam hides the
change log on purpose (readers only ask "what changed since n"), but a check has to
look at the log itself to tell whether another process would see what the table holds.
It only reads (in one snapshot: a SQLite read transaction, a PostgreSQL repeatable-read
one), except ``--repair``, which goes through the store's own ``restore``.

What it verifies, for a SQLite directory and a ``postgresql://`` URL alike:

* **rows**: every stored row decodes (JSON columns, an id) and its embedding is the
  store's dimension in finite float32 values; opening the store moved any unreadable
  row to the quarantine table, listed here (``--repair`` mends what it can);
* **index**: the in-RAM index an open builds holds exactly the table's records, each
  with the stored scope and the same embedding bytes;
* **change log**: numbers are gap-free up to the head, and the log's last word on each
  record (after the last reset, unless trimmed) agrees with the table: a record a
  writer changed without logging would never reach the other processes.

Output names the store by its location, never the URL's password.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_BATCH = 5_000


@dataclass
class Report:
    """Findings, each one line; any problem makes the exit status 1."""

    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def check(self, ok: bool, passed: str, problem: str) -> None:
        (self.passed if ok else self.problems).append(passed if ok else problem)


@dataclass
class _Snapshot:
    """The raw tables as of one moment, in backend-neutral form."""

    dim: int | None
    head: int
    trimmed_through: int
    log: list[tuple[int, str | None, str]]  # (num, record id, op) in number order
    rows: Callable[[], Iterator[list[tuple[str, str, str, str, bytes]]]]  # id, scope, cats, meta, embedding


# -- reading the tables -----------------------------------------------------------------
@contextmanager
def _sqlite_snapshot(path: Path) -> Iterator[_Snapshot]:
    from ._persistence import DB_FILENAME

    conn = sqlite3.connect(f"{(path / DB_FILENAME).as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one read transaction: every query below sees the same commit
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        log = [(int(n), rid, op) for n, rid, op in conn.execute("SELECT seq, record_id, op FROM changes ORDER BY seq")]

        def rows() -> Iterator[list[tuple[str, str, str, str, bytes]]]:
            last = -1
            while True:
                batch = conn.execute(
                    "SELECT rowid, id, scope, categories, metadata, embedding FROM records WHERE rowid > ?"
                    " ORDER BY rowid LIMIT ?", (last, _BATCH),
                ).fetchall()
                if not batch:
                    return
                last = batch[-1][0]
                yield [tuple(r[1:]) for r in batch]  # type: ignore[misc]

        yield _Snapshot(
            dim=int(meta["dim"]) if "dim" in meta else None,
            head=log[-1][0] if log else 0,
            trimmed_through=int(meta.get("trimmed_through", 0)),
            log=log, rows=rows,
        )
    finally:
        conn.close()


@contextmanager
def _pg_snapshot(url: str, namespace: str | None) -> Iterator[_Snapshot]:
    from .._postgres import PostgresUnavailableError, redact, require_psycopg, scrub
    from ._pg_persistence import _text, resolve

    psycopg = require_psycopg()
    from psycopg import sql

    url, namespace = resolve(url, namespace)
    s = sql.Identifier(namespace)
    try:
        conn = psycopg.connect(url, connect_timeout=10, application_name="crewai_rust-memory-check")
    except psycopg.Error as exc:
        raise PostgresUnavailableError(f"cannot connect to {redact(url)}: {scrub(str(exc), url)}") from None
    try:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        meta = dict(conn.execute(sql.SQL("SELECT key, value FROM {}.meta").format(s)).fetchall())
        head, trimmed = conn.execute(sql.SQL("SELECT num, trimmed_through FROM {}.head").format(s)).fetchone()
        log = [(int(n), rid, op) for n, rid, op in
               conn.execute(sql.SQL("SELECT num, record_id, op FROM {}.changes ORDER BY num").format(s))]

        def rows() -> Iterator[list[tuple[str, str, str, str, bytes]]]:
            last = ""
            while True:
                batch = conn.execute(
                    sql.SQL("SELECT id, scope, categories, metadata, embedding FROM {}.records WHERE id > %s"
                            " ORDER BY id LIMIT %s").format(s), (last, _BATCH),
                ).fetchall()
                if not batch:
                    return
                last = batch[-1][0]
                yield [(r[0], _text(r[1]), r[2], r[3], bytes(r[4])) for r in batch]

        yield _Snapshot(dim=int(meta["dim"]) if "dim" in meta else None, head=int(head),
                        trimmed_through=int(trimmed), log=log, rows=rows)
    finally:
        conn.close()


# -- the checks ---------------------------------------------------------------------------
def _check_log(snap: _Snapshot, report: Report) -> dict[str, str]:
    """Gap-free numbering up to the head; returns the log's last op per id since the last reset."""
    nums = [n for n, _, _ in snap.log]
    gaps = [(a, b) for a, b in zip(nums, nums[1:]) if b != a + 1]
    top = nums[-1] if nums else snap.trimmed_through
    report.check(
        not gaps and top == snap.head and (not nums or nums[0] > snap.trimmed_through),
        f"change log: {len(nums)} entries, numbered without gaps up to the head ({snap.head})",
        f"change log: numbers are not a gap-free run up to the head {snap.head} "
        f"(first gaps {gaps[:3]}, last entry {top}, trimmed through {snap.trimmed_through}); "
        "a reader could skip a change",
    )
    last: dict[str, str] = {}
    for _, rid, op in snap.log:
        if op == "r":
            last.clear()
        elif rid is not None:
            last[rid] = op
    return last


def _reset_seen(snap: _Snapshot) -> bool:
    return any(op == "r" for _, _, op in snap.log)


def run_check(store: Any, snapshot: Any, report: Report) -> int:
    """Compare the table (``snapshot``) with the open ``store``'s index; returns the rows seen."""
    index = store._index
    dim = snap_dim = snapshot.dim
    from ._quarantine import problem

    last = _check_log(snapshot, report)
    complete = snapshot.trimmed_through == 0 or _reset_seen(snapshot)  # the log covers every record's last write

    undecodable: list[str] = []
    nonfinite: list[str] = []
    index_off: list[str] = []
    unlogged: list[str] = []
    seen: set[str] = set()
    for batch in snapshot.rows():
        for rid, scope, cats, meta, emb in batch:
            seen.add(rid)
            why = problem(rid, cats, meta, emb, dim)
            if why is not None:
                undecodable.append(f"{rid!r}: {why}")
                continue
            vector = np.frombuffer(emb, dtype=np.float32)
            if not np.isfinite(vector).all():
                nonfinite.append(repr(rid))
            row = index.row_of.get(rid)
            if row is None:
                index_off.append(f"{rid!r} is stored but not in the index")
            elif index.matrix[row].tobytes() != emb or index.scopes.values[index.scope_codes[row]] != scope:
                index_off.append(f"{rid!r} differs between the table and the index")
            op = last.get(rid)
            if op == "d" or (op is None and complete):
                unlogged.append(rid)
    extra = [rid for rid in index.ids[: index.n] if rid not in seen]
    index_off.extend(f"{rid!r} is in the index but not stored" for rid in extra[:5])
    gone = [rid for rid, op in last.items() if op == "u" and rid not in seen]

    count = len(seen)
    report.check(not undecodable, f"rows: all {count} decode",
                 f"rows: {len(undecodable)} cannot be read back: " + "; ".join(undecodable[:5]))
    report.check(
        not nonfinite and (count == 0 or snap_dim is not None),
        f"dimension: {snap_dim if snap_dim is not None else 'not fixed yet'}"
        + (f", every embedding {snap_dim} finite float32 values" if count else ""),
        ("dimension: no stored dimension for a store with records" if snap_dim is None else
         f"dimension: {len(nonfinite)} embeddings hold NaN or infinity: {', '.join(nonfinite[:5])}"),
    )
    report.check(not index_off and index.n == count - len(undecodable),
                 f"index: {index.n} rows, the same records, scopes and embeddings as the table",
                 f"index: {index.n} rows for {count} stored; " + "; ".join(index_off[:5]))
    report.check(
        not unlogged and not gone,
        "change log agrees with the table" + ("" if complete else " (trimmed: records older than the log not checked)"),
        "change log disagrees with the table (another process would not see these changes): "
        + "; ".join(
            [f"{rid!r} stored, but the log's last word is a delete or nothing" for rid in unlogged[:5]]
            + [f"{rid!r} logged as saved, but not stored and no delete logged" for rid in gone[:5]]
        ),
    )
    return count


def _quarantine(store: Any, repair: bool, out: Callable[[str], None]) -> int:
    """List (and with ``repair`` mend) quarantined rows; returns how many remain."""
    from ._quarantine import problem, repaired

    rows = store._store.quarantined()
    dim = store.vector_dim
    restored = 0
    for qid, record_id, reason, when, categories, metadata, embedding in rows:
        status = ""
        if repair:
            cats, meta = repaired(categories, metadata)
            why = problem(record_id, cats, meta, embedding, dim)
            if why is not None:
                status = f"  [cannot repair: {why}]"
            elif store._store.restore(qid, cats, meta):
                status = "  [repaired]"
                restored += 1
            else:
                status = "  [kept: a record with this id exists]"
        out(f"{record_id!r}  quarantined {when}: {reason}{status}")
    store.refresh()
    return len(rows) - restored


def check(target: str | Path, *, namespace: str | None = None, repair: bool = False,
          out: Callable[[str], None] = print) -> int:
    """``memory check``: 0 when the store is sound and nothing is quarantined, else 1."""
    from . import RustMemoryStorage
    from ._seam import is_url

    url = is_url(target)
    if url:
        store = RustMemoryStorage(url=str(target), namespace=namespace, import_lancedb=False)
    else:
        store = RustMemoryStorage(Path(target), import_lancedb=False)
    report = Report()
    try:
        left = _quarantine(store, repair, out)
        with store._lock:  # nothing of ours moves the index while it is compared
            store.refresh()
            with (_pg_snapshot(str(target), namespace) if url else _sqlite_snapshot(Path(target))) as snap:
                if snap.head != store._seen:  # another process wrote meanwhile: the index may be off by that
                    out(f"note     the store changed while it was checked (change {store._seen} -> {snap.head}): "
                        "run it again when no writer is active if a problem shows")
                run_check(store, snap, report)
        for line in report.passed:
            out(f"ok       {line}")
        for line in report.problems:
            out(f"PROBLEM  {line}")
        out(f"{store.location}: {store.count()} records, {left} quarantined, "
            f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}")
    finally:
        store.close()
    return 1 if left or report.problems else 0

