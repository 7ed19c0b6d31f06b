"""The chain of tool calls in progress, kept per execution context.

A ``ContextVar`` holding an immutable tuple: threads and asyncio tasks started
with ``contextvars.copy_context()`` (CrewAI does this for async tasks, parallel
native tool calls and agent timeouts) inherit the chain of their parent and
never share a mutable counter with parallel crews.
"""

from __future__ import annotations

import contextvars
from typing import Any, NamedTuple


class Frame(NamedTuple):
    """One tool call in progress."""

    agent: str
    tool: str
    coworker: str | None
    marker: Any
    started: float
    refusal: Any
    run: str = ""
    fingerprint: str = ""


_CHAIN: contextvars.ContextVar[tuple[Frame, ...]] = contextvars.ContextVar("crewai_rust_tool_chain", default=())
_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("crewai_rust_tool_run", default=None)


def current_chain() -> tuple[Frame, ...]:
    """The tool calls in progress around the caller, outermost first."""
    return _CHAIN.get()


def current_depth() -> int:
    """How many tool calls are in progress around the caller."""
    return len(_CHAIN.get())


def push(frame: Frame) -> None:
    _CHAIN.set(_CHAIN.get() + (frame,))


def pop(marker: Any) -> Frame | None:
    """Remove the frame of the call identified by ``marker`` (and any stale frames above it)."""
    chain = _CHAIN.get()
    for index in range(len(chain) - 1, -1, -1):
        if chain[index].marker is marker:
            _CHAIN.set(chain[:index])
            return chain[index]
    return None


def set_run(run_id: str | None) -> contextvars.Token[str | None]:
    return _RUN.set(run_id)


def reset_run(token: contextvars.Token[str | None]) -> None:
    _RUN.reset(token)


def explicit_run() -> str | None:
    return _RUN.get()
