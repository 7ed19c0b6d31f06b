"""Durable record storage on SQLite: the source of truth behind the in-RAM index.

:class:`SQLiteRecordStore` implements the seam's :class:`~._seam.RecordStore`
with stdlib ``sqlite3`` in WAL mode. Every write appends to a ``changes`` log
with an autoincrement sequence, so each process applies only the deltas other
processes committed since its last read instead of reloading everything.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from . import _beside
from ._checkpoint import WRITER_AUTOCHECKPOINT_BYTES, Checkpointer
from ._quarantine import COPIED, QUARANTINE_SCHEMA
from ._seam import ChangeSet, FullRow, IndexRow, Keep, RecordRow, RecordStore

__all__ = ["ChangeSet", "IndexRow", "RecordRow", "RecordStore", "SQLiteRecordStore"]

#: File name inside the memory directory; LanceDB uses ``memories.lance/`` there.
DB_FILENAME = "crewai_rust_memory.sqlite3"

_SCHEMA_VERSION = "1"
#: Page size of a store created from now on. A record of 3072 floats is 12.3 KB: on 4 KiB pages
#: it is a leaf cell plus three overflow pages, so a save of 100 wrote over 300 WAL frames (two
#: write calls each) at COMMIT; on 16 KiB pages each record fills one page, with no overflow.
#: Measured (thread CPU, interleaved, Intel Xeon): 100 x 3072 -3% to -4% against 4 KiB, one record
#: +0.03 ms; 32 KiB pages saved 6% on 100 but made a one-record save 40% dearer (0.21 -> 0.29 ms)
#: and ``touch_records`` (every recall) 30% dearer, as every small write then copies 32 KiB pages.
NEW_STORE_PAGE_SIZE = 16_384
_BUSY_TIMEOUT_MS = 5_000
#: Change-log entries kept behind the head; a reader further behind reloads fully.
_CHANGES_KEPT = 20_000
_TRIM_EVERY = 2_000

RECORD_COLUMNS = (
    "id, content, scope, categories, metadata, importance, created_at, "
    "last_accessed, source, private, embedding, seq"
)

T = TypeVar("T")


class StoreUnreadableError(RuntimeError):
    """The database file exists but is not a readable crewai_rust memory store."""


class StoreDamagedError(StoreUnreadableError):
    """SQLite found damage in the store's file (at open or later); the message names the file."""


class StoreFileGoneError(StoreUnreadableError):
    """The store's file was deleted or replaced while the store was open; the write was not saved."""


_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_READONLY_CODE = 8


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_damage(exc: BaseException) -> bool:
    """True when SQLite says the file itself is damaged (not busy, not read-only)."""
    text = str(exc).lower()
    return _code(exc) in _CORRUPT_CODES or "malformed" in text or "not a database" in text


def advice(exc: BaseException) -> str:
    """What to do about an error opening or using the store: transient causes are not damage.

    Moving the file away is only right for damage: done while another process
    still writes (a lock) or on a read-only mount, it splits the store in two.
    """
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
        return ("another process holds the store's write lock; this is transient: retry later "
                "and do not move the file while it is in use. The file was left untouched.")
    if _code(exc) == _READONLY_CODE or "readonly" in text or "read-only" in text or "unable to open" in text:
        return ("the file or its directory is not writable (permissions, a read-only mount); fix that "
                "rather than moving the file. The file was left untouched.")
    if is_damage(exc):
        return ("the file is damaged. It was left untouched: keep a copy, then move it away to start "
                "a new store (or restore a backup).")
    return "The file was left untouched."


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    content TEXT NOT NULL,
    scope TEXT NOT NULL,
    categories TEXT NOT NULL,
    metadata TEXT NOT NULL,
    importance REAL NOT NULL,
    created_at TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    last_accessed TEXT NOT NULL,
    source TEXT,
    private INTEGER NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_scope ON records(scope);
