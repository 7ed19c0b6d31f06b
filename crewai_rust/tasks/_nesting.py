"""Which executors the current code runs inside, carried by a context variable.

Every job runs in a copy of its caller's context with its executor's key
added, so the mark follows work into nested fan-outs (a job that runs a crew
whose tasks fan out again). An executor asked for more work from inside one of
its own jobs must not queue it behind the very slots its callers hold: that is
the classic bounded-pool deadlock. It runs such work without waiting instead.
"""

from __future__ import annotations

import contextvars
import itertools

_ACTIVE: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar("crewai_rust_tasks_active", default=())
_keys = itertools.count(1)


def new_key() -> int:
    """A process-unique key for one executor."""
    return next(_keys)


def inside(key: int) -> bool:
    """True when the calling code runs (perhaps transitively) inside a job of executor ``key``."""
    return key in _ACTIVE.get()


def job_context(key: int) -> contextvars.Context:
    """A copy of the caller's context, marked as inside executor ``key``; jobs run in copies of it."""
    ctx = contextvars.copy_context()
    active = ctx.get(_ACTIVE, ())
    if key not in active:
        ctx.run(_ACTIVE.set, (*active, key))
    return ctx


def mark(key: int) -> None:
    """Mark the current context (an asyncio task's own) as inside executor ``key``."""
    active = _ACTIVE.get()
    if key not in active:
        _ACTIVE.set((*active, key))
