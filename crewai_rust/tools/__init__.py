"""TOOLS: recursion-tracked tool dispatch and a loop guard that refuses runaway calls early.

``RustToolExecutor`` works on its own (``register_tool`` + ``execute_tool``) and,
through ``crewai_rust.patch()``, inside CrewAI's before/after tool-call hooks and
its before-LLM-call hook (escalation, per-kickoff budget).
``ToolLoopError``, ``ToolLoopAbortedError`` and ``BudgetExceededError`` derive
from CrewAI's exceptions, so importing them imports CrewAI (only then).
"""

from __future__ import annotations

from typing import Any

from ._activation import active_executor
from ._errors import Refusal, ToolArgumentsError, ToolGuardError, ToolNotRegisteredError, ToolRefusedError
from ._executor import RustToolExecutor

_CREWAI_ERRORS = ("BudgetExceededError", "ToolLoopAbortedError", "ToolLoopError")

__all__ = [
    "BudgetExceededError",
    "Refusal",
    "RustToolExecutor",
    "ToolArgumentsError",
    "ToolGuardError",
    "ToolLoopAbortedError",
    "ToolLoopError",
    "ToolNotRegisteredError",
    "ToolRefusedError",
    "active_executor",
]


def __getattr__(name: str) -> Any:
    if name in _CREWAI_ERRORS:
        from . import _stops

        return getattr(_stops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
