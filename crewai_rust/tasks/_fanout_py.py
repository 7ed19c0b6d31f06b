"""The python twin of the fan-out engine: a bounded lane of jobs on reused daemon threads.

Each executor owns a FIFO of ``(job, index)`` entries and at most
``max_concurrency`` workers draining it, so the bound holds across every call
sharing the executor. Workers report to the caller through a queue; the caller
never sleeps longer than ``POLL_SECONDS`` so Ctrl-C and deadlines are seen.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import _exit
from ._collect import Collector
from ._threads import shared_pool
from ._unraisable import report_unraisable

POLL_SECONDS = 0.05

_STARTED = 0
_RETURNED = 1


class _Batch:
    """Items of one ``run_batch`` call and the channel back to its caller."""

    __slots__ = ("cancelled", "claimed", "ctx", "engine", "events", "fail_fast", "fn", "items", "track_start")

    def __init__(
        self, engine: Fanout, fn: Callable[[Any], Any], items: list[Any], ctx: contextvars.Context,
        track_start: bool, fail_fast: bool,
    ) -> None:
        self.engine = engine
        self.fail_fast = fail_fast
        self.fn = fn
        self.items = items
        self.ctx = ctx
        self.track_start = track_start
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.cancelled = False
        self.claimed = 0  # items a worker took (they run, or ran); guarded by the engine lock

    def run(self, index: int) -> None:
        put = self.events.put
        if self.track_start:
            put((_STARTED, index, time.monotonic()))
        try:
            value = self.ctx.copy().run(self.fn, self.items[index])
            ok = True
        except BaseException as exc:  # the item's outcome, reported to the caller
            value, ok = exc, False
            if self.fail_fast:
                self.engine._cancel(self)  # stop the rest now, not when the caller wakes
        put((_RETURNED, index, ok, value))


class _Single:
    """One fire-and-forget job from :meth:`Fanout.submit`."""

    __slots__ = ("cancelled", "claimed", "ctx", "fn")

    def __init__(self, fn: Callable[[], Any], ctx: contextvars.Context) -> None:
        self.fn, self.ctx = fn, ctx
        self.cancelled = False
        self.claimed = 0

    def run(self, index: int) -> None:
        try:
            self.ctx.copy().run(self.fn)
        except BaseException as exc:
            report_unraisable(exc, self.fn)


class Fanout:
    """Bounded concurrent execution of python callables (the python twin)."""

    def __init__(self, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._queue: deque[tuple[Any, int]] = deque()
        self._workers = 0
        self._pool = shared_pool()

    # -- scheduling --------------------------------------------------------
    def _enqueue(self, entries: Any, count: int) -> None:
        with self._lock:
            self._queue.extend(entries)
            spawn = min(self.max_concurrency - self._workers, count)
            if spawn > 0:
                self._workers += spawn
        for _ in range(max(spawn, 0)):
            _exit.job_started()  # the exit hook waits for every worker (see _exit)
            self._pool.spawn(self._drain)

    def _drain(self) -> None:
        try:
            self._drain_queue()
        finally:
            _exit.job_finished()

    def _drain_queue(self) -> None:
        lock, pending = self._lock, self._queue
        while True:
            with lock:
                while True:
                    if not pending:
                        self._workers -= 1
                        return
                    job, index = pending.popleft()
                    if _exit.closing and isinstance(job, _Batch):
                        job.cancelled = True  # interpreter exit: start no more batch items
                    if not job.cancelled:
                        job.claimed += 1
                        break
            job.run(index)
            del job

    def _cancel(self, batch: _Batch) -> int:
        """Stop ``batch`` from starting more items; returns how many it started."""
        with self._lock:
            batch.cancelled = True
            return batch.claimed

    # -- public ------------------------------------------------------------
    def submit(self, fn: Callable[[], Any], ctx: contextvars.Context) -> None:
        """Run ``fn()`` in a copy of ``ctx`` when a slot is free; errors go to ``sys.unraisablehook``."""
        self._enqueue(((_Single(fn, ctx), 0),), 1)

    def run_batch(
        self,
        fn: Callable[[Any], Any],
        items: list[Any],
        ctx: contextvars.Context,
        timeout: float | None,
        return_exceptions: bool,
        on_progress: Callable[[int, int], Any] | None,
    ) -> list[Any]:
        """``[fn(item) for item in items]`` run concurrently; see :class:`~._collect.Collector` for the rules."""
        n = len(items)
        if n == 0:
            return []
        batch = _Batch(self, fn, items, ctx, timeout is not None, not return_exceptions)
        collector = Collector(n, timeout, not return_exceptions)
        self._enqueue(((batch, i) for i in range(n)), n)
        try:
            self._wait(batch, collector, on_progress)
        except BaseException:
            # Ctrl-C (or any error while waiting): start nothing more and leave now.
            self._cancel(batch)
            raise
        return collector.outcome()

    def _wait(self, batch: _Batch, collector: Collector, on_progress: Callable[[int, int], Any] | None) -> None:
        n = collector.n
        get = batch.events.get
        started_total: int | None = None  # known once cancelled: how many items will ever run
        returned = 0
        progress_error: BaseException | None = None
        while True:
            if started_total is None and collector.should_cancel():
                started_total = self._cancel(batch)
            if started_total is not None:
                if returned >= started_total:
                    break
            elif collector.settled_count == n and collector.running == 0 and returned == n:
                break
            wait = POLL_SECONDS
            deadline = collector.next_deadline()
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            try:
                event = get(timeout=wait) if wait > 0 else batch.events.get_nowait()
            except queue.Empty:
                event = None
            before = collector.settled_count
            while event is not None:
                if event[0] == _STARTED:
                    collector.started(event[1], event[2])
                else:
                    if not batch.track_start:
                        collector.running += 1
                    collector.returned(event[1], event[2], event[3])
                    returned += 1
                try:
                    event = batch.events.get_nowait()
                except queue.Empty:
                    event = None
            if collector.timeout is not None:
                collector.expire(time.monotonic())
            if on_progress is not None and progress_error is None:
                for done in range(before + 1, collector.settled_count + 1):
                    try:
                        on_progress(done, n)
                    except Exception as exc:  # a failing callback cancels like a failing item
                        progress_error = exc
                        if started_total is None:
                            started_total = self._cancel(batch)
                        break
        if progress_error is not None:
            raise progress_error
