"""The typed errors that end a kickoff when the guard stops spending (imports CrewAI).

Both derive from CrewAI's ``HookAborted``: it is the one exception CrewAI lets
out of a hook, and ``Agent.execute_task`` passes it through without retrying
(``_passthrough_exceptions``). :class:`ToolLoopError` is also a CrewAI
``ToolExecutionFailedError`` with a ``REPEATED_CALL`` record, so code that
already catches CrewAI's own loop stop catches the guard's too.
"""

from __future__ import annotations

from typing import Any

from crewai.hooks import HookAborted
from crewai.tools.tool_failure import ToolExecutionFailedError, ToolFailure, ToolFailureReason, ToolFailureRecord

from ._errors import Refusal, ToolGuardError


def _task_fields(task: Any) -> dict[str, Any]:
    if task is None:
        return {"task_name": None, "task_id": None}
    return {"task_name": getattr(task, "name", None) or getattr(task, "description", None), "task_id": str(getattr(task, "id", "")) or None}


class ToolLoopError(HookAborted, ToolExecutionFailedError, ToolGuardError):
    """An agent kept calling tools after the guard refused them and asked for its final answer.

    Attributes: ``agent`` (role), ``tool`` (the last tool it asked for),
    ``tools`` and ``fingerprints`` (the refused calls, oldest first),
    ``refusals`` (how many), ``run`` (the kickoff's run id) and CrewAI's
    ``record`` (a ``ToolFailureRecord`` with reason ``REPEATED_CALL``).
    """

    def __init__(
        self,
        agent: str,
        tool: str,
        *,
        run: str,
        refusals: int,
        tools: list[str] | tuple[str, ...] = (),
        fingerprints: list[str] | tuple[str, ...] = (),
        task: Any = None,
        tool_args: Any = None,
        why: str = "kept calling tools after its calls were refused and it was asked for its final answer",
    ) -> None:
        self.agent, self.tool, self.run = agent, tool, run
        self.refusals = refusals
        self.tools = tuple(tools)
        self.fingerprints = tuple(fingerprints)
        message = (
            f"Agent '{agent}' {why} (run {run}): {refusals} refused call(s) of {sorted(set(self.tools)) or [tool]}, "
            f"last tool '{tool}'. Stopped by crewai_rust's loop guard."
        )
        self.record = ToolFailureRecord(
            tool_name=tool,
            failure=ToolFailure(message=message, reason=ToolFailureReason.REPEATED_CALL),
            tool_args=tool_args if isinstance(tool_args, (dict, str)) else None,
            agent_role=agent or None,
            **_task_fields(task),
        )
        Exception.__init__(self, message)
        self.reason = message
        self.source = "crewai_rust.tools"

    def __reduce__(self) -> Any:
        return (_rebuild_loop_error, (self.agent, self.tool, self.run, self.refusals, self.tools, self.fingerprints, self.reason))


def _rebuild_loop_error(agent: str, tool: str, run: str, refusals: int, tools: Any, fingerprints: Any, reason: str) -> ToolLoopError:
    error = ToolLoopError(agent, tool, run=run, refusals=refusals, tools=tools, fingerprints=fingerprints)
    Exception.__init__(error, reason)
    error.reason = reason
    return error


class ToolLoopAbortedError(ToolLoopError):
    """``strict=True``: the first refused call ends the kickoff; ``.refusal`` says why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(
            refusal.agent,
            refusal.tool,
            run=refusal.run,
            refusals=1,
            tools=(refusal.tool,),
            fingerprints=(refusal.fingerprint,) if refusal.fingerprint else (),
        )
        Exception.__init__(self, refusal.message)
        self.reason = refusal.message
        self.refusal = refusal

    def __reduce__(self) -> Any:
        return (ToolLoopAbortedError, (self.refusal,))


class BudgetExceededError(HookAborted, ToolGuardError):
    """The kickoff spent its ``max_llm_calls`` or ``max_tokens`` budget; raised before the next LLM call.

    ``usage`` holds what the run spent so far (``llm_calls`` and CrewAI's token
    counts), ``limit`` the option that was hit and ``budget`` its value.
    """

    def __init__(self, limit: str, budget: int, usage: dict[str, int], *, run: str, agent: str = "") -> None:
        self.limit, self.budget, self.usage, self.run, self.agent = limit, budget, dict(usage), run, agent
        spent = usage.get("llm_calls", 0) if limit == "max_llm_calls" else usage.get("total_tokens", 0)
        message = (
            f"Run {run} spent its budget {limit}={budget} ({spent} used; llm_calls={usage.get('llm_calls', 0)}, "
            f"total_tokens={usage.get('total_tokens', 0)}) before an LLM call of agent '{agent}'. Stopped by crewai_rust."
        )
        super().__init__(reason=message, source="crewai_rust.tools")

    def __reduce__(self) -> Any:
        return (_rebuild_budget_error, (self.limit, self.budget, self.usage, self.run, self.agent))


def _rebuild_budget_error(limit: str, budget: int, usage: dict[str, int], run: str, agent: str) -> BudgetExceededError:
    return BudgetExceededError(limit, budget, usage, run=run, agent=agent)


def loop_aborted(refusal: Any) -> ToolLoopAbortedError:
    return ToolLoopAbortedError(refusal)
