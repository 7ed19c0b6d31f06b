"""Flow runs on one event loop per thread, and no thread hop for the engine's no-op steps.

``Flow.kickoff`` calls ``asyncio.run`` per run: a new loop, a new default
executor and new worker threads every time (an agent executor is a Flow, so
that is once per task). CrewAI's flow module reaches asyncio through its module
global ``asyncio``; RUNTIME points that global at :class:`FlowAsyncio`, which is
the real module except for two names:

- ``run``: the same contract as ``asyncio.run`` (refuses a running loop, the
  main coroutine runs in a copied context, leftover tasks are cancelled, every
  executor job started by the run is waited for before it returns, the thread's
  current loop is unset afterwards) on a loop kept per thread, with its worker
  threads kept warm;
- ``to_thread``: CrewAI's own bookkeeping steps that would do nothing
  (persistence off, no memory to drain, no event handler pending) return
  after one yield to the loop instead of a round trip to a worker thread;
  so do the steps of CrewAI's own flows named in :data:`INLINE_STEPS` (agent
  executor routing, memory recall scoring, save dedup: they read their flow's
  state and config and call nothing else),
  in the same copied context CrewAI's worker would use. Every other step (any
  user step, an LLM or tool call, a step that may start a flow, an async step)
  still runs where CrewAI runs it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import threading
import types
from collections.abc import Callable, Coroutine
from typing import Any

_local = threading.local()
#: Longest wait for a free worker to pick a step up (a safety net: a worker is free, so it is normally microseconds).
PICKUP_WAIT_S = 0.5


class _TrackingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor; remembers jobs in flight so a run can wait for its own."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="asyncio")
        self._in_flight: set[concurrent.futures.Future[Any]] = set()
        self._in_flight_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        # Stock runs every Flow on a fresh executor, so a step's first hop starts
        # a new thread, and ``Thread.start`` hands that thread the GIL: the step
        # begins before the loop emits the next event (CrewAI's own tests rely on
        # that order for parallel start methods). Warm threads do not wait to be
        # picked up, so wait for it here whenever a worker is free to do so.
        with self._in_flight_lock:
            free_worker = len(self._in_flight) < self._max_workers
        picked = threading.Event() if free_worker else None

        def job() -> Any:
            if picked is not None:
                picked.set()
            return fn(*args, **kwargs)

        future = super().submit(job)
        with self._in_flight_lock:
            self._in_flight.add(future)
        future.add_done_callback(self._forget)
        if picked is not None:
            picked.wait(PICKUP_WAIT_S)
        return future

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._in_flight_lock:
            self._in_flight.discard(future)

    def wait_idle(self) -> None:
        """Block until every submitted job finished (what ``asyncio.run``'s executor shutdown waits for)."""
        while True:
            with self._in_flight_lock:
                pending = list(self._in_flight)
            if not pending:
                return
            concurrent.futures.wait(pending)


class _ThreadLoop:
    """This thread's reusable loop; closed when the thread (and so this holder) goes away."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor = _TrackingExecutor()
        self.loop.set_default_executor(self.executor)
        self.runs = 0

    def close(self) -> None:
        loop = self.loop
        if not loop.is_closed() and not loop.is_running():
            loop.close()
        self.executor.shutdown(wait=False)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown; nothing to report to
            pass


def _thread_loop() -> _ThreadLoop:
    holder: _ThreadLoop | None = getattr(_local, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _ThreadLoop()
        _local.holder = holder
    return holder


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """``asyncio.runners._cancel_all_tasks``: what ``asyncio.run`` does with tasks left at the end."""
    to_cancel = asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*to_cancel, return_exceptions=True))
    for task in to_cancel:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {"message": "unhandled exception during asyncio.run() shutdown", "exception": task.exception(), "task": task}
            )


def run(main: Coroutine[Any, Any, Any], *, debug: bool | None = None) -> Any:
    """``asyncio.run(main)`` on this thread's kept loop."""
    if debug is not None or asyncio._get_running_loop() is not None or not asyncio.iscoroutine(main):
        return asyncio.run(main, debug=debug)  # CrewAI's own behaviour, errors included
    holder = _thread_loop()
    loop = holder.loop
    asyncio.set_event_loop(loop)
    broken = True
    try:
        task = loop.create_task(main)
        try:
            result = loop.run_until_complete(task)
        finally:
            _cancel_all_tasks(loop)
            holder.executor.wait_idle()
        broken = False
        holder.runs += 1
        return result
    except Exception:
        broken = False  # the flow failed, the loop did not
        raise
    finally:
        asyncio.set_event_loop(None)
        if broken and not loop.is_closed():
            # KeyboardInterrupt, SystemExit or a broken loop: never reuse it.
            _local.holder = None
            holder.close()


def runs_on_this_thread() -> int:
    """Flow runs this thread's kept loop has served (for tests)."""
    holder: _ThreadLoop | None = getattr(_local, "holder", None)
    return 0 if holder is None else holder.runs


Predicate = Callable[[Callable[..., Any], tuple[Any, ...]], bool]

#: Steps of CrewAI's own flows that only read their flow's state and config (routing, counters,
#: scoring, in-memory dedup) and call nothing else: no LLM, tool, embedder, storage, hook or flow.
INLINE_STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "AgentExecutor": ("crewai.agents.agent_executor", (
        "check_max_iterations", "continue_iteration", "increment_and_continue",
        "check_native_todo_completion", "check_todos_available")),
    "RecallFlow": ("crewai.memory.recall_flow", ("decide_depth", "synthesize_results")),
    "EncodingFlow": ("crewai.memory.encoding_flow", ("intra_batch_dedup",)),
}


