"""Component DATABASE: pooled task outputs, flow persistence and a blocking file lock.

``patch(database={...})`` options (environment variable in brackets):

* ``use_rust`` (bool or None, default None): which twin runs CrewAI's task-output and flow
  files. None picks the Rust twin when it is built and runs on the same SQLite library
  instance as Python's ``sqlite3`` (checked at run time, see ``sqlite_library()``), since
  stock code in the process (classes created before ``patch()``, a user's own
  ``SQLiteFlowPersistence``) may open the same files; otherwise the Python twin, and the
  reason is logged (logger ``crewai_rust``, INFO) and kept in ``sqlite_library()``.
  True forces the Rust twin (error if not built; with separate SQLite copies, nothing else
  in the process may then open those files with stdlib ``sqlite3``); False the Python twin.
* ``pool_size`` [CREWAI_RUST_DB_POOL_SIZE] connections per database file (default 4).
* ``busy_timeout`` [CREWAI_RUST_DB_BUSY_TIMEOUT] seconds to wait on a locked database (30).
* ``synchronous`` [CREWAI_RUST_DB_SYNCHRONOUS] ``PRAGMA synchronous`` (default NORMAL:
  WAL commits survive a process crash; FULL also survives power loss).
* ``task_outputs``, ``flows``, ``locks`` (bool, default True): install each part.
* ``lock_dir``: directory of the lock files (default: the temp dir, as stock).
* ``url`` [CREWAI_RUST_DATABASE_URL]: a ``postgresql://`` URL puts the task outputs, flow
  state and locks in that database instead (``crewai_rust[postgres]``; see ``_pg``), so they
  are shared by every machine using it. Unset: SQLite files, as above.
* ``schema`` [CREWAI_RUST_DATABASE_SCHEMA]: the PostgreSQL schema of those tables and the
  namespace of the advisory locks (default ``public``): one per tenant sharing a database.
* ``retry_timeout`` [CREWAI_RUST_DB_RETRY_TIMEOUT]: seconds a call cut off by a lost
  PostgreSQL connection (server restart) is retried before it fails (default 30).

The lock part never downgrades a distributed lock: with ``REDIS_URL`` set and
``redis`` installed (CrewAI's ``portalocker.RedisLock`` mode), or with a lock
backend the user set already, CrewAI's lock stays and ``status()`` lists it under
``kept`` with the reason (see ``_lock_choice``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from .._patcher import Patcher
from .._selection import implementation_name
from .._settings import resolve_settings, setting
from . import _pg, _shared
from ._library import choose_rust, library_sharing

logger = logging.getLogger("crewai_rust")

_SYNC = ("OFF", "NORMAL", "FULL", "EXTRA")


@dataclasses.dataclass(frozen=True)
class DatabaseSettings:
    """What ``patch(database=...)`` configures, environment fallbacks applied (checked by ``_local``, ``_pg_settings``)."""

    use_rust: bool | None = setting(None)
    pool_size: int = setting(4, "CREWAI_RUST_DB_POOL_SIZE", kind="int")
    busy_timeout: float = setting(30.0, "CREWAI_RUST_DB_BUSY_TIMEOUT", kind="float", minimum=0)
    synchronous: str = setting("NORMAL", "CREWAI_RUST_DB_SYNCHRONOUS", kind="choice", choices=_SYNC)
    task_outputs: bool = setting(True)
    flows: bool = setting(True)
    locks: bool = setting(True)
    lock_dir: str | None = setting(None)
    url: str | None = setting(None, _pg.URL_ENV, kind="str")
    schema: str = setting(_pg.DEFAULT_SCHEMA, _pg.SCHEMA_ENV, kind="str")
    retry_timeout: float = setting(30.0, "CREWAI_RUST_DB_RETRY_TIMEOUT", kind="float", minimum=0)


def _local(config: DatabaseSettings) -> _shared.Settings:
    """The SQLite part's settings, checked."""
    synchronous = str(config.synchronous).upper()
    if synchronous not in _SYNC:
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
    if int(config.pool_size) < 1:
        raise ValueError(f"pool_size must be at least 1, got {config.pool_size}")
    return _shared.Settings(
        use_rust=None if config.use_rust is None else bool(config.use_rust),
        pool_size=int(config.pool_size),
        busy_timeout=float(config.busy_timeout),
        synchronous=synchronous,
    )


