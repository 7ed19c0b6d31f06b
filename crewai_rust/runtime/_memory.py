"""Memory's background saves: serial within a run, parallel across runs; a recall waits for its own run.

``Memory._save_pool`` has one worker and ``crew.copy()`` shares the crew's
``Memory``, so concurrent kickoffs queue every save (each with LLM calls)
behind one thread, and every ``recall()`` starts with ``drain_writes()``,
waiting for the saves of all of them. Here a save is keyed by (memory, run):
saves of one run still execute one at a time in submission order (what the
single worker guaranteed within a run), different runs use different
workers, and ``drain_writes()`` inside a run waits for that run's saves only.
A "run" is CrewAI's execution uuid (``crewai.execution``: one per outermost
kickoff, inherited by its tasks and flows); without one, everything is waited
for, as in stock. ``close()`` still waits for every pending save.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .._patcher import Patcher

MEMORY = "crewai.memory.unified_memory:Memory"
RUN_ATTR = "_crewai_rust_run"


class KeyedSerialPool:
    """A thread pool that runs jobs of one key in order, one at a time, and different keys in parallel."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crewai-rust-memory-save")
        self._lock = threading.Lock()
        self._queues: dict[Any, deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]]] = {}

    def submit(self, key: Any, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            queue = self._queues.get(key)
            if queue is not None:
                queue.append((future, fn, args))
                return future
            self._queues[key] = deque([(future, fn, args)])
        try:
            self._pool.submit(self._drain, key)
        except RuntimeError:
            with self._lock:
                del self._queues[key]
            raise
        return future

    def _drain(self, key: Any) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    return
                future, fn, args = queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - a Future carries any failure, as ThreadPoolExecutor does
                future.set_exception(exc)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


_pool: KeyedSerialPool | None = None


def _current_run() -> str | None:
    from crewai.execution import get_execution_uuid

    return get_execution_uuid()


def _wait(futures: list[Future[Any]]) -> None:
    for future in futures:
        if future.cancelled():
            continue
        future.exception()  # blocks until done without re-raising, like CrewAI's drain_writes


def make_submit_save(original: Callable[..., Any]) -> Callable[..., Any]:
    def _submit_save(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Future[Any]:
        pool = _pool
        if pool is None or getattr(self._save_pool, "_shutdown", True):
            return original(self, fn, *args, **kwargs)  # CrewAI's path, its closed-pool fallback included
        run = _current_run()
        with self._reset_lock:
            ctx = contextvars.copy_context()
            call = (lambda: ctx.run(fn, *args, **kwargs)) if kwargs else None
            future = pool.submit((id(self), run), call) if call else pool.submit((id(self), run), ctx.run, fn, *args)
            setattr(future, RUN_ATTR, run)
            with self._pending_lock:
                self._pending_saves.append(future)
            future.add_done_callback(self._on_save_done)
            return future

    _submit_save.__doc__ = original.__doc__
    return _submit_save


def drain_writes(self: Any) -> None:
    """Block until this run's pending background saves completed (every save outside a run)."""
    run = _current_run()
    with self._pending_lock:
        pending = list(self._pending_saves)
    if run is not None:
        pending = [f for f in pending if getattr(f, RUN_ATTR, run) == run]
    _wait(pending)


def make_close(original: Callable[..., Any]) -> Callable[..., Any]:
    def close(self: Any) -> None:
        with self._pending_lock:
            pending = list(self._pending_saves)
        _wait(pending)
        original(self)

    close.__doc__ = original.__doc__
    return close


def patch_memory(patcher: Patcher, workers: int) -> None:
    """Route ``Memory``'s saves through a keyed pool of ``workers`` threads."""
    global _pool
    memory_cls = patcher.resolve(MEMORY)
    if memory_cls is None:
        return
    names = ("_submit_save", "drain_writes", "close", "_on_save_done")
    missing = [n for n in names if n not in vars(memory_cls)]
    if missing:
        for name in missing:
            patcher.report_missing(f"{MEMORY}.{name}", "not defined on Memory in this CrewAI version")
        return
    _pool = KeyedSerialPool(workers)
    patcher.replace(MEMORY, "_submit_save", make_submit_save(vars(memory_cls)["_submit_save"]))
    patcher.replace(MEMORY, "drain_writes", drain_writes)
    patcher.replace(MEMORY, "close", make_close(vars(memory_cls)["close"]))


def shutdown() -> None:
    """Finish every queued save and stop the pool (``unpatch()``)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown()