def _never(func: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    return False


class FlowAsyncio(types.ModuleType):
    """The ``asyncio`` module as CrewAI's flow runtime sees it: real, except ``run`` and ``to_thread``."""

    def __init__(self, skip: Predicate, inline: Predicate = _never) -> None:
        super().__init__("asyncio", asyncio.__doc__)
        self._skip = skip
        self._inline = inline
        self.run = run
        #: steps run inline, by qualified name (for tests; a lost count under a race is harmless)
        self.inlined: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def to_thread(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not kwargs and self._skip(func, args):
            await asyncio.sleep(0)  # keep the yield point the thread hop had
            return func(*args)
        if not kwargs and self._inline(func, args):
            await asyncio.sleep(0)
            self.inlined[args[0].__qualname__] += 1
            return func(*args)  # ``ctx.run(step)``: the step in the context CrewAI copied for it
        return await asyncio.to_thread(func, *args, **kwargs)


def make_inline() -> tuple[Predicate, list[str]]:
    """Which ``to_thread(ctx.run, step)`` calls run one of :data:`INLINE_STEPS`; and the steps not found."""
    import importlib

    functions = set()
    missing = []
    for class_name, (module_name, names) in INLINE_STEPS.items():
        try:
            owner = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}:{class_name}")
            continue
        for name in names:
            meth = getattr(vars(owner).get(name), "_meth", None)
            if meth is None:
                missing.append(f"{module_name}:{class_name}.{name}")
            else:
                functions.add(meth)
    if not functions:
        return _never, missing

    def inline(func: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        return (len(args) == 1 and getattr(args[0], "_meth", None) in functions
                and isinstance(getattr(func, "__self__", None), contextvars.Context))

    return inline, missing


def make_skip(flow_cls: Any, event_bus: Any) -> Callable[[Callable[..., Any], tuple[Any, ...]], bool]:
    """Which ``to_thread`` calls of the flow runtime are CrewAI bookkeeping that would return at once."""
    persist_fn = flow_cls._persist_method_completion
    drain_fn = flow_cls._drain_memory_writes
    flush_fn = type(event_bus).flush

    def skip(func: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        target = getattr(func, "__func__", None)
        if target is None:
            return False
        owner = func.__self__  # type: ignore[attr-defined]
        if target is persist_fn:
            definition = owner._definition
            method = definition.methods.get(str(args[0])) if args else None
            if method is None:
                return False
            persist = method.persist if method.persist is not None else definition.persist
            return persist is None or not persist.enabled
        if target is drain_fn:
            return owner.memory is None
        if target is flush_fn and owner is event_bus and not args:
            if not owner._has_pending_events:
                return True
            with owner._futures_lock:
                return not owner._pending_futures
        return False

    return skip
