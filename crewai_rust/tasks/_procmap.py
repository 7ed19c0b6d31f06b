"""``map`` over a :class:`~._procpool.ProcessPool` with the thread backend's rules.

Same promises as ``RustTaskExecutor.map`` (see :mod:`._executor`): results in
input order; ``timeout`` per item from the moment a worker starts it (the item
is reported as ``TimeoutError`` and its late result dropped; the call still
waits for it, as the thread backend does); the first error cancels items not
started and is raised after the running ones return, unless
``return_exceptions``; Ctrl-C cancels everything and stops the pool's workers at
once (their runs are abandoned, so none is left behind), then re-raises.
At most ``max_concurrency`` items of one call are in the workers at once.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

from ._collect import Collector, timeout_error
from ._procpool import Job, ProcessPool

Progress = Callable[[int, int], Any]
_POLL = 0.1


def _notify(finished: queue.SimpleQueue[int], index: int, _future: object) -> None:
    finished.put(index)


def process_map(
    pool: ProcessPool,
    fn: Callable[[Any], Any],
    items: list[Any],
    *,
    max_concurrency: int,
    timeout: float | None = None,
    return_exceptions: bool = False,
    on_progress: Progress | None = None,
    on_settle: Callable[[int, bool, Any], Any] | None = None,
    cancel: threading.Event | None = None,
) -> list[Any]:
    """``[fn(item) for item in items]`` on the pool's workers; see the module docstring."""
    n = len(items)
    if n == 0:
        return []
    pool.start()
    collector = Collector(n, timeout, not return_exceptions)
    finished: queue.SimpleQueue[int] = queue.SimpleQueue()
    jobs: dict[int, Job] = {}
    next_index = 0
    stop = False

    def launch() -> None:
        nonlocal next_index
        while not stop and next_index < n and len(jobs) < max_concurrency:
            index = next_index
            next_index += 1
            job = pool.submit(fn, items[index])
            jobs[index] = job
            collector.running += 1  # settled by ``returned`` when its future completes
            job.future.add_done_callback(functools.partial(_notify, finished, index))

    try:
        launch()
        while jobs:
            if cancel is not None and cancel.is_set():
                raise CancelledError("the fan-out was cancelled")
            try:
                index = finished.get(timeout=_POLL)
            except queue.Empty:
                index = None
            if index is not None:
                job = jobs.pop(index)
                future = job.future
                if future.cancelled():
                    collector.running -= 1
                else:
                    error = future.exception()
                    value = future.result() if error is None else error
                    if collector.returned(index, error is None, value) and on_settle is not None:
                        on_settle(index, error is None, value)
            if timeout is not None:
                now = time.monotonic()
                for i, job in jobs.items():
                    if job.started_at is not None and not collector.settled[i] and now - job.started_at >= timeout:
                        collector._settle(i, False, timeout_error(i, timeout))
                        if on_settle is not None:
                            on_settle(i, False, collector.results[i])
            if index is not None and on_progress is not None:
                try:
                    on_progress(collector.settled_count, n)
                except Exception as exc:
                    collector.first_error = collector.first_error or exc
                    collector.fail_fast = True
            if collector.should_cancel():
                if not stop:
                    stop = True
                    for job in jobs.values():
                        job.future.cancel()  # only those a worker has not started
            else:
                launch()
    except BaseException:
        # Ctrl-C or cancellation: nothing of this call may keep running.
        for job in jobs.values():
            job.future.cancel()
        if any(not job.future.done() for job in jobs.values()):
            pool.shutdown(kill=True)
        raise
    return collector.outcome()
