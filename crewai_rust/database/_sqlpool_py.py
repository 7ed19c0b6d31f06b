"""The pure-Python twin of ``_speedups.SqlitePool``: pooled stdlib ``sqlite3`` connections.

Each call checks a connection out of a small pool (a C ``SimpleQueue``, so the
round trip costs well under a microsecond) instead of sharing one connection
behind a lock; ``sqlite3`` releases the GIL while SQLite works.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from ._errors import normalise

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def is_memory_path(path: str) -> bool:
    return path in ("", ":memory:")


class SqliteConn:
    """One pooled connection checked out for a transaction (mirrors ``_speedups.SqliteConn``)."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: SqlitePool, conn: sqlite3.Connection) -> None:
        self._pool: SqlitePool | None = pool
        self._conn: sqlite3.Connection | None = conn

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("Cannot operate on a released connection.")
        return self._conn

    def execute(self, sql: str, params: Any = None) -> tuple[int, int | None]:
        try:
            cur = self._c().execute(sql, () if params is None else params)
        except (sqlite3.Warning, sqlite3.InterfaceError, ValueError) as exc:
            raise normalise(exc) from None
        return cur.rowcount, cur.lastrowid

    def executemany(self, sql: str, seq: Iterable[Any]) -> int:
        try:
            return self._c().executemany(sql, seq).rowcount
        except (sqlite3.Warning, sqlite3.InterfaceError, ValueError) as exc:
            raise normalise(exc) from None

    def query(self, sql: str, params: Any = None, as_dict: bool = False) -> list[Any]:
        try:
            cur = self._c().execute(sql, () if params is None else params)
            rows = cur.fetchall()
        except (sqlite3.Warning, sqlite3.InterfaceError, ValueError) as exc:
            raise normalise(exc) from None
        if as_dict and cur.description is not None:
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in rows]
        return rows

    def query_one(self, sql: str, params: Any = None, as_dict: bool = False) -> Any:
        try:
            cur = self._c().execute(sql, () if params is None else params)
            row = cur.fetchone()
        except (sqlite3.Warning, sqlite3.InterfaceError, ValueError) as exc:
            raise normalise(exc) from None
        cur.close()
        if row is not None and as_dict:
            return dict(zip([d[0] for d in cur.description], row))
        return row

    @property
    def in_transaction(self) -> bool:
        return self._conn is not None and self._conn.in_transaction

    def release(self) -> None:
        conn, pool = self._conn, self._pool
        self._conn = self._pool = None
        if conn is not None and pool is not None:
            pool._give_back(conn)


def _close_idle(idle: queue.SimpleQueue[sqlite3.Connection]) -> None:
    """Close every idle connection (on close(), or when the pool is garbage-collected)."""
    while True:
        try:
            idle.get_nowait().close()
        except queue.Empty:
            return


class SqlitePool:
    """A bounded pool of ``sqlite3`` connections to one file (same API as ``_speedups.SqlitePool``)."""

    def __init__(
        self,
        path: str,
        pool_size: int = 4,
        busy_timeout: float = 30.0,
        statement_cache: int = 256,
        synchronous: str = "NORMAL",
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise sqlite3.ProgrammingError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self._path = path
        self._memory = is_memory_path(path)
        self._size = 1 if self._memory else max(1, int(pool_size))
        self._busy_timeout = float(busy_timeout)
        self._statement_cache = int(statement_cache)
        self._synchronous = synchronous.upper()
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._opened = 1
        self._closed = False
        # Open one now: a bad path or a non-database file fails here, not on first use.
        self._idle.put(self._connect())
        # Python 3.13 warns about connections left to the garbage collector.
        self._finalizer = weakref.finalize(self, _close_idle, self._idle)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=self._statement_cache,
        )
        try:
            if not self._memory:
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _take(self) -> sqlite3.Connection:
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._opened < self._size
            if grow:
                self._opened += 1
        if grow:
            try:
                return self._connect()
            except BaseException:
                with self._lock:
                    self._opened -= 1
                raise
        try:
            return self._idle.get(timeout=self._busy_timeout)
        except queue.Empty:
            raise sqlite3.OperationalError(
                f"no pooled SQLite connection became free within {self._busy_timeout}s"
            ) from None

    def _give_back(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.rollback()
        if self._closed:
            conn.close()
        else:
            self._idle.put(conn)

    # -- the SqlitePool API ------------------------------------------------
    def execute(self, sql: str, params: Any = None) -> tuple[int, int | None]:
        conn = self._take()
        try:
            cur = conn.execute(sql, () if params is None else params)
            return cur.rowcount, cur.lastrowid
        except (sqlite3.Warning, sqlite3.InterfaceError, ValueError) as exc:
            raise normalise(exc) from None
        finally:
            self._give_back(conn)

    def executemany(self, sql: str, seq: Iterable[Any]) -> int:
        conn = self._take()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                count = conn.executemany(sql, seq).rowcount
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return count
        except (sqlite3.Warning, sqlite3.InterfaceError, ValueError) as exc:
            raise normalise(exc) from None
        finally:
            self._give_back(conn)

    def query(self, sql: str, params: Any = None, as_dict: bool = False) -> list[Any]:
        conn = self._take()
        try:
            cur = conn.execute(sql, () if params is None else params)
            rows = cur.fetchall()
        except (sqlite3.Warning, sqlite3.InterfaceError, ValueError) as exc:
            raise normalise(exc) from None
        finally:
            self._give_back(conn)
        if as_dict and cur.description is not None:
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in rows]
        return rows

    def query_one(self, sql: str, params: Any = None, as_dict: bool = False) -> Any:
        conn = self._take()
        try:
            cur = conn.execute(sql, () if params is None else params)
            row = cur.fetchone()
            cur.close()
        except (sqlite3.Warning, sqlite3.InterfaceError, ValueError) as exc:
            raise normalise(exc) from None
        finally:
            self._give_back(conn)
        if row is not None and as_dict:
            return dict(zip([d[0] for d in cur.description], row))
        return row

    def checkout(self) -> SqliteConn:
        return SqliteConn(self, self._take())

    def close(self) -> None:
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._closed
