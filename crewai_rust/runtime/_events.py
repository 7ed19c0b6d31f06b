"""CrewAI's event bus with one persistent consumer and no work for handlers that would do nothing.

``CrewAIEventsBus.emit`` hands every event with a sync handler to a 10-thread
pool: one pool hand-off (a wake-up, often a new thread) per event, ~100 per
demo kickoff. Here, for an event whose handlers are all sync and have no
dependencies (every event of a default install), the handlers run on one
persistent consumer thread, in emission order, in a copy of the emitter's
context, exactly as ``_call_handlers`` runs them in the pool; the returned
future is tracked, so ``flush()`` waits for it as before.

Handlers that provably do nothing for this emission are left out, and an event
left with none costs no hand-off at all: today that is the legacy trace
collector's wrapper (``TraceCollectionListener._on``), which returns at once
while a kickoff owns an execution uuid, read from the same context the handler
would see. Async handlers, dependency-ordered handlers, stream chunks and
events emitted by a handler on the consumer itself keep CrewAI's path.
"""

from __future__ import annotations

import contextvars
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any

#: How long ``unpatch()`` waits for the consumer to finish queued events.
STOP_WAIT_S = 30.0

_consumers: weakref.WeakSet[Consumer] = weakref.WeakSet()


def _noop() -> None:
    return None


def _reset_after_fork() -> None:
    for consumer in list(_consumers):
        consumer._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class Consumer:
    """One daemon thread that runs submitted calls in submission order."""

    def __init__(self) -> None:
        self._queue: SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.ident: int | None = None
        self.delivered = 0
        self.closed = False
        _consumers.add(self)

    def _after_fork(self) -> None:
        """A forked child has no consumer thread: start afresh (what was queued belongs to the parent)."""
        self._queue = SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()
        self.ident = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((future, fn, args))
        if self._thread is None:
            self._start()
        return future

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="crewai-rust-events", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        self.ident = threading.get_ident()
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._deliver(*item)

    def _deliver(self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - a Future carries any failure, as the pool's does
            self.delivered += 1
            future.set_exception(exc)
        else:
            self.delivered += 1  # counted before the future wakes its waiters
            future.set_result(result)

    def wait_idle(self) -> None:
        """Block until every call submitted before this one ran (not from the consumer itself)."""
        if self.closed or self._thread is None or threading.get_ident() == self.ident:
            return
        self.submit(_noop).exception()

    def stop(self) -> None:
        """Stop taking events, run what is queued, then end the thread."""
        self.closed = True
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        self._queue.put(None)
        thread.join(STOP_WAIT_S)
        # an emit that passed the ``closed`` check while we stopped: deliver it here
        while not self._queue.empty():
            item = self._queue.get()
            if item is not None:
                self._deliver(*item)


class SyncExecutor:
    """The bus's ``_sync_executor`` as RUNTIME leaves it: CrewAI's pool, whose ``shutdown(wait=True)``
    also waits for the handlers queued on the consumer.

    Code that waits for sync handlers by shutting the bus's pool down (CrewAI's
    own test helper ``wait_for_event_handlers`` does) would otherwise return
    before the consumer ran them. Everything else is the pool's own: jobs
    submitted to it still run on it.
    """

    def __init__(self, inner: Any, consumer: Consumer) -> None:
        self.inner = inner
        self._consumer = consumer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.inner.submit(fn, *args, **kwargs)  # type: ignore[no-any-return]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if wait:
            self._consumer.wait_idle()
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)


def _legacy_trace_code() -> Any:
    """The code object of ``TraceCollectionListener._on``'s ``legacy_handler`` wrapper, or None."""
    try:
        from crewai.events.listeners.tracing.trace_listener import (
            TraceCollectionListener,
        )
    except ImportError:
        return None
    for register in TraceCollectionListener._on.__code__.co_consts:
        if getattr(register, "co_name", None) == "register":
            for inner in register.co_consts:
                if getattr(inner, "co_name", None) == "legacy_handler":
                    return inner
    return None


def make_emit(bus_cls: Any, original: Callable[..., Any], consumer: Consumer) -> Callable[..., Any]:
    """An ``emit`` with the fast path above; anything else goes to ``original`` untouched."""
    from crewai.events.types.llm_events import LLMStreamChunkEvent
    from crewai.execution import get_execution_uuid

    legacy_code = _legacy_trace_code()
    # per event type: (the handler set it was computed from, handlers in that set's order, which are legacy)
    plans: dict[type, tuple[frozenset[Any], tuple[Any, ...], tuple[bool, ...]]] = {}

    def _plan(event_type: type, handlers: frozenset[Any]) -> tuple[tuple[Any, ...], tuple[bool, ...]]:
        plan = plans.get(event_type)
        if plan is None or plan[0] is not handlers:
            ordered = tuple(handlers)
            legacy = tuple(getattr(h, "__code__", None) is legacy_code for h in ordered)
            plan = (handlers, ordered, legacy)
            plans[event_type] = plan
        return plan[1], plan[2]

    def emit(self: Any, source: Any, event: Any) -> Future[None] | None:
        event_type = type(event)
        with self._rwlock.r_locked():
            handlers = self._sync_handlers.get(event_type)
            fast = (
                handlers is not None
                and not self._shutting_down
                and event_type not in self._async_handlers
                and event_type not in self._handler_dependencies
            )
        if not fast or consumer.closed or event_type is LLMStreamChunkEvent or threading.get_ident() == consumer.ident:
            return original(self, source, event)
        self._ensure_executor_initialized()
        executor = self._sync_executor
        if type(executor) is not SyncExecutor:
            if getattr(executor, "_shutdown", False):
                return original(self, source, event)  # a pool that was shut down: what stock does then
            self._sync_executor = SyncExecutor(executor, consumer)
        elif getattr(executor.inner, "_shutdown", False):
            return original(self, source, event)
        self._prepare_event(source, event)
        ordered, legacy = _plan(event_type, handlers)  # type: ignore[arg-type]
        if True in legacy and get_execution_uuid() is not None:
            ordered = tuple(h for h, idle in zip(ordered, legacy) if not idle)
        self._has_pending_events = True
        if not ordered:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        ctx = contextvars.copy_context()
        return self._track_future(consumer.submit(ctx.run, self._call_handlers, source, event, ordered, self._runtime_state))

    emit.__doc__ = original.__doc__
    emit.__wrapped__ = original  # type: ignore[attr-defined]
    return emit


def unwrap_executor(bus: Any) -> None:
    """Give the bus its own pool back (``unpatch()``)."""
    executor = getattr(bus, "_sync_executor", None)
    if type(executor) is SyncExecutor:
        bus._sync_executor = executor.inner


__all__ = ["Consumer", "SyncExecutor", "make_emit", "unwrap_executor"]
