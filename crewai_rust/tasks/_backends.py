"""Which backend runs a fan-out (``threads`` or ``processes``), how many workers, and the shared pools.

Defaults come from ``CREWAI_RUST_TASKS_BACKEND`` (``threads`` unless set),
``CREWAI_RUST_TASKS_WORKERS`` (else the CPU count) and
``CREWAI_RUST_TASKS_CREW_FACTORY``. Pools are shared per (workers, threads per
worker, ``patch()`` settings): a later call with the same shape reuses warm
workers; a changed ``patch()`` gets a pool whose workers apply the new settings.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .._env import env_int

BACKENDS = ("threads", "processes")
BACKEND_ENV = "CREWAI_RUST_TASKS_BACKEND"
WORKERS_ENV = "CREWAI_RUST_TASKS_WORKERS"
CREW_FACTORY_ENV = "CREWAI_RUST_TASKS_CREW_FACTORY"


def resolve_backend(backend: str | None) -> str:
    """``backend`` when given, else the environment, else ``"threads"``; unknown names are an error."""
    if backend is None:
        backend = os.environ.get(BACKEND_ENV, "").strip().lower() or "threads"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def resolve_workers(workers: int | None, max_concurrency: int) -> int:
    """Worker processes: ``workers``, else the environment, else the CPU count; never more than ``max_concurrency``."""
    if workers is None:
        workers = env_int(WORKERS_ENV, None) or (os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int, got {type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return min(workers, max_concurrency)


def threads_per_worker(workers: int, max_concurrency: int) -> int:
    return -(-max_concurrency // workers)


def current_patch_settings() -> dict[str, dict[str, Any]]:
    """The components ``patch()`` enabled in this process, with their options (what workers re-apply)."""
    from .._registry import component_options, status

    components = status()["components"]
    return {name: component_options(name) for name, state in components.items() if state["enabled"]}


_pools: dict[tuple[int, int, str], Any] = {}
_pools_lock = threading.Lock()


def shared_pool(workers: int, max_concurrency: int) -> Any:
    """A warm pool of this shape and the current ``patch()`` settings, started lazily and reused."""
    from ._procpool import ProcessPool

    settings = current_patch_settings()
    key = (workers, threads_per_worker(workers, max_concurrency), repr(sorted(settings.items())))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or pool.closed or pool._broken is not None:
            pool = _pools[key] = ProcessPool(workers, key[1], settings)
        return pool


def shutdown_pools() -> None:
    """Stop every shared pool's workers (they restart lazily on the next call)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown()
