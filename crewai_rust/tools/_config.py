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

from typing import Any

from .._env import check_options, env_flag, env_int
from ._executor import DEFAULTS

_INT_ENV = {
    "max_recursion_depth": ("CREWAI_RUST_TOOLS_MAX_DEPTH", 1),
    "loop_window": ("CREWAI_RUST_TOOLS_LOOP_WINDOW", 1),
    "max_repeats": ("CREWAI_RUST_TOOLS_MAX_REPEATS", 1),
    "cycle_repeats": ("CREWAI_RUST_TOOLS_CYCLE_REPEATS", 1),
    "max_cycle_length": ("CREWAI_RUST_TOOLS_MAX_CYCLE_LENGTH", 0),
    "max_calls": ("CREWAI_RUST_TOOLS_MAX_CALLS", 1),
    "max_refusals": ("CREWAI_RUST_TOOLS_MAX_REFUSALS", 0),
    "max_llm_calls": ("CREWAI_RUST_TOOLS_MAX_LLM_CALLS", 1),
    "max_tokens": ("CREWAI_RUST_TOOLS_MAX_TOKENS", 1),
}
_FLAG_ENV = {
    "strict": ("CREWAI_RUST_TOOLS_STRICT", False),
    "guard": ("CREWAI_RUST_TOOLS_GUARD", True),
    "replace_repeated_check": ("CREWAI_RUST_TOOLS_REPEATED_CHECK", True),
}
KNOWN = set(_INT_ENV) | set(_FLAG_ENV) | {"use_rust"}


def resolve(options: dict[str, Any]) -> dict[str, Any]:
    """Merged settings; unknown option names raise so a typo is never ignored."""
    check_options("tools", options, KNOWN)
    settings: dict[str, Any] = {}
    for name, (env, minimum) in _INT_ENV.items():
        settings[name] = options[name] if name in options else env_int(env, DEFAULTS.get(name), minimum=minimum)
    for name, (env, default) in _FLAG_ENV.items():
        settings[name] = bool(options[name]) if name in options else env_flag(env, default)
    settings["use_rust"] = options.get("use_rust")
    return settings