def activate(patcher: Patcher, options: dict[str, Any]) -> str:
    config = resolve_settings(DatabaseSettings, "database", options)
    settings = _local(config)
    pg = _pg_settings(config, settings.pool_size)  # validated before anything changes
    rust, why = choose_rust(settings.use_rust)
    if settings.use_rust is None and not rust:
        logger.info("crewai_rust DATABASE: %s", why)
    elif rust and not library_sharing().shared:
        logger.warning(
            "crewai_rust DATABASE: use_rust=True although %s; do not open CrewAI's database files "
            "with stdlib sqlite3 in this process",
            why,
        )
    _shared.configure(**{**settings.__dict__, "use_rust": rust})
    if pg is not None:
        _activate_postgres(patcher, config, pg)
        _pg.configure(**pg.__dict__)
        return implementation_name(rust)

    from ._filelock import FileLockBackend
    from ._flow_persistence import flow_persistence_factory
    from ._task_outputs import PooledTaskOutputsStorage

    _install_parts(
        patcher, config, PooledTaskOutputsStorage, flow_persistence_factory,
        lambda: FileLockBackend(config.lock_dir),
    )
    return implementation_name(rust)


def _pg_settings(config: DatabaseSettings, pool_size: int) -> _pg.PgSettings | None:
    """The PostgreSQL settings when a URL is given (validated, nothing opened yet), else None."""
    if config.url is None:
        return None
    from .._postgres import require_psycopg, validate_url

    url = validate_url(str(config.url))
    require_psycopg()
    schema = _pg.check_schema(config.schema)
    retry = float(config.retry_timeout)
    if not retry >= 0:
        raise ValueError(f"retry_timeout must be a number of at least 0, got {retry}")
    return _pg.PgSettings(url=url, schema=schema, pool_size=pool_size, retry_timeout=retry)


def _activate_postgres(patcher: Patcher, config: DatabaseSettings, pg: _pg.PgSettings) -> None:
    """The three parts on PostgreSQL. Connecting waits for first use: a kickoff fails clearly then."""
    from ._pg_flow_persistence import flow_persistence_factory
    from ._pg_lock import PostgresLockBackend
    from ._pg_task_outputs import PostgresTaskOutputsStorage

    assert pg.url is not None  # _pg_settings returns settings only with a URL
    url = pg.url
    _install_parts(
        patcher, config, PostgresTaskOutputsStorage, flow_persistence_factory,
        lambda: PostgresLockBackend(
            url, pg.schema, config.lock_dir, pool_size=max(16, 4 * pg.pool_size), retry_timeout=pg.retry_timeout,
        ),
    )


def _install_parts(
    patcher: Patcher,
    config: DatabaseSettings,
    task_outputs: type,
    flow_factory: Callable[..., Any],
    lock_backend: Callable[[], Any],
) -> None:
    """Put one backend's task-output storage, flow persistence and lock into CrewAI (each part switchable)."""
    if config.task_outputs:
        from ._task_outputs import handler_update

        # Imported by name into the handler's module: replace that binding too.
        for module in ("crewai.memory.storage.kickoff_task_outputs_storage", "crewai.utilities.task_output_storage_handler"):
            patcher.replace(module, "KickoffTaskOutputsSQLiteStorage", task_outputs)
        patcher.replace("crewai.utilities.task_output_storage_handler:TaskOutputStorageHandler", "update", handler_update)

    if config.flows:
        patcher.use_setter(
            "crewai.flow.persistence.factory:set_flow_persistence_factory",
            "crewai.flow.persistence.factory:_factory",
            flow_factory,
        )

    if config.locks:
        from ._lock_choice import crewai_lock_to_keep

        keep = crewai_lock_to_keep()
        if keep is not None:
            patcher.keep("crewai_core.lock_store:set_lock_backend", keep)
        else:
            patcher.use_setter("crewai_core.lock_store:set_lock_backend", "crewai_core.lock_store:_backend", lock_backend())


def stats() -> dict[str, Any]:
    """Where CrewAI's task outputs, flow state and locks go (the URL without its password)."""
    pg = _pg.current_settings()
    if pg.url is None:
        return {"backend": "sqlite"}
    from .._postgres import redact

    return {"backend": "postgresql", "url": redact(pg.url), "schema": pg.schema}


def deactivate() -> None:
    """Close the shared pools and forget the patch-time settings."""
    _shared.close_all()
    _shared.configure(**_shared.Settings().__dict__)
    _pg.close_all()
    _pg.configure(**_pg.PgSettings().__dict__)
