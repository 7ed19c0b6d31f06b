"""``RustTaskExecutor(backend="processes"|"ray")``: the executor's calls on a shared pool of workers.

Functions and items cross a process boundary, so they must pickle (functions
by reference: module-level functions, not lambdas or closures; Ray's
serialiser also takes closures). The ``ray`` backend's pool of actors has the
process pool's interface (see :mod:`._ray`), so everything here serves both. The rules of
``map`` are the thread backend's (see :mod:`._procmap`); ``amap`` runs it off
the event loop and, when cancelled, stops the call's items (workers running
them are stopped and replaced lazily).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from ._backends import resolve_ray_address, resolve_workers, shared_pool
from ._config import check_timeout


def _apply(call: Callable[[], Any]) -> Any:
    return call()


class ProcessBackend:
    """What a process-backed ``RustTaskExecutor`` delegates to."""

    def __init__(self, workers: int | None, max_concurrency: int, backend: str = "processes",
                 address: str | None = None) -> None:
        self.max_concurrency = max_concurrency
        self.workers = resolve_workers(workers, max_concurrency)
        self.backend = backend
        self.address = resolve_ray_address(address) if backend == "ray" else None
        if backend == "ray":
            from ._ray import check_ray_available

            check_ray_available()

    def pool(self) -> Any:
        from ._procpool import check_not_bootstrapping, warn_listeners_once

        if self.backend == "processes":
            check_not_bootstrapping()
        warn_listeners_once()
        return shared_pool(self.workers, self.max_concurrency, self.backend, self.address)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], timeout: float | None, return_exceptions: bool,
            on_progress: Any = None, cancel: threading.Event | None = None) -> list[Any]:
        from ._procmap import process_map

        return process_map(self.pool(), fn, list(items), max_concurrency=self.max_concurrency,
                           timeout=check_timeout(timeout), return_exceptions=return_exceptions,
                           on_progress=on_progress, cancel=cancel)

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        return self.pool().submit(_apply, functools.partial(fn, *args, **kwargs)).future

    async def amap(self, fn: Callable[[Any], Any], items: Iterable[Any], timeout: float | None,
                   return_exceptions: bool, on_progress: Any = None) -> list[Any]:
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(None, self.map, fn, list(items), timeout, return_exceptions, on_progress, cancel)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.gather(work, return_exceptions=True)
            raise
