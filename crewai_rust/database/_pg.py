"""One PostgreSQL pool per URL per process for the DATABASE parts, with safe retries.

Why: CrewAI builds a new task-output storage per crew and a new flow
persistence at every fall-back site; they must share one pool, not open one
each. A server restart or a dropped connection must not fail a kickoff: every
statement the parts run is idempotent (upserts, keyed deletes, inserts with a
client-made write id), so a call that failed on a lost connection is simply
run again on a fresh one until ``retry_timeout``. A write is acknowledged only
when its transaction committed, so nothing acknowledged is lost, and a retry
after an in-doubt commit writes nothing twice.

Errors leave here as :class:`~crewai_rust._postgres.PostgresError` (or its
``PostgresUnavailableError``) with every secret of the URL removed.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from .._env import env_str
from .._postgres import (
    PostgresError,
    PostgresUnavailableError,
    open_pool,
    redact,
    require_psycopg,
    scrub,
    validate_url,
)

T = TypeVar("T")

DEFAULT_SCHEMA = "public"
URL_ENV = "CREWAI_RUST_DATABASE_URL"
SCHEMA_ENV = "CREWAI_RUST_DATABASE_SCHEMA"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: SQLSTATEs after which the statement had no effect, or the connection is gone.
_TRANSIENT_STATES = {"57P01", "57P02", "57P03", "40001", "40P01"}


def check_schema(name: object) -> str:
    """A plain SQL identifier (letters, digits, underscore; at most 63 bytes), else ValueError."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(
            f"database schema must be a plain identifier (letters, digits, _; at most 63), got {name!r}"
        )
    return name


def lock_key(namespace: str, name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (same in every process and machine)."""
    digest = hashlib.sha256(f"crewai_rust:{namespace}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` means the connection was lost or the server is (re)starting: retry."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    if state is None:  # client side: connection lost, pool timeout while the server is down
        return True
    return state.startswith("08") or state in _TRANSIENT_STATES


class PgDatabase:
    """A lazily opened pool for one URL, the tables made once per process, retried calls."""

    def __init__(self, url: str, *, pool_size: int = 4, retry_timeout: float = 30.0,
                 application_name: str = "crewai_rust_database") -> None:
        self.url = validate_url(url)
        self.pool_size = pool_size
        self.retry_timeout = retry_timeout
        self.application_name = application_name
        self._pool: Any = None
        self._lock = threading.Lock()
        self._ready: set[str] = set()
        self.retries = 0  # calls that succeeded only after a retry (tests, diagnostics)

    def __repr__(self) -> str:
        return f"PgDatabase({redact(self.url)!r})"

    def pool(self) -> Any:
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    self._probe()
                    # No liveness round trip per checkout: ``run`` retries a call that met a dead
                    # connection (the pool then drops it), which halves the cost of a call.
                    pool = self._pool = open_pool(
                        self.url, min_size=1, max_size=self.pool_size, application_name=self.application_name,
                        check=False,
                    )
        return pool

    def _probe(self) -> None:
        """One direct connect first: a wrong password or a missing database fails now, with the
        server's reason, instead of after the pool's whole connect timeout."""
        psycopg = require_psycopg()
        try:
            psycopg.connect(self.url, connect_timeout=10, application_name=self.application_name).close()
        except Exception as exc:
            detail = scrub(str(exc).strip(), self.url)
            raise PostgresUnavailableError(f"cannot connect to {redact(self.url)}: {detail}") from None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._ready.clear()
        if pool is not None:
            pool.close()

    def error(self, exc: BaseException) -> PostgresError:
        """``exc`` as our error class, its text free of the URL's secrets."""
        if isinstance(exc, PostgresError):
            return exc
        text = scrub(str(exc).strip(), self.url) or type(exc).__name__
        if is_transient(exc):
            return PostgresUnavailableError(f"lost the PostgreSQL server {redact(self.url)}: {text}")
        return PostgresError(text)

    def run(self, work: Callable[[Any], T]) -> T:
        """``work(conn)`` on a pooled connection; re-run on a fresh one after a lost connection.

        ``work`` must be idempotent (every caller's is); it opens its own transaction.
        """
        deadline = time.monotonic() + self.retry_timeout
        delay = 0.05
        retried = False
        while True:
            try:
                with self.pool().connection() as conn:
                    result = work(conn)
                if retried:
                    self.retries += 1
                return result
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise self.error(exc) from None
            if retried:  # the first retry is immediate: a pooled connection died while idle
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            retried = True

    def ensure(self, name: str, tables: Iterable[str], ddl: Iterable[str], schema: str) -> None:
        """Run the ``ddl`` statements once per process unless every table exists; safe when processes race.

        ``CREATE ... IF NOT EXISTS`` alone fails when two sessions create the same table at
        once (a unique violation in the catalog), so creation runs under a transaction-level
        advisory lock on the schema.
        """
        key = f"{schema}.{name}"
        if key in self._ready:
            return
        tables, statements = list(tables), list(ddl)

        def create(conn: Any) -> None:
            names = [f'"{schema}"."{t}"' for t in tables]
            row = conn.execute("SELECT bool_and(to_regclass(n) IS NOT NULL) FROM unnest(%s::text[]) AS n", (names,))
            if row.fetchone()[0]:
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("ddl", schema),))
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                for statement in statements:
                    conn.execute(statement)

        self.run(create)
        self._ready.add(key)


@dataclass(frozen=True)
class PgSettings:
    """Where the DATABASE parts keep their state; set by ``patch(database={"url": ...})``."""

    url: str | None = None
    schema: str = DEFAULT_SCHEMA
    pool_size: int = 4
    retry_timeout: float = 30.0


_settings = PgSettings()


def configure(**changes: Any) -> PgSettings:
    global _settings
    _settings = replace(_settings, **changes)
    return _settings


def current_settings() -> PgSettings:
    return _settings


def configured_url() -> str:
    """The patched URL, else ``CREWAI_RUST_DATABASE_URL``; ValueError when neither is set."""
    url = _settings.url or env_str(URL_ENV, "")
    if not url:
        raise ValueError(f"no PostgreSQL URL: pass url=... or set {URL_ENV}")
    return url


def database(url: str | None = None) -> PgDatabase:
    """The shared data pool for ``url`` (default: the configured one) with the current settings."""
    settings = _settings
    return shared(url or configured_url(), "data", pool_size=settings.pool_size, retry_timeout=settings.retry_timeout)


_registry_lock = threading.Lock()
_databases: dict[tuple[str, str, int], PgDatabase] = {}


def shared(url: str, purpose: str = "data", **options: Any) -> PgDatabase:
    """The process's :class:`PgDatabase` for ``url`` and ``purpose`` (a forked child gets its own)."""
    key = (validate_url(url), purpose, os.getpid())
    db = _databases.get(key)
    if db is None:
        with _registry_lock:
            db = _databases.get(key)
            if db is None:
                db = _databases[key] = PgDatabase(url, application_name=f"crewai_rust_{purpose}", **options)
    return db


def close_all() -> None:
    """Close this process's pools (on unpatch); parts still alive reopen on next use."""
    with _registry_lock:
        mine = [db for (_, _, pid), db in _databases.items() if pid == os.getpid()]
        _databases.clear()
    for db in mine:
        db.close()
