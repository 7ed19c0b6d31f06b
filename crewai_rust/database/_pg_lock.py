"""A ``crewai_core.lock_store`` backend that holds across machines: PostgreSQL advisory locks.

Why a composite: stock CrewAI processes on this host (not patched, or patched
without the URL) lock through the lock file ``<tmp>/crewai:<md5(name)>.lock``.
An advisory lock alone would not exclude them, so this backend first takes the
same host lock as :class:`~._filelock.FileLockBackend` (which also queues this
process's threads per name) and then a session-level advisory lock keyed by a
stable 64-bit hash of the schema and name, on a connection kept for as long as
the lock is held. One deadline covers both stages; the error on timeout is the
file lock's :class:`~._filelock.LockTimeoutError` (a ``portalocker.LockException``
and a ``TimeoutError``), so callers see the same behaviour.

A dropped connection mid-acquire is retried until the deadline. If the server
goes away while the lock is held, the server has released it: that cannot be
prevented, so it is logged (logger ``crewai_rust``, WARNING) when the holder
lets go.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._postgres import redact, validate_url
from . import _pg
from ._filelock import DEFAULT_TIMEOUT, FileLockBackend, LockTimeoutError

logger = logging.getLogger("crewai_rust")


class PostgresLockBackend:
    """Callable for ``crewai_core.lock_store.set_lock_backend``: ``backend(name, timeout=...)``."""

    def __init__(self, url: str, schema: str = _pg.DEFAULT_SCHEMA, directory: str | None = None,
                 *, pool_size: int = 16, retry_timeout: float = 30.0) -> None:
        self.url = validate_url(url)
        self.schema = _pg.check_schema(schema)
        self.directory = directory
        self.pool_size = pool_size
        self.retry_timeout = retry_timeout
        self._host = FileLockBackend(directory)
        self.lost = 0  # locks the server dropped while held (diagnostics)

    def __repr__(self) -> str:
        return f"PostgresLockBackend({redact(self.url)!r}, schema={self.schema!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("url", "schema", "directory", "pool_size", "retry_timeout")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        url = state.pop("url")
        self.__init__(url, **state)  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, Any]) -> PostgresLockBackend:
        clone = type(self).__new__(type(self))
        clone.__setstate__(self.__getstate__())
        return clone

    def _db(self) -> _pg.PgDatabase:
        return _pg.shared(self.url, "locks", pool_size=self.pool_size, retry_timeout=self.retry_timeout)

    def key(self, name: str) -> int:
        return _pg.lock_key(self.schema, name)

    def __call__(self, name: str, *, timeout: float | None = DEFAULT_TIMEOUT, **_: Any) -> Any:
        return self._held(name, timeout)

    @contextmanager
    def _held(self, name: str, timeout: float | None) -> Iterator[None]:
        forever = timeout is None or math.isinf(timeout) or timeout < 0
        deadline = math.inf if forever else time.monotonic() + float(timeout)  # type: ignore[arg-type]
        remaining = None if forever else max(0.0, deadline - time.monotonic())
        with self._host(name, timeout=remaining):
            pool, conn = self._acquire(name, deadline, timeout)
            try:
                yield
            finally:
                self._release(name, pool, conn)

    def _fail(self, name: str, timeout: float | None, why: str) -> LockTimeoutError:
        where = f"{redact(self.url)} (schema {self.schema})"
        return LockTimeoutError(
            f"Failed to acquire lock '{name}' on {where} (timeout={timeout}s): {why}. "
            "This commonly occurs when several workers share one CrewAI storage.",
            name=name,
            path=where,
            timeout=timeout,
        )

    def _acquire(self, name: str, deadline: float, timeout: float | None) -> tuple[Any, Any]:
        """The pool and a connection of it whose session holds the advisory lock of ``name``."""
        import psycopg.errors

        db, key = self._db(), self.key(name)
        delay = 0.05
        give_up = time.monotonic() + db.retry_timeout if math.isinf(deadline) else deadline
        while True:
            pool = db.pool()
            conn = None
            remaining = deadline - time.monotonic()
            try:
                # Waiting for a pooled connection (perhaps a new one) is not waiting for the lock.
                conn = pool.getconn(timeout=max(5.0, 0.0 if math.isinf(remaining) else remaining))
                if remaining <= 0:
                    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                    if not row[0]:
                        raise self._fail(name, timeout, "held by another process or machine")
                else:
                    # One round trip: both values are integers we made, so no parameters needed.
                    ms = 0 if math.isinf(remaining) else max(1, int(remaining * 1000))
                    conn.execute(f"SET lock_timeout = {int(ms)}; SELECT pg_advisory_lock({int(key)})".encode())
                return pool, conn
            except LockTimeoutError:
                pool.putconn(conn)
                raise
            except psycopg.errors.LockNotAvailable:
                pool.putconn(conn)
                raise self._fail(name, timeout, "held by another process or machine") from None
            except Exception as exc:
                if conn is not None:
                    pool.putconn(conn)
                if not _pg.is_transient(exc):
                    raise db.error(exc) from None
                if time.monotonic() + delay >= give_up:
                    if math.isinf(deadline):
                        raise db.error(exc) from None
                    raise self._fail(name, timeout, f"server unreachable: {db.error(exc)}") from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _release(self, name: str, pool: Any, conn: Any) -> None:
        try:
            released = bool(conn.execute("SELECT pg_advisory_unlock(%s)", (self.key(name),)).fetchone()[0])
        except Exception:
            released = False
        finally:
            pool.putconn(conn)  # a broken connection is discarded by the pool
        if not released:
            self.lost += 1
            logger.warning(
                "crewai_rust DATABASE: advisory lock %r on %s was lost while held (the connection dropped); "
                "another holder may have run concurrently",
                name,
                redact(self.url),
            )
