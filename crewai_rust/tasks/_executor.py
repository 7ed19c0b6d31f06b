"""``RustTaskExecutor``: bounded concurrent fan-out of python callables.

What it promises (both twins, and the nested path):

* results come back in input order;
* at most ``max_concurrency`` callables of one executor run at once, across all
  its calls (``map``, ``submit``, ``execute_concurrent_tasks``; ``amap`` with
  coroutine functions bounds each call);
* ``timeout`` is per item, counted from the moment the item starts. Python
  cannot stop a thread, so a callable that overruns keeps running: its item is
  reported as ``TimeoutError`` at the deadline (its result is dropped), it keeps
  its slot until it returns, and ``map`` returns only after it has returned. So
  nothing started by a call is still running when the call returns;
* the first error (an exception or a timeout) stops items that have not
  started, waits for those running, and is raised, unless
  ``return_exceptions=True`` puts every exception in the result list instead;
* Ctrl-C (``KeyboardInterrupt``) in the waiting caller cancels every item not
  started and is re-raised at once, without waiting for running callables (the
  one case where a callable can outlive the call: the program is being
  interrupted). Worker threads are daemons, so they never hold the process open;
* each job runs in a copy of the caller's ``contextvars`` context, so context
  variables (tool-recursion tracking, current task ids) are visible inside it;
* a call made from inside one of the executor's own jobs runs its items in the
  calling thread, one after another, instead of queueing behind the slots its
  own callers hold (which would deadlock).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from .._selection import implementation_name, speedups_module, twin
from .._selection import use_rust as resolve_use_rust
from . import _exit, _nesting
from ._backends import REMOTE_BACKENDS, resolve_backend
from ._collect import Collector, timeout_error
from ._config import check_timeout, resolve_max_concurrency
from ._inline import run_inline
from ._procexec import ProcessBackend
from . import _fanout_py
from ._unraisable import report_unraisable
from ._threads import shared_pool

Progress = Callable[[int, int], Any]


def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def _make_engine(rust: bool, max_concurrency: int) -> Any:
    _exit.register(speedups_module() if rust else None)
    return twin(_fanout_py.Fanout, rust)(max_concurrency)


class RustTaskExecutor:
    """Bounded, ordered, interruptible fan-out of python callables over threads.

    ``max_concurrency`` defaults to ``CREWAI_RUST_MAX_CONCURRENCY`` (else 16).
    ``use_rust`` picks the twin: ``None`` the compiled one when available.
    ``backend="processes"`` runs ``map``/``submit``/``amap`` on ``workers`` worker
    processes instead (functions and items must pickle; see :mod:`._procexec`);
    ``backend="ray"`` on ``workers`` Ray actors (``address``: a cluster, else a local Ray).
    """

    def __init__(
        self,
        max_concurrency: int | None = None,
        use_rust: bool | None = None,
        *,
        backend: str = "threads",
        workers: int | None = None,
        address: str | None = None,
    ) -> None:
        self.max_concurrency = resolve_max_concurrency(max_concurrency)
        self._rust = resolve_use_rust(use_rust)
        self._engine = _make_engine(self._rust, self.max_concurrency)
        self._key = _nesting.new_key()
        self.backend = resolve_backend(backend)
        self._processes = (ProcessBackend(workers, self.max_concurrency, self.backend, address)
                           if self.backend in REMOTE_BACKENDS else None)

    @property
    def implementation(self) -> str:
        """``"rust"`` or ``"python"``: which twin runs the jobs."""
        return implementation_name(self._rust)

    def __repr__(self) -> str:
        backend = "" if self._processes is None else f", backend={self.backend!r}, workers={self._processes.workers}"
        return f"RustTaskExecutor(max_concurrency={self.max_concurrency}, implementation={self.implementation!r}{backend})"

    # -- synchronous -------------------------------------------------------
    def map(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        *,
        timeout: float | None = None,
        return_exceptions: bool = False,
        on_progress: Progress | None = None,
    ) -> list[Any]:
        """``[fn(item) for item in items]``, run concurrently; results in input order.

        ``on_progress(done, total)`` is called in the calling thread after each
        item settles. See the module docstring for timeouts, errors and Ctrl-C.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if on_progress is not None and not callable(on_progress):
            raise TypeError(f"on_progress must be callable or None, got {type(on_progress).__name__}")
        timeout = check_timeout(timeout)
        items = list(items)
        if self._processes is not None:
            return self._processes.map(fn, items, timeout, bool(return_exceptions), on_progress)
        ctx = _nesting.job_context(self._key)
        if _nesting.inside(self._key):
            return run_inline(fn, items, ctx, timeout, return_exceptions, on_progress)
        return self._engine.run_batch(fn, items, ctx, timeout, bool(return_exceptions), on_progress)

    def execute_concurrent_tasks(
        self,
        callables: Iterable[Callable[[], Any]],
        *,
        timeout: float | None = None,
        return_exceptions: bool = False,
        on_progress: Progress | None = None,
    ) -> list[Any]:
        """Call each zero-argument callable concurrently; their results in the same order."""
        jobs = list(callables)
        for index, job in enumerate(jobs):
            if not callable(job):
                raise TypeError(f"callables[{index}] is not callable: {type(job).__name__}")
        return self.map(_call, jobs, timeout=timeout, return_exceptions=return_exceptions, on_progress=on_progress)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` when a slot is free; a ``concurrent.futures.Future`` of its result.

        Cancelling the future before the job starts skips the job.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if self._processes is not None:
            return self._processes.submit(fn, args, kwargs)
        future: Future[Any] = Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        self.spawn(job)
        return future

    def spawn(self, job: Callable[[], Any]) -> None:
        """Run ``job()`` in a copy of the caller's context when a slot is free; fire and forget.

        An exception escaping ``job`` goes to ``sys.unraisablehook``. Called from
        inside one of this executor's jobs, it starts at once on its own thread.
        """
        if self._processes is not None:
            self._processes.submit(job, (), {})
            return
        ctx = _nesting.job_context(self._key)
        if _nesting.inside(self._key):
            _exit.job_started()
            shared_pool().spawn(lambda: _run_reporting(ctx, job))
            return
        self._engine.submit(job, ctx)

    # -- asynchronous ------------------------------------------------------
    async def amap(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        *,
        timeout: float | None = None,
        return_exceptions: bool = False,
        on_progress: Progress | None = None,
    ) -> list[Any]:
        """:meth:`map` for event-loop callers; ``fn`` may be a coroutine function.

        Coroutines run as tasks on the running loop (bounded per call) and a
        timeout cancels them for real. Plain functions run on the executor's
        threads (bounded with everything else on it); the loop never blocks.
        Cancelling ``amap`` cancels every coroutine item; a running thread item
        finishes on its own.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        timeout = check_timeout(timeout)
        items = list(items)
        if self._processes is not None:
            return await self._processes.amap(fn, items, timeout, bool(return_exceptions), on_progress)
        n = len(items)
        if n == 0:
            return []
        loop = asyncio.get_running_loop()
        collector = Collector(n, None, not return_exceptions)
        is_coroutine = inspect.iscoroutinefunction(fn)
        slots = asyncio.Semaphore(self.max_concurrency)
        stragglers: list[asyncio.Future[Any]] = []
        state = {"stop": False}

        async def run_thread_item(item: Any) -> Any:
            done: asyncio.Future[Any] = loop.create_future()

            def job() -> None:
                try:
                    value = fn(item)
                except BaseException as exc:
                    _resolve(loop, done, None, exc)
                else:
                    _resolve(loop, done, value, None)

            self.spawn(job)
            try:
                return await asyncio.shield(done)
            finally:
                if not done.done():
                    stragglers.append(done)

        async def one(index: int) -> None:
            async with slots:
                if state["stop"]:
                    return
                _nesting.mark(self._key)
                collector.started(index, 0.0)
                work = fn(items[index]) if is_coroutine else run_thread_item(items[index])
                try:
                    value, ok = await asyncio.wait_for(work, timeout), True
                except asyncio.TimeoutError:  # not the builtin TimeoutError before 3.11
                    value, ok = timeout_error(index, timeout or 0.0), False
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:
                    value, ok = exc, False
                collector.returned(index, ok, value)
                if collector.should_cancel():
                    state["stop"] = True
                if on_progress is not None:
                    try:
                        on_progress(collector.settled_count, n)
                    except Exception as exc:
                        collector.first_error = collector.first_error or exc
                        collector.fail_fast = True
                        state["stop"] = True

        await asyncio.gather(*(one(i) for i in range(n)))
        if stragglers:
            await asyncio.gather(*stragglers, return_exceptions=True)
        return collector.outcome()


def _resolve(loop: asyncio.AbstractEventLoop, done: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    """Complete ``done`` from a worker thread; a closed loop means nobody waits any more."""

    def settle() -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass


def _run_reporting(ctx: contextvars.Context, job: Callable[[], Any]) -> None:
    try:
        ctx.copy().run(job)
    except BaseException as exc:
        report_unraisable(exc, job)
    finally:
        _exit.job_finished()
