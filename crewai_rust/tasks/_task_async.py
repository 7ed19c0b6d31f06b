"""``Task.execute_async`` on the shared bounded executor, one task at a time per agent.

Stock starts a raw thread per async task. Here the task runs as a job of the
shared executor: same ``concurrent.futures.Future`` returned at once, same
context copy, but at most ``max_concurrency`` task bodies run at once and
threads are reused.

Two async tasks on one agent (crewAIInc/crewAI #7332) share that agent's one
``agent_executor``: stock runs them together and the second fails with
"Executor is already running" (or, with another executor class, the two
clobber each other's prompt and tools). With ``serialize_agent_tasks`` (the
default) a task holds its agent's lock while it runs, so tasks of the same agent
run one after another and tasks of different agents still overlap.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_locks_guard = threading.Lock()
_agent_locks: dict[int, threading.RLock] = {}


def _agent_lock(agent: Any) -> threading.RLock:
    """One re-entrant lock per live agent object (dropped with the agent)."""
    key = id(agent)
    with _locks_guard:
        lock = _agent_locks.get(key)
        if lock is None:
            lock = threading.RLock()
            _agent_locks[key] = lock
            try:
                weakref.finalize(agent, _forget, key)
            except TypeError:  # not weak-referenceable: keep the lock for the process
                pass
        return lock


def _forget(key: int) -> None:
    with _locks_guard:
        _agent_locks.pop(key, None)


def make_execute_async(executor: Any, serialize_agent_tasks: bool) -> Callable[..., Future[Any]]:
    """The patched ``Task.execute_async``."""

    def execute_async(self: Any, agent: Any = None, context: str | None = None, tools: list[Any] | None = None) -> Future[Any]:
        """Execute the task asynchronously."""
        future: Future[Any] = Future()
        runner = self._execute_task_async
        owner = agent if agent is not None else self.agent

        def job() -> None:
            try:
                if serialize_agent_tasks and owner is not None:
                    with _agent_lock(owner):
                        runner(agent, context, tools, future)
                else:
                    runner(agent, context, tools, future)
            except BaseException as exc:
                # Stock leaves the future pending forever here; a waiting crew would hang.
                if not future.done():
                    future.set_exception(exc)
                raise

        executor.spawn(job)
        return future

    return execute_async
