"""Which backend runs a fan-out (``threads``, ``processes`` or ``ray``), how many workers, and the shared pools.

Defaults come from ``CREWAI_RUST_TASKS_BACKEND`` (``threads`` unless set),
``CREWAI_RUST_TASKS_WORKERS`` (else the CPU count),
``CREWAI_RUST_TASKS_CREW_FACTORY`` and, for Ray, ``CREWAI_RUST_TASKS_RAY_ADDRESS``
(else a local Ray). Pools are shared per (workers, threads per
worker, ``patch()`` settings): a later call with the same shape reuses warm
workers; a changed ``patch()`` gets a pool whose workers apply the new settings.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .._env import env_int, env_str

BACKENDS = ("threads", "processes", "ray")
#: Backends whose workers are other processes (the crew is built there from a factory).
REMOTE_BACKENDS = ("processes", "ray")
BACKEND_ENV = "CREWAI_RUST_TASKS_BACKEND"
WORKERS_ENV = "CREWAI_RUST_TASKS_WORKERS"
CREW_FACTORY_ENV = "CREWAI_RUST_TASKS_CREW_FACTORY"
RAY_ADDRESS_ENV = "CREWAI_RUST_TASKS_RAY_ADDRESS"


def resolve_backend(backend: str | None) -> str:
    """``backend`` when given, else the environment, else ``"threads"``; unknown names are an error."""
    if backend is None:
        backend = (env_str(BACKEND_ENV) or "threads").lower()
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


def resolve_ray_address(address: str | None) -> str | None:
    """``address`` when given, else ``CREWAI_RUST_TASKS_RAY_ADDRESS``, else None (a local Ray)."""
    if address is None:
        address = env_str(RAY_ADDRESS_ENV)
    if address is not None and not isinstance(address, str):
        raise TypeError(f"address must be a Ray address string or None, got {type(address).__name__}")
    return address


_pools: dict[tuple[Any, ...], Any] = {}
_pools_lock = threading.Lock()


def shared_pool(workers: int, max_concurrency: int, backend: str = "processes", address: str | None = None) -> Any:
    """A warm pool of this backend, shape and the current ``patch()`` settings, started lazily and reused."""
    settings = current_patch_settings()
    threads = threads_per_worker(workers, max_concurrency)
    key: tuple[Any, ...] = (workers, threads, repr(sorted(settings.items())))
    if backend == "ray":
        key += ("ray", address)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or pool.closed or pool._broken is not None:
            if backend == "ray":
                from ._ray import RayPool

                pool = _pools[key] = RayPool(workers, threads, settings, address)
            else:
                from ._procpool import ProcessPool

                pool = _pools[key] = ProcessPool(workers, threads, settings)
        return pool


def shutdown_pools() -> None:
    """Stop every shared pool's workers (they restart lazily on the next call)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown()
