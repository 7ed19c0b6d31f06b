"""Activation of SERIALIZATION: reports which AgentMessage twin runs; patches nothing in CrewAI.

Deliberately left alone (each has an owner or no byte-safe swap):

* ``crewai.memory.storage.kickoff_task_outputs_storage`` (``json.dumps(..., cls=CrewJSONEncoder)``
  of task outputs): the DATABASE component replaces that storage and calls our ``dumps``.
* ``crewai.utilities.agent_utils.check_repeated_tool_call`` (``json.dumps(sort_keys=True)``
  fingerprints): owned by the TOOLS component's guard, which can use ``dumps(sort_keys=True)``.
* ``TaskOutput.json`` and other user-visible ``json.dumps`` strings: their exact text
  (``", "`` separators, ASCII escapes, ``NaN``) is part of CrewAI's behaviour; orjson's text differs.
* ``CrewJSONEncoder`` itself: a ``json.JSONEncoder`` subclass callers pass as ``cls=``; swapping
  it cannot make ``json.dumps`` use orjson.

Activation checks the encoder our ``dumps`` promises equivalence with is still there (a
missing one is reported, not skipped).
"""

from __future__ import annotations

from typing import Any

from .._patcher import Patcher
from .._selection import implementation_name, use_rust

ENCODER = "crewai.utilities.crew_json_encoder:CrewJSONEncoder"


def activate(patcher: Patcher, options: dict[str, Any]) -> str:
    """Report the twin ``AgentMessage()`` hands out by default; SERIALIZATION takes no options."""
    if options:
        raise ValueError(f"SERIALIZATION takes no patch() options, got {sorted(options)}")
    patcher.resolve(ENCODER)  # reported through patcher.missing if CrewAI moved it
    return implementation_name(use_rust(None))
