"""``RustSQLiteWrapper``: one pooled, thread-safe SQLite handle for CrewAI's small databases."""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

from .._selection import implementation_name, twin
from ._errors import is_busy, with_path
from ._library import choose_rust, library_sharing
from . import _sqlpool_py

T = TypeVar("T")

_TX_MODES = {"deferred": "BEGIN DEFERRED", "immediate": "BEGIN IMMEDIATE", "exclusive": "BEGIN EXCLUSIVE"}
_live: weakref.WeakSet[RustSQLiteWrapper] = weakref.WeakSet()
#: Bumped in a forked child: SQLite connections must not cross a fork, and
#: comparing an int is cheaper than calling os.getpid() on every statement.
_process_generation = 0


def _after_fork_in_child() -> None:
    global _process_generation
    _process_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_open_lock = threading.Lock()
_open_files: dict[tuple[str, str], int] = {}


def _claim(path: str, implementation: str) -> Callable[[], None] | None:
    """Refuse to open a file another SQLite copy in this process has open.

    Only needed when the twins run on different SQLite library copies (see
    ``_library``): POSIX locks do not conflict within one process, so two copies
    on one file cannot see each other's locks, one may checkpoint and delete the
    WAL under the other and writes are lost. When both share one library
    instance, nothing is tracked. Returns the release callback, or None.
    """
    if path in ("", ":memory:") or library_sharing().shared:
        return None
    real = os.path.realpath(path)
    other = "python" if implementation == "rust" else "rust"
    with _open_lock:
        if _open_files.get((real, other), 0) > 0:
            raise sqlite3.ProgrammingError(
                f"{path!r} is already open in this process through the {other} twin; "
                "two SQLite libraries must not share a file in one process (lost writes). "
                "Use one implementation per file, or separate processes."
            )
        _open_files[(real, implementation)] = _open_files.get((real, implementation), 0) + 1

    def release() -> None:
        with _open_lock:
            left = _open_files.get((real, implementation), 0) - 1
            if left > 0:
                _open_files[(real, implementation)] = left
            else:
                _open_files.pop((real, implementation), None)

    return release


class ExecResult(NamedTuple):
    """What ``execute`` reports, as a ``sqlite3`` cursor would: rows changed and last rowid."""

    rowcount: int
    lastrowid: int | None


#: SQLite's busy timeout is a C int of milliseconds.
MAX_BUSY_TIMEOUT = (2**31 - 1) // 1000


