"""Typed errors and the refusal record of the tool executor."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

#: Why a call is refused, in the order both guards count them (``rust/src/toolguard/window.rs``).
REASONS = ("recursion", "budget", "repeat", "cycle", "delegation_cycle")


@dataclass(frozen=True)
class Refusal:
    """One refused tool call: why, which call, and the message the agent reads."""

    reason: str
    tool: str
    agent: str
    run: str
    depth: int
    message: str
    chain: tuple[str, ...] = ()
    fingerprint: str = ""
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "tool": self.tool,
            "agent": self.agent,
            "run": self.run,
            "depth": self.depth,
            "message": self.message,
            "chain": list(self.chain),
            "fingerprint": self.fingerprint,
            "at": self.at,
        }


class RefusedResult(str):
    """The text an agent reads for a refused call, and the result that call stands for.

    CrewAI stops a run on the 5th identical (tool, args, result); a refused
    repeat is the same no-progress call as the one it repeats, so the faster
    ``check_repeated_tool_call`` counts it under ``stands_for`` (the last result
    the same call produced in this run), not under the refusal text.
    """

    stands_for: str | None

    def __new__(cls, text: str, stands_for: str | None = None) -> RefusedResult:
        self = super().__new__(cls, text)
        self.stands_for = stands_for
        return self

    def __reduce__(self) -> Any:
        return (RefusedResult, (str(self), self.stands_for))


class ToolGuardError(Exception):
    """Base class of the tool executor's errors."""


class ToolNotRegisteredError(ToolGuardError, KeyError):
    """``execute_tool`` was asked for a name nobody registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ToolArgumentsError(ToolGuardError, TypeError):
    """The arguments are not a mapping (or JSON text of one) the tool can take."""


class ToolRefusedError(ToolGuardError):
    """The guard refused the call before it ran; ``.refusal`` says why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal

    @property
    def reason(self) -> str:
        return self.refusal.reason
