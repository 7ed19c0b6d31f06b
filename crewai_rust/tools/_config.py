"""Options of the TOOLS component: ``patch(tools={...})`` over environment variables over defaults.

Environment variables (read when ``patch()`` runs):

- ``CREWAI_RUST_TOOLS_MAX_DEPTH``: nested tool calls allowed (default 8)
- ``CREWAI_RUST_TOOLS_LOOP_WINDOW``: calls remembered per run (default 10)
- ``CREWAI_RUST_TOOLS_MAX_REPEATS``: identical calls allowed in the window (default 3)
- ``CREWAI_RUST_TOOLS_CYCLE_REPEATS``: rounds of a short cycle allowed (default 2)
- ``CREWAI_RUST_TOOLS_MAX_CYCLE_LENGTH``: longest cycle looked for (default 3; 0 or 1 turns cycle detection off)
- ``CREWAI_RUST_TOOLS_MAX_CALLS``: tool calls per kickoff (default: no budget)
- ``CREWAI_RUST_TOOLS_MAX_REFUSALS``: refusals of one agent in one task before its forced final answer (default 2; 0 = never)
- ``CREWAI_RUST_TOOLS_MAX_LLM_CALLS``: LLM calls per kickoff (default: no budget)
- ``CREWAI_RUST_TOOLS_MAX_TOKENS``: tokens per kickoff, from CrewAI's usage records (default: no budget)
- ``CREWAI_RUST_TOOLS_STRICT``: 1 makes a refusal abort the kickoff (default 0)
- ``CREWAI_RUST_TOOLS_GUARD``: 0 leaves the hooks out (only the faster repeated-call check)
- ``CREWAI_RUST_TOOLS_REPEATED_CHECK``: 0 keeps CrewAI's own ``check_repeated_tool_call``
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._settings import resolve_settings, setting
from ._executor import DEFAULTS


@dataclasses.dataclass(frozen=True)
class ToolsSettings:
    """What ``patch(tools=...)`` configures: the executor's limits and which hooks go in."""

    max_recursion_depth: int = setting(DEFAULTS["max_recursion_depth"], "CREWAI_RUST_TOOLS_MAX_DEPTH", kind="int")
    loop_window: int = setting(DEFAULTS["loop_window"], "CREWAI_RUST_TOOLS_LOOP_WINDOW", kind="int")
    max_repeats: int = setting(DEFAULTS["max_repeats"], "CREWAI_RUST_TOOLS_MAX_REPEATS", kind="int")
    cycle_repeats: int = setting(DEFAULTS["cycle_repeats"], "CREWAI_RUST_TOOLS_CYCLE_REPEATS", kind="int")
    max_cycle_length: int = setting(DEFAULTS["max_cycle_length"], "CREWAI_RUST_TOOLS_MAX_CYCLE_LENGTH", kind="int", minimum=0)
    max_calls: int | None = setting(DEFAULTS["max_calls"], "CREWAI_RUST_TOOLS_MAX_CALLS", kind="int")
    max_refusals: int = setting(DEFAULTS["max_refusals"], "CREWAI_RUST_TOOLS_MAX_REFUSALS", kind="int", minimum=0)
    max_llm_calls: int | None = setting(DEFAULTS["max_llm_calls"], "CREWAI_RUST_TOOLS_MAX_LLM_CALLS", kind="int")
    max_tokens: int | None = setting(DEFAULTS["max_tokens"], "CREWAI_RUST_TOOLS_MAX_TOKENS", kind="int")
    strict: bool = setting(DEFAULTS["strict"], "CREWAI_RUST_TOOLS_STRICT", kind="flag")
    guard: bool = setting(True, "CREWAI_RUST_TOOLS_GUARD", kind="flag")
    replace_repeated_check: bool = setting(True, "CREWAI_RUST_TOOLS_REPEATED_CHECK", kind="flag")
    use_rust: bool | None = setting(None)

    @property
    def has_budget(self) -> bool:
        """A per-kickoff LLM-call or token budget is set (it needs the LLM hook)."""
        return self.max_llm_calls is not None or self.max_tokens is not None

    def executor_kwargs(self) -> dict[str, Any]:
        """The :class:`RustToolExecutor` arguments (everything but the hook switches)."""
        kwargs = dataclasses.asdict(self)
        del kwargs["guard"], kwargs["replace_repeated_check"]
        return kwargs


def resolve(options: dict[str, Any]) -> ToolsSettings:
    """Merged settings; unknown option names raise so a typo is never ignored."""
    return resolve_settings(ToolsSettings, "tools", options)
