"""One open pool per database file per process, shared by CrewAI's storages.

CrewAI builds a new task-output storage per crew and a new flow persistence at
every fall-back site; they all get the same :class:`RustSQLiteWrapper` from
here instead of a connection per call. A file deleted or replaced behind our
back (``crewai reset-memories``, a test's temp dir) is noticed when a storage
is constructed and reopened, so no writes go to an unlinked inode.

A pool lives as long as its users: each storage registers itself when it takes
the pool, and when the last one is garbage-collected the pool's connections
are closed, so the file is not held open after CrewAI dropped every storage of
it (stock closes its connection after each call; on Windows an open handle
blocks deleting the file).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from . import _wrapper
from ._library import choose_rust
from ._wrapper import RustSQLiteWrapper


@dataclass(frozen=True)
class Settings:
    """How shared pools are opened; set by ``patch(database={...})``."""

    #: CrewAI's own (stock) code may still open these files with stdlib sqlite3 in
    #: this process: None picks the Rust twin only when it shares that SQLite
    #: library instance (see ``_library``), True/False force a twin.
    use_rust: bool | None = None
    pool_size: int = 4
    busy_timeout: float = 30.0
    synchronous: str = "NORMAL"


_settings = Settings()
_lock = threading.Lock()
_open: dict[tuple[str, bool, int], tuple[RustSQLiteWrapper, tuple[int, int] | None]] = {}
_initialised: set[tuple[str, str, int]] = set()
#: Live registered users per open pool (keyed by the pool object itself).
_users: dict[RustSQLiteWrapper, int] = {}
#: Pools whose user was collected, waiting to be counted down. A finalizer may run
#: at any allocation, even inside our own locked code, so it only appends here
#: (atomic) and counts down when it can take the lock; otherwise the holder does.
_pending: list[RustSQLiteWrapper] = []


def configure(**changes: Any) -> Settings:
    """Replace the settings used for pools opened from now on; returns the new settings."""
    global _settings
    _settings = replace(_settings, **changes)
    return _settings


def current_settings() -> Settings:
    return _settings


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def shared_database(path: str, use_rust: bool | None = None, *, user: object | None = None) -> RustSQLiteWrapper:
    """The process's open pool for ``path`` (opened with the current settings on first use).

    ``user`` (a storage object) keeps the pool open while it is alive; the pool is
    closed when the last registered user is collected.
    """
    with _lock:
        _drain_locked()
        db = _get_or_open(path, use_rust)
        if user is not None:
            _users[db] = _users.get(db, 0) + 1
            weakref.finalize(user, _release, db)
    _drain()
    return db


def _release(db: RustSQLiteWrapper) -> None:
    """Finalizer of a registered user."""
    _pending.append(db)
    _drain()


def _drain() -> None:
    if _lock.acquire(blocking=False):
        try:
            _drain_locked()
        finally:
            _lock.release()


def _drain_locked() -> None:
    """Count down collected users; close a pool whose last user is gone (``_lock`` held)."""
    while _pending:
        db = _pending.pop()
        left = _users.get(db, 0) - 1
        if left > 0:
            _users[db] = left
            continue
        _users.pop(db, None)
        for key, (open_db, _) in list(_open.items()):
            if open_db is db:
                del _open[key]
        gone = {k for k in _initialised if k[2] == id(db)}
        _initialised.difference_update(gone)
        db.close()


def open_paths() -> list[str]:
    """Paths of the pools open now (for tests and diagnostics)."""
    with _lock:
        return sorted(key[0] for key, (db, _) in _open.items() if not db.closed)


def _get_or_open(path: str, use_rust: bool | None) -> RustSQLiteWrapper:
    settings = _settings
    requested = settings.use_rust if use_rust is None else use_rust
    rust, _ = choose_rust(requested)
    absolute = os.path.abspath(path)
    key = (absolute, rust, _wrapper._process_generation)
    entry = _open.get(key)
    if entry is not None:
        db, identity = entry
        if not db.closed and identity is not None and _identity(absolute) == identity:
            return db
        _open.pop(key, None)
        _initialised.difference_update({k for k in _initialised if k[0] == absolute})
    db = RustSQLiteWrapper(
        absolute,
        pool_size=settings.pool_size,
        use_rust=requested,  # resolves as above, and keeps the reason on the wrapper
        busy_timeout=settings.busy_timeout,
        synchronous=settings.synchronous,
    )
    _open[key] = (db, _identity(absolute))
    return db


def ensure_schema(db: RustSQLiteWrapper, name: str, create: Callable[[RustSQLiteWrapper], None]) -> None:
    """Run ``create(db)`` once per database file and schema ``name`` in this process."""
    key = (db.db_path, name, id(db))
    if key in _initialised:
        return
    create(db)
    with _lock:
        _initialised.add(key)


def close_all() -> None:
    """Close every shared pool (on unpatch); storages still alive reopen on next use."""
    with _lock:
        entries = list(_open.values())
        _open.clear()
        _users.clear()
        _pending.clear()
        _initialised.clear()
    for db, _ in entries:
        db.close()
