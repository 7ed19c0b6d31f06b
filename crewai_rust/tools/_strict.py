"""The exception ``strict=True`` raises through a kickoff (imports CrewAI)."""

from __future__ import annotations

from typing import Any

from crewai.hooks import HookAborted

from ._errors import Refusal


class ToolLoopAbortedError(HookAborted):
    """A refused tool call under ``strict=True``: CrewAI lets ``HookAborted`` out of an after-hook."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(reason=refusal.message, source="crewai_rust.tools")
        self.refusal = refusal


def loop_aborted(refusal: Any) -> ToolLoopAbortedError:
    return ToolLoopAbortedError(refusal)
