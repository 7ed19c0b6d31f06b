"""Whether the DATABASE lock part must leave CrewAI's lock backend alone.

Our ``FileLockBackend`` excludes processes of one host only. CrewAI locks
across hosts when ``REDIS_URL`` is set and ``redis`` is importable
(``portalocker.RedisLock``), and a user may have set a backend of their own
(perhaps distributed too). Replacing either with a host-local file lock would
silently drop cross-host exclusion, so in both cases CrewAI's lock is kept.
"""

from __future__ import annotations

from typing import Any


def crewai_lock_to_keep(lock_store: Any = None) -> str | None:
    """The reason to keep CrewAI's lock backend, or None when ours may replace it."""
    if lock_store is None:
        import crewai_core.lock_store as lock_store
    current = getattr(lock_store, "_backend", None)
    if current is not None:
        return f"a lock backend is already set ({type(current).__module__}.{type(current).__qualname__}); not replaced"
    redis_available = getattr(lock_store, "_redis_available", None)
    if callable(redis_available) and redis_available():
        return "REDIS_URL is set: CrewAI's distributed portalocker.RedisLock is kept (a file lock is host-local)"
    return None
