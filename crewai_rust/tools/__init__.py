"""TOOLS: recursion-tracked tool dispatch and a loop guard that refuses runaway calls early.

``RustToolExecutor`` works on its own (``register_tool`` + ``execute_tool``) and,
through ``crewai_rust.patch()``, inside CrewAI's before/after tool-call hooks.
"""

from __future__ import annotations

from ._activation import active_executor
from ._errors import Refusal, ToolArgumentsError, ToolGuardError, ToolNotRegisteredError, ToolRefusedError
from ._executor import RustToolExecutor

__all__ = [
    "Refusal",
    "RustToolExecutor",
    "ToolArgumentsError",
    "ToolGuardError",
    "ToolNotRegisteredError",
    "ToolRefusedError",
    "active_executor",
]
