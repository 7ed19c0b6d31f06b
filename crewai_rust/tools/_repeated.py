"""A faster ``check_repeated_tool_call`` with exactly CrewAI's behaviour.

CrewAI keys each call by ``hash(json.dumps([tool_name, tool_args, str(result)],
sort_keys=True, default=str))``, which JSON-escapes the whole tool result on
every call. Two calls share a key exactly when each of the three dumps is
equal (the dump of a list is its elements' dumps joined), so this version
keys by the result text itself (hashing a ``str`` is a straight memory scan)
and dumps only the small parts, folding any dump that is a JSON string back
to its text so that ``"x"``, a ``str`` subclass and an object whose ``str`` is
``x`` still collide as they do in CrewAI. Threshold, exception type, message
and record are CrewAI's own: they are read from ``crewai.utilities.agent_utils``
at call time, so a changed ``MAX_REPEATED_TOOL_CALLS`` is honoured.

One addition, for the loop guard only: a call the guard refused carries the
result it stands for (:class:`~crewai_rust.tools._errors.RefusedResult`), the
last result of the same call in the run, and is counted under that result. A
refused repeat is the same no-progress call, so CrewAI's stop still comes on
the 5th identical call, as it does without the guard. Without the guard no
``RefusedResult`` exists and the keys are exactly CrewAI's.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from ._errors import RefusedResult

_dumps = json.dumps
_loads = json.loads


def _part(value: Any) -> Any:
    """A key component equal for two values exactly when their sorted JSON dumps are equal."""
    if type(value) is str:
        return value
    if value is None:
        return ("json", "null")
    dumped = _dumps(value, sort_keys=True, default=str)
    if dumped[:1] == '"':
        return _loads(dumped)  # a JSON string: the same key as that text given as str
    return ("json", dumped)


def repeated_call_key(tool_name: Any, tool_args: Any, result: Any) -> int:
    """The per-run tally key of one (tool, args, result) call."""
    if isinstance(result, RefusedResult) and result.stands_for is not None:
        result = result.stands_for
    text = str(result)
    if type(text) is not str:
        text = str.__str__(text)
    return hash((_part(tool_name), _part(tool_args), text))


def make_check_repeated_tool_call(agent_utils: ModuleType) -> Any:
    """Build the replacement bound to CrewAI's ``agent_utils`` module (its threshold and error types)."""
    original = agent_utils.check_repeated_tool_call

    def check_repeated_tool_call(
        counts: dict[int, int],
        *,
        tool_name: str,
        tool_args: dict[str, Any] | str | None,
        result: Any,
        agent: Any = None,
        task: Any = None,
    ) -> None:
        key = repeated_call_key(tool_name, tool_args, result)
        counts[key] = counts.get(key, 0) + 1
        limit = agent_utils.MAX_REPEATED_TOOL_CALLS
        if counts[key] < limit:
            return

        role = getattr(agent, "role", None)
        raise agent_utils.ToolExecutionFailedError(
            agent_utils.ToolFailureRecord(
                tool_name=tool_name,
                failure=agent_utils.ToolFailure(
                    message=(
                        f"Agent '{role}' called '{tool_name}' with the same "
                        f"arguments {limit} times and got the same "
                        "result each time. Stopped because it is not making progress."
                    ),
                    reason=agent_utils.ToolFailureReason.REPEATED_CALL,
                ),
                tool_args=tool_args,
                agent_role=role,
                task_name=(task.name or task.description) if task else None,
                task_id=str(task.id) if task else None,
            )
        )

    check_repeated_tool_call.__doc__ = original.__doc__
    check_repeated_tool_call.__wrapped_original__ = original  # type: ignore[attr-defined]
    check_repeated_tool_call.__crewai_rust__ = "tools"  # type: ignore[attr-defined]
    return check_repeated_tool_call