class RustSQLiteWrapper:
    """A pool of SQLite connections to ``db_path`` (WAL, busy timeout with retry, cached statements).

    Every call checks a connection out for its duration, so threads do not
    queue behind one shared connection; the Rust twin releases the GIL while
    SQLite works. ``use_rust=None`` picks the Rust twin when it runs on the same
    SQLite library instance as stdlib ``sqlite3`` (the usual case: both link the
    system ``libsqlite3``), so files can be shared freely in-process. If they
    differ, ``None`` picks the Python twin; a forced ``use_rust=True`` file must
    then not be opened with stdlib ``sqlite3`` in this process (other processes
    are fine), and opening it with the Python twin is refused. Errors are
    Python's ``sqlite3`` exception classes under both twins. Inside
    ``with db.transaction():`` the calling thread's statements run on the
    transaction's connection.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        pool_size: int = 4,
        use_rust: bool | None = None,
        *,
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        statement_cache: int = 256,
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if not 0 <= busy_timeout <= MAX_BUSY_TIMEOUT:  # NaN fails too; SQLite takes an int of milliseconds
            raise ValueError(f"busy_timeout must be between 0 and {MAX_BUSY_TIMEOUT} seconds, got {busy_timeout}")
        self.db_path = os.fspath(db_path)
        self.pool_size = pool_size
        self.busy_timeout = float(busy_timeout)
        rust, why = choose_rust(use_rust)
        self.implementation = implementation_name(rust)
        #: Why this twin runs (e.g. the SQLite library check's outcome).
        self.implementation_reason = why
        factory: Callable[..., Any] = twin(_sqlpool_py.SqlitePool, rust)
        release = _claim(self.db_path, self.implementation)
        try:
            self._pool = factory(self.db_path, pool_size, self.busy_timeout, statement_cache, synchronous)
        except sqlite3.Error as exc:
            if release is not None:
                release()
            raise with_path(exc, self.db_path) from exc
        except BaseException:
            if release is not None:
                release()
            raise
        self._release = weakref.finalize(self, release) if release is not None else None
        self._local = threading.local()
        self._open_transactions = 0  # >0 while any thread has a transaction open
        self._count_lock = threading.Lock()
        self._savepoints = itertools.count(1)
        self._pid = os.getpid()
        self._generation = _process_generation
        _live.add(self)

    # -- plumbing -----------------------------------------------------------
    def _transaction_conn(self) -> Any:
        """The connection of this thread's open transaction, or None (cheap when none is open)."""
        if self._open_transactions:
            return getattr(self._local, "conn", None)
        return None

    def _check_process(self) -> None:
        if self._generation != _process_generation:
            raise sqlite3.ProgrammingError(
                f"this RustSQLiteWrapper for {self.db_path!r} was opened in process {self._pid}; "
                "open a new one after fork"
            )

    def _retry_busy(self, first: sqlite3.OperationalError, call: Callable[[], T]) -> T:
        """Retry an autocommit call that hit SQLITE_BUSY (it had no effect) until the busy timeout."""
        if not is_busy(first):
            raise first
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            time.sleep(delay)
            try:
                return call()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() + delay > deadline:
                    raise exc from first
            delay = min(delay * 2, 0.05)

    def _retrying(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            return self._retry_busy(exc, call)

    # -- public API ---------------------------------------------------------
    def execute(self, sql: str, params: Any = ()) -> ExecResult:
        """Run one statement (autocommit outside a transaction); returns rowcount and lastrowid."""
        conn = self._transaction_conn()
        if conn is not None:
            return ExecResult(*conn.execute(sql, params))
        if self._generation != _process_generation:
            self._check_process()
        pool = self._pool
        try:
            return ExecResult(*pool.execute(sql, params))
        except sqlite3.OperationalError as exc:
            return ExecResult(*self._retry_busy(exc, lambda: pool.execute(sql, params)))

    def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> int:
        """Run one DML statement per parameter set, atomically; returns rows changed."""
        conn = self._transaction_conn()
        if conn is not None:
            return conn.executemany(sql, seq_of_params)
        self._check_process()
        batch = seq_of_params if isinstance(seq_of_params, (list, tuple)) else list(seq_of_params)
        pool = self._pool
        return self._retrying(lambda: pool.executemany(sql, batch))

    def query(self, sql: str, params: Any = (), *, as_dict: bool = False) -> list[Any]:
        """All rows, as tuples or (``as_dict=True``) dicts keyed by column name."""
        conn = self._transaction_conn()
        if conn is not None:
            return conn.query(sql, params, as_dict)
        if self._generation != _process_generation:
            self._check_process()
        pool = self._pool
        try:
            return pool.query(sql, params, as_dict)
        except sqlite3.OperationalError as exc:
            return self._retry_busy(exc, lambda: pool.query(sql, params, as_dict))

    def query_one(self, sql: str, params: Any = (), *, as_dict: bool = False) -> Any:
        """The first row (tuple or dict), or None."""
        conn = self._transaction_conn()
        if conn is not None:
            return conn.query_one(sql, params, as_dict)
        if self._generation != _process_generation:
            self._check_process()
        pool = self._pool
        try:
            return pool.query_one(sql, params, as_dict)
        except sqlite3.OperationalError as exc:
            return self._retry_busy(exc, lambda: pool.query_one(sql, params, as_dict))

    @contextmanager
    def transaction(self, mode: str = "immediate") -> Iterator[RustSQLiteWrapper]:
        """Commit on success, roll back on any exception; nested use becomes a SAVEPOINT.

        ``mode`` is ``"immediate"`` (default: take the write lock at BEGIN, so a
        read-then-write never fails half way), ``"deferred"`` or ``"exclusive"``.
        """
        begin = _TX_MODES.get(mode.lower())
        if begin is None:
            raise ValueError(f"mode must be one of {sorted(_TX_MODES)}, got {mode!r}")
        current = self._transaction_conn()
        if current is not None:
            yield from self._savepoint(current)
            return
        self._check_process()
        conn = self._pool.checkout()
        counted = False
        try:
            self._retrying(lambda: conn.execute(begin))
            with self._count_lock:
                self._open_transactions += 1
            counted = True
            self._local.conn = conn
            try:
                yield self
            except BaseException:
                self._local.conn = None
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._local.conn = None
            try:
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            self._local.conn = None
            conn.release()
            if counted:
                with self._count_lock:
                    self._open_transactions -= 1

    def _savepoint(self, conn: Any) -> Iterator[RustSQLiteWrapper]:
        name = f"crewai_rust_sp{next(self._savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield self
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")

    def close(self) -> None:
        """Close the pool's connections; later calls raise ``sqlite3.ProgrammingError``."""
        if self._generation != _process_generation:
            return  # the parent's connections: never touch them from a child
        self._pool.close()
        if self._release is not None:
            self._release()
        _live.discard(self)

    @property
    def closed(self) -> bool:
        return bool(self._pool.closed)

    def __enter__(self) -> RustSQLiteWrapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pool_size={self.pool_size}"
        return f"RustSQLiteWrapper({self.db_path!r}, {state}, implementation={self.implementation!r})"
