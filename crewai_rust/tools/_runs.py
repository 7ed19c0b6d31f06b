"""Which run (kickoff) a tool call belongs to, and what names mean.

The loop window and the ``max_calls`` budget are per run. CrewAI gives every
outermost kickoff a fresh execution uuid at its start
(``crewai.execution.begin_execution``), kept in a context variable that its
threads inherit, so a new kickoff starts with an empty window and a full
budget. Outside CrewAI, ``RustToolExecutor.run(run_id)`` or ``run_id=`` names
the run; otherwise calls share the run ``"default"``.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from . import _context

DEFAULT_RUN = "default"

#: CrewAI's delegation tools, after ``sanitize_tool_name``.
DELEGATION_TOOLS = frozenset({"delegate_work_to_coworker", "ask_question_to_coworker"})

_NON_WORD = re.compile(r"[^a-z0-9]+")


def run_key(crew: Any = None) -> str:
    """The run a call belongs to: explicit run, CrewAI execution uuid, crew kickoff, or default."""
    explicit = _context.explicit_run()
    if explicit is not None:
        return explicit
    execution = sys.modules.get("crewai.execution")
    if execution is not None:
        uuid = execution.get_execution_uuid()
        if uuid:
            return str(uuid)
    if crew is not None:
        return f"crew:{id(crew)}:{getattr(crew, '_kickoff_event_id', None)}"
    return DEFAULT_RUN


_TOOL_KEYS: dict[str, str] = {}


def tool_key(name: str) -> str:
    """A tool name as CrewAI sanitises it (lower case, words joined by ``_``); cached."""
    key = _TOOL_KEYS.get(name)
    if key is None:
        key = _NON_WORD.sub("_", name.lower()).strip("_")
        if len(_TOOL_KEYS) < 4096:
            _TOOL_KEYS[name] = key
    return key


def agent_role(agent: Any) -> str:
    """The name an agent is known by (its role), or "" without an agent."""
    if agent is None:
        return ""
    if isinstance(agent, str):
        return agent
    role = getattr(agent, "role", None)
    return str(role) if role is not None else type(agent).__name__


def same_agent(a: str, b: str) -> bool:
    """Roles compared the way coworker names are matched: case and spacing do not matter."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def coworker_of(tool_name: str, args: Any) -> str | None:
    """The coworker a delegation call targets, or None for other tools."""
    if tool_key(tool_name) not in DELEGATION_TOOLS or not isinstance(args, dict):
        return None
    coworker = args.get("coworker")
    return str(coworker) if coworker is not None else None