CREATE INDEX IF NOT EXISTS records_created ON records(created_us);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT,
    op TEXT NOT NULL
);
""" + QUARANTINE_SCHEMA


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SQLiteRecordStore:
    """SQLite in WAL mode, one connection guarded by a lock, writers via ``BEGIN IMMEDIATE``.

    ``synchronous=NORMAL``: a killed process never loses a committed
    transaction (the WAL is written before commit returns); only a power cut
    may drop the last commits, and it never corrupts the file. That is the
    trade LanceDB makes too, at a fraction of the cost of an fsync per save.
    """

    #: ``upsert`` takes ``beside_commit``: a save's index update may run beside its COMMIT
    OVERLAPS_COMMIT = True

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_FILENAME
        self.location = str(self.path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            # A store dropped without close() (CrewAI does not always close its
            # storage) still releases its connection when it is collected, or at exit.
            weakref.finalize(self, _close_when_idle, self._lock, self._conn)
            self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            # Takes effect only while the file is still empty: existing stores keep their page size.
            self._conn.execute(f"PRAGMA page_size={NEW_STORE_PAGE_SIZE}")
            self._retry(lambda: self._conn.execute("PRAGMA journal_mode=WAL").fetchone())
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self.page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            self._conn.execute(f"PRAGMA wal_autocheckpoint={max(1, WRITER_AUTOCHECKPOINT_BYTES // self.page_size)}")
            with self.write() as cur:
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    cur.execute(statement)
                cur.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (_SCHEMA_VERSION,))
            version = self._one("SELECT value FROM meta WHERE key='schema'")
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            kind = StoreDamagedError if is_damage(exc) else StoreUnreadableError
            raise kind(f"cannot open the crewai_rust memory store {self.path}: {exc}; {advice(exc)}") from exc
        if version != _SCHEMA_VERSION:
            self._close_quietly()
            raise StoreUnreadableError(f"{self.path} has schema version {version!r}; expected {_SCHEMA_VERSION}")
        self._writes_since_trim = 0
        self._identity = _file_identity(self.path)
        #: (head before, head after, index rows) of this process's last save: a reader at the first
        #: number reaches the second without reading the rows back (see ``changes_since``)
        self._span: tuple[int, int, list[IndexRow]] | None = None
        self._checkpointer = Checkpointer(self.path)

    # -- plumbing ----------------------------------------------------------
    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` again while another process holds the write lock beyond the busy timeout.

        Damage found after the open is raised as :class:`StoreDamagedError` naming the file.
        """
        delay = 0.005
        deadline = time.monotonic() + 120.0
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.25)
            except sqlite3.DatabaseError as exc:
                if is_damage(exc):
                    raise StoreDamagedError(f"the crewai_rust memory store {self.path} is damaged: {exc}; "
                                            f"{advice(exc)}") from exc
                raise

    def _check_file(self) -> None:
        """Refuse to write when the file was unlinked or replaced: the write would be acknowledged and lost."""
        identity = getattr(self, "_identity", None)
        if identity is not None and _file_identity(self.path) != identity:
            raise StoreFileGoneError(
                f"the crewai_rust memory store file {self.path} was deleted or replaced while the store was open; "
                "nothing was written. Open the store again to start a new one there."
            )

    @contextmanager
    def write(self, beside: Callable[[], Callable[[], object] | None] | None = None) -> Iterator[sqlite3.Cursor]:
        """One write transaction; ``BEGIN IMMEDIATE`` takes the write lock up front (retried).

        ``beside``: called after the body; a job it returns runs on the ``_beside`` helper
        while this thread is in the COMMIT (which releases the GIL).
        """
        with self._lock:
            self._check_file()
            cur = self._conn.cursor()
            self._retry(lambda: cur.execute("BEGIN IMMEDIATE"))
            try:
                yield cur
            except BaseException:
                self._conn.rollback()
                raise
            job = beside() if beside is not None else None
            if job is None:
                self._retry(lambda: cur.execute("COMMIT"))
            else:
                _beside.beside(job, lambda: self._retry(lambda: cur.execute("COMMIT")))

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        """A read transaction: one consistent snapshot across several statements."""
        with self._lock:
            cur = self._conn.cursor()
            self._retry(lambda: cur.execute("BEGIN"))
            try:
                yield cur
            finally:
                self._conn.rollback()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            row = self._retry(lambda: self._conn.execute(sql, params).fetchone())
        return None if row is None else row[0]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only statement and return all rows."""
        with self._lock:
            return self._retry(lambda: self._conn.execute(sql, params).fetchall())

    # -- change log ----------------------------------------------------------
    def head(self) -> int:
        """The newest change sequence number (0 for a store never written)."""
        return int(self._one("SELECT COALESCE(MAX(seq), 0) FROM changes") or 0)

    def changes_since(self, seq: int, after_own_write: bool = False) -> ChangeSet:
        """Deltas committed after ``seq``, with the current rows of upserted records.

        ``after_own_write``: the caller has just saved and ``seq`` is where it started, so
        the changes up to that save's last number are exactly the rows it wrote: they are
        handed over instead of read back (later commits come with the next read).
        """
        span, self._span = self._span, None
        if after_own_write and span is not None and span[0] == seq:
            return ChangeSet(span[1], False, list(span[2]), [])
        with self._read() as cur:
            head = int(cur.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])
            if head <= seq:
                return ChangeSet(head, False, [], [])
            trimmed = cur.execute("SELECT value FROM meta WHERE key='trimmed_through'").fetchone()
            if trimmed is not None and int(trimmed[0]) > seq:
                return ChangeSet(head, False, [], [], stale=True)
            log = cur.execute("SELECT seq, record_id, op FROM changes WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
            reset = False
            last_op: dict[str, str] = {}
            for _, record_id, op in log:
                if op == "r":
                    reset = True
                    last_op.clear()
                else:
                    last_op[record_id] = op
            upsert_ids = [rid for rid, op in last_op.items() if op == "u"]
            deleted = [rid for rid, op in last_op.items() if op == "d"]
            upserted = []
            for chunk in _chunks(upsert_ids, 500):
                marks = ",".join("?" * len(chunk))
                upserted.extend(
                    cur.execute(
                        f"SELECT seq, id, scope, categories, metadata, embedding FROM records WHERE id IN ({marks})",
                        chunk,
                    ).fetchall()
                )
            found = {row[1] for row in upserted}
            deleted.extend(rid for rid in upsert_ids if rid not in found)  # deleted again since
            return ChangeSet(head, reset, upserted, deleted)

    def load_index_rows(self, batch: int = 20_000) -> tuple[int, int, Generator[list[IndexRow], None, None]]:
        """(change head, row count, batches of index rows in insertion order), one consistent snapshot.

        Batches keep peak memory near the matrix itself when a large store
        opens; the caller must exhaust or ``close()`` the generator.
        """
        snapshot = self._read()
        cur = snapshot.__enter__()
        try:
            head = int(self._retry(lambda: cur.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]))
            count = int(self._retry(lambda: cur.execute("SELECT COUNT(*) FROM records").fetchone()[0]))
            self._retry(lambda: cur.execute("SELECT seq, id, scope, categories, metadata, embedding FROM records ORDER BY seq"))
        except BaseException:
            snapshot.__exit__(None, None, None)
            raise

        def batches() -> Generator[list[IndexRow], None, None]:
            try:
                while True:
                    rows = self._retry(lambda: cur.fetchmany(batch))
                    if not rows:
                        return
                    yield rows
            finally:
                snapshot.__exit__(None, None, None)

        return head, count, batches()

    def _log(self, cur: sqlite3.Cursor, ids: Sequence[str], op: str) -> None:
        cur.executemany("INSERT INTO changes(record_id, op) VALUES (?, ?)", [(i, op) for i in ids])
        self._writes_since_trim += len(ids) or 1
        if self._writes_since_trim >= _TRIM_EVERY:
            self._writes_since_trim = 0
            head = int(cur.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])
            cut = head - _CHANGES_KEPT
            if cut > 0 and cur.execute("SELECT 1 FROM changes WHERE seq <= ? LIMIT 1", (cut,)).fetchone():
                cur.execute("DELETE FROM changes WHERE seq <= ?", (cut,))
                cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('trimmed_through', ?)", (str(cut),))

    # -- dimension -------------------------------------------------------------
    def get_dim(self) -> int | None:
        value = self._one("SELECT value FROM meta WHERE key='dim'")
        return None if value is None else int(value)

    @staticmethod
    def _check_dim(cur: sqlite3.Cursor, dim: int) -> int:
        """Fix the store's dimension on first write; return the stored one (caller compares)."""
        row = cur.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
        if row is None:
            cur.execute("INSERT INTO meta(key, value) VALUES ('dim', ?)", (str(dim),))
            return dim
        return int(row[0])

    # -- writes ----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        value = self._one("SELECT value FROM meta WHERE key=?", (key,))
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as cur:
            cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        with self.write() as cur:
            cur.execute("DELETE FROM meta WHERE key = ?", (key,))

    def upsert(
        self, rows: Sequence[RecordRow], dim: int, meta: dict[str, str] | None = None,
        quarantined: Sequence[tuple[RecordRow, str]] = (),
        beside_commit: Callable[[tuple[int, int, list[IndexRow]]], Callable[[], object] | None] | None = None,
    ) -> int:
        """Insert or replace records by id (and ``meta`` entries and ``quarantined`` rows, same transaction).

        Returns the store's dimension; on a mismatch nothing is written. ``beside_commit(span)``
        (span: see :meth:`_own_rows`) may return a job to run beside the COMMIT (``_beside``);
        it then takes the written rows, which ``changes_since`` no longer hands over.
        """
        jobs: list[Callable[[], object]] = []
        with self.write(lambda: jobs[0] if jobs else None) as cur:
            stored = self._check_dim(cur, dim)
            if stored != dim:
                return stored
            now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            cur.executemany(
                f"INSERT INTO quarantine(reason, quarantined_at, {COPIED}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        reason, now, r.id, r.content, r.scope, r.categories, r.metadata, r.importance,
                        r.created_at, r.created_us, r.last_accessed, r.source, int(r.private), r.embedding,
                    )
                    for r, reason in quarantined
                ],
            )
            for key, value in (meta or {}).items():
                cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
            before = cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
            cur.executemany(
                "INSERT INTO records(id, content, scope, categories, metadata, importance, created_at, created_us,"
                " last_accessed, source, private, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET content=excluded.content, scope=excluded.scope,"
                " categories=excluded.categories, metadata=excluded.metadata, importance=excluded.importance,"
                " created_at=excluded.created_at, created_us=excluded.created_us,"
                " last_accessed=excluded.last_accessed, source=excluded.source, private=excluded.private,"
                " embedding=excluded.embedding",
                rows,  # RecordRow is a tuple in the column order; sqlite3 stores a bool as the integer 0/1
            )
            ids = [r.id for r in rows]
            self._log(cur, ids, "u")
            span = self._own_rows(cur, rows, ids, int(before[0]) if before is not None else 0)
            job = beside_commit(span) if beside_commit is not None and span is not None else None
            if job is not None:
                jobs.append(job)
        self._span = None if jobs else span
        self._checkpointer.wrote(sum(len(r.embedding) + len(r.content) + len(r.metadata) + 256 for r in rows))
        return dim

    @staticmethod
    def _own_rows(
        cur: sqlite3.Cursor, rows: Sequence[RecordRow], ids: list[str], records_before: int
    ) -> tuple[int, int, list[IndexRow]] | None:
        """The span of log numbers this write just took and its index rows (ids and seqs only are read back).

        Under the write lock the log's AUTOINCREMENT numbers of one transaction are consecutive,
        and the records it inserted are exactly those numbered past ``records_before`` (the
        table's AUTOINCREMENT counter before it): one range read finds them (half the cost of
        100 id lookups); only ids that existed before (updated in place) are looked up by id.
        """
        if not ids:
            return None
        last = cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        if last is None:
            return None
        unique = list({r.id: r for r in rows}.values()) if len(set(ids)) != len(ids) else rows
        seqs: dict[str, int] = {rid: s for s, rid in cur.execute("SELECT seq, id FROM records WHERE seq > ?",
                                                                  (records_before,))}
        missing = [r.id for r in unique if r.id not in seqs]
        for chunk in _chunks(missing, 500):
            marks = ",".join("?" * len(chunk))
            seqs.update((rid, s) for s, rid in cur.execute(f"SELECT seq, id FROM records WHERE id IN ({marks})", chunk))
        head = int(last[0])
        written = [(int(seqs[r.id]), r.id, r.scope, r.categories, r.metadata, r.embedding) for r in unique]
        return head - len(ids), head, written

    def delete_ids(self, ids: Sequence[str]) -> int:
        """Delete records by id; returns how many existed."""
        if not ids:
            return 0
        deleted = 0
        with self.write() as cur:
            for chunk in _chunks(list(dict.fromkeys(ids)), 500):
                marks = ",".join("?" * len(chunk))
                gone = [r[0] for r in cur.execute(f"SELECT id FROM records WHERE id IN ({marks})", chunk)]
                if gone:
                    marks = ",".join("?" * len(gone))
                    cur.execute(f"DELETE FROM records WHERE id IN ({marks})", gone)
                    self._log(cur, gone, "d")
                    deleted += len(gone)
        return deleted

    def delete_matching(
        self, scope: str | None, older_than_us: int | None = None, keep: Keep | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Delete the records in ``scope`` created before ``older_than_us`` that ``keep`` accepts, in one transaction."""
        clause, params = scope_clause(scope)
        if older_than_us is not None:
            clause += " AND created_us < ?"
            params.append(older_than_us)
        return self.delete_where(clause, params, keep, ids)

    def delete_where(
        self,
        where: str,
        params: Sequence[Any],
        keep: Callable[[str, str], bool] | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Delete the records matching ``where`` (and ``keep(categories, metadata)``), in ONE write transaction.

        Selecting and deleting under the same write lock means a record another
        process moved out of the scope meanwhile is never deleted: the move
        either committed before (the row no longer matches) or waits for us.
        With ``ids`` only those rows are looked up (by the unique id index).
        """
        deleted = 0
        with self.write() as cur:
            if ids is None:
                batches: Iterator[list[Any]] = iter([[]])
                sql = f"SELECT id, categories, metadata FROM records WHERE {where}"
            else:
                batches = _chunks(list(dict.fromkeys(ids)), 500)
            for chunk in batches:
                if ids is None:
                    rows = cur.execute(sql, list(params)).fetchall()
                else:
                    marks = ",".join("?" * len(chunk))
                    rows = cur.execute(
                        f"SELECT id, categories, metadata FROM records WHERE id IN ({marks}) AND ({where})",
                        [*chunk, *params],
                    ).fetchall()
                gone = [r[0] for r in rows if keep is None or keep(r[1], r[2])]
                for part in _chunks(gone, 500):
                    marks = ",".join("?" * len(part))
                    cur.execute(f"DELETE FROM records WHERE id IN ({marks})", part)
                    self._log(cur, part, "d")
                deleted += len(gone)
        return deleted

    def quarantine(self, bad: Sequence[tuple[str, str]]) -> int:
        """Move the records ``(id, reason)`` from ``records`` into ``quarantine``, in one transaction."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        moved = []
        with self.write() as cur:
            for record_id, reason in bad:
                cur.execute(
                    f"INSERT INTO quarantine(reason, quarantined_at, {COPIED}) SELECT ?, ?, {COPIED}"
                    " FROM records WHERE id = ?",
                    (reason, now, record_id),
                )
                if cur.rowcount:
                    cur.execute("DELETE FROM records WHERE id = ?", (record_id,))
                    moved.append(record_id)
            if moved:
                self._log(cur, moved, "d")
        return len(moved)

    def quarantined(self) -> list[tuple[Any, ...]]:
        """``(qid, id, reason, quarantined_at, categories, metadata, embedding)`` of every quarantined row."""
        return self.query(
            "SELECT qid, id, reason, quarantined_at, categories, metadata, embedding FROM quarantine ORDER BY qid"
        )

    def restore(self, qid: int, categories: str, metadata: str) -> bool:
        """Put a quarantined row back with mended columns; False when a record with its id exists now."""
        with self.write() as cur:
            row = cur.execute("SELECT id FROM quarantine WHERE qid = ?", (qid,)).fetchone()
            if row is None or cur.execute("SELECT 1 FROM records WHERE id = ?", (row[0],)).fetchone():
                return False
            cur.execute(
                f"INSERT INTO records({COPIED}) SELECT id, content, scope, ?, ?, importance, created_at,"
                " created_us, last_accessed, source, private, embedding FROM quarantine WHERE qid = ?",
                (categories, metadata, qid),
            )
            cur.execute("DELETE FROM quarantine WHERE qid = ?", (qid,))
            self._log(cur, [row[0]], "u")
        return True

    def reset_all(self) -> None:
        """Delete every record and forget the dimension (a new embedder may follow)."""
        with self.write() as cur:
            cur.execute("DELETE FROM records")
            cur.execute("DELETE FROM meta WHERE key='dim'")
            cur.execute("INSERT INTO changes(record_id, op) VALUES (NULL, 'r')")

    def touch(self, ids: Sequence[str], when: str) -> None:
        """Set ``last_accessed``; not logged, because the index does not hold it."""
        if not ids:
            return
        with self.write() as cur:
            for chunk in _chunks(list(ids), 500):
                marks = ",".join("?" * len(chunk))
                cur.execute(f"UPDATE records SET last_accessed=? WHERE id IN ({marks})", [when, *chunk])

    # -- reads -------------------------------------------------------------------
    def fetch(self, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """Full rows (``RECORD_COLUMNS``) for the given ids."""
        out: dict[str, tuple[Any, ...]] = {}
        for chunk in _chunks(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.query(f"SELECT {RECORD_COLUMNS} FROM records WHERE id IN ({marks})", chunk):
                out[row[0]] = row
        return out

    def list_rows(self, scope: str | None, limit: int, offset: int) -> list[FullRow]:
        """Rows of a scope, newest first (ties: last inserted first)."""
        clause, params = scope_clause(scope)
        return self.query(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE {clause} ORDER BY created_us DESC, seq DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    def count(self, scope: str | None) -> int:
        clause, params = scope_clause(scope)
        return int(self.query(f"SELECT COUNT(*) FROM records WHERE {clause}", params)[0][0])

    def scope_summary(self, scope: str | None) -> tuple[int, str | None, str | None]:
        """(records, ``created_at`` of the oldest, of the newest) in one snapshot."""
        clause, params = scope_clause(scope)
        with self._read() as cur:
            count, oldest_us, newest_us = cur.execute(
                f"SELECT COUNT(*), MIN(created_us), MAX(created_us) FROM records WHERE {clause}", params
            ).fetchone()
            if not count:
                return 0, None, None
            pick = f"SELECT created_at FROM records WHERE {clause} AND created_us = ? LIMIT 1"
            oldest = cur.execute(pick, [*params, oldest_us]).fetchone()[0]
            newest = cur.execute(pick, [*params, newest_us]).fetchone()[0]
        return int(count), oldest, newest

    def distinct_scopes(self, scope: str | None) -> list[str]:
        """Every distinct scope path at or below ``scope``, sorted."""
        clause, params = scope_clause(scope)
        return [r[0] for r in self.query(f"SELECT DISTINCT scope FROM records WHERE {clause} ORDER BY scope", params)]

    def category_counts(self, scope: str | None) -> list[tuple[str, int]]:
        """(categories JSON, number of records with exactly it) within a scope."""
        clause, params = scope_clause(scope)
        return [(c, int(n)) for c, n in self.query(
            f"SELECT categories, COUNT(*) FROM records WHERE {clause} GROUP BY categories", params
        )]

    def iter_rows(self, batch: int = 5_000) -> Generator[list[RecordRow], None, None]:
        """Every record as stored, in insertion order, in batches (``memory copy``)."""
        last = 0
        while True:
            rows = self.query(
                "SELECT seq, id, content, scope, categories, metadata, importance, created_at, created_us,"
                " last_accessed, source, private, embedding FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, batch),
            )
            if not rows:
                return
            last = rows[-1][0]
            yield [RecordRow(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], bool(r[11]), r[12])
                   for r in rows]

    def file_size(self) -> int:
        """Bytes on disk, WAL included."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return total

    def watch(self, callback: Callable[[int | None], bool | None]) -> None:
        """No wake-ups on SQLite: readers check the log head before every read, which is one cheap query."""

    def close(self) -> None:
        checkpointer = getattr(self, "_checkpointer", None)
        if checkpointer is not None:
            checkpointer.close()
        with self._lock:
            self._close_quietly()


def _close_when_idle(lock: threading.RLock, conn: sqlite3.Connection) -> None:
    """Close ``conn`` once no statement runs on it: sqlite3 crashes when a connection is closed
    under another thread's statement (a background snapshot writer recording its token at exit)."""
    with lock:
        conn.close()


def scope_clause(prefix: str | None) -> tuple[str, list[Any]]:
    """SQL for "scope is ``prefix`` or below it", path-aware: ``/a`` matches ``/a`` and ``/a/b``, never ``/ab``.

    Exact and case-sensitive (LIKE would fold ASCII case); the child test
    compares bytes, because SQLite's text ``substr`` stops at a NUL.
    """
    if not prefix:
        return "1=1", []
    child = prefix + "/"
    raw = child.encode("utf-8")
    return "(scope = ? OR (scope >= ? AND substr(CAST(scope AS BLOB), 1, ?) = ?))", [prefix, child, len(raw), raw]


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file, None when it is gone (as the DATABASE component checks)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
