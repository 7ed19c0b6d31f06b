"""Real offline crews driven by a scripted LLM: the guard refuses runaway tool
calls before they execute, stock CrewAI is measured on the same scripts, and
legitimate workflows are never refused."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

import crewai_rust

pytestmark = pytest.mark.crew


def _tool_call(n: int, name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]


def _tool_results(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "tool")


def _echo_crew(script: Callable[[int], dict[str, Any] | None], *, role: str = "Looper", latency: float = 0.0, max_iter: int = 12
) -> tuple[Any, list[str]]:
    """A one-agent crew whose LLM calls ``echo`` with ``script(step)`` until it returns None."""
    from crewai import Agent, Crew, Task
    from crewai.tools import BaseTool

    from crewai_rust.testing import ScriptedLLM

    executed: list[str] = []

    class Echo(BaseTool):
        name: str = "echo"
        description: str = "Echo the text back."

        def _run(self, text: str) -> str:
            executed.append(text)
            return f"echo: {text}"

    def respond(messages: list[dict[str, Any]], tools: Any) -> Any:
        if not tools:  # CrewAI's forced final answer after max_iter
            return None
        step = _tool_results(messages)
        args = script(step)
        return None if args is None else _tool_call(step, "echo", args)

    llm = ScriptedLLM(respond, latency=latency)
    agent = Agent(role=role, goal="use the tool", backstory="scripted", llm=llm, tools=[Echo()], max_iter=max_iter)
    task = Task(description="Do the thing", expected_output="a sentence", agent=agent)
    return Crew(agents=[agent], tasks=[task]), executed


def _run(crew: Any) -> tuple[str, Any]:
    try:
        return "finished", crew.kickoff()
    except Exception as exc:
        return "raised", exc


def _same(step: int) -> dict[str, Any]:
    return {"text": "hello"}


def _alternate(step: int) -> dict[str, Any]:
    return {"text": "A" if step % 2 == 0 else "B"}


def _legit(step: int) -> dict[str, Any] | None:
    return {"text": f"section {step} of the report"} if step < 15 else None


SCRIPTS = {"repeat": _same, "alternate": _alternate}


@pytest.mark.parametrize("scenario", ["repeat", "alternate"])
def test_runaway_loops_are_refused_before_execution(use_rust: bool, scenario: str) -> None:
    from crewai.tools.tool_failure import ToolExecutionFailedError

    from crewai_rust.tools import active_executor

    crew, executed = _echo_crew(SCRIPTS[scenario])
    outcome, stock_error = _run(crew)
    stock_calls = len(executed)
    # Stock CrewAI stops only after the 5th identical (tool, args, result) call ran, by raising.
    assert outcome == "raised" and isinstance(stock_error, ToolExecutionFailedError)
    assert stock_calls == {"repeat": 5, "alternate": 9}[scenario]

    crewai_rust.patch("tools", tools={"use_rust": use_rust})
    crew, executed = _echo_crew(SCRIPTS[scenario])
    outcome, result = _run(crew)
    executor = active_executor()
    assert executor is not None
    # The model ignores the refusals: a repeat ends with CrewAI's own stop (refused repeats count as
    # the call they repeat), a cycle with the guard's escalation; both typed, neither "finished".
    from crewai_rust.tools import ToolLoopError

    assert outcome == "raised" and isinstance(result, ToolExecutionFailedError), result
    assert isinstance(result, ToolLoopError) == (scenario == "alternate")
    assert len(executed) == {"repeat": 3, "alternate": 4}[scenario], "refused calls never executed"
    counters = executor.counters()["echo"]
    assert counters["calls"] == len(executed)
    refused = sum(counters["refusals"].values())
    # refusals() also logs the escalated call (answering the forced final answer with a tool call).
    assert refused > 0 and len([r for r in executor.refusals() if r.reason != "escalated"]) == refused
    expected_reason = "repeat" if scenario == "repeat" else "cycle"
    assert executor.refusals()[0].reason == expected_reason
    assert executor.refusals()[0].agent == "Looper"


def test_refusal_reaches_the_agent_as_a_tool_result(use_rust: bool) -> None:
    seen: list[str] = []

    def script(step: int) -> dict[str, Any] | None:
        return {"text": "hello"} if step < 4 else None

    crewai_rust.patch("tools", tools={"use_rust": use_rust, "max_repeats": 2})
    crew, executed = _echo_crew(script)
    llm = crew.agents[0].llm
    original = llm._respond

    def spy(messages: list[dict[str, Any]], tools: Any) -> Any:
        seen[:] = [str(m.get("content")) for m in messages if m.get("role") == "tool"]
        return original(messages, tools)

    llm._respond = spy
    outcome, _ = _run(crew)
    assert outcome == "finished"
    assert executed == ["hello", "hello"]
    assert seen[:2] == ["echo: hello", "echo: hello"]
    assert all(s.startswith("Tool call refused:") for s in seen[2:]) and len(seen) == 4
    assert seen[2] == seen[3], "the same refused call reads the same (CrewAI's repeat check must see it)"


def test_legitimate_fifteen_step_workflow_is_never_refused(use_rust: bool) -> None:
    from crewai_rust.tools import active_executor

    crew, stock_executed = _echo_crew(_legit, max_iter=20)
    stock_outcome, stock_result = _run(crew)
    crewai_rust.patch("tools", tools={"use_rust": use_rust})
    crew, executed = _echo_crew(_legit, max_iter=20)
    outcome, result = _run(crew)
    assert stock_outcome == outcome == "finished"
    assert executed == stock_executed and len(executed) == 15
    assert result.raw == stock_result.raw
    executor = active_executor()
    assert executor is not None and executor.refusals() == []
    assert executor.counters()["echo"]["calls"] == 15


def test_budget_is_per_kickoff(use_rust: bool) -> None:
    from crewai_rust.tools import active_executor

    # max_refusals=0: only the tool-call budget is under test here (no escalation to a final answer).
    crewai_rust.patch("tools", tools={"use_rust": use_rust, "max_calls": 4, "max_refusals": 0})
    crew, executed = _echo_crew(_legit)
    assert _run(crew)[0] == "finished"
    assert len(executed) == 4
    assert _run(crew)[0] == "finished", "a second kickoff starts with a fresh budget"
    assert len(executed) == 8
    executor = active_executor()
    assert executor is not None
    assert {r.reason for r in executor.refusals()} == {"budget"}
    assert len({r.run for r in executor.refusals()}) == 2


def test_strict_mode_aborts_the_kickoff(use_rust: bool) -> None:
    from crewai.hooks import HookAborted

    crewai_rust.patch("tools", tools={"use_rust": use_rust, "strict": True})
    crew, executed = _echo_crew(_same)
    outcome, error = _run(crew)
    assert outcome == "raised" and isinstance(error, HookAborted)
    assert error.refusal.reason == "repeat"
    assert len(executed) == 3


def _delegation_crew(max_iter: int = 5) -> tuple[Any, list[str], list[str]]:
    """Alice delegates to Bob; Bob echoes, then delegates the work back to Alice."""
    from crewai import Agent, Crew, Task
    from crewai.tools import BaseTool
    from crewai.tools.agent_tools.agent_tools import AgentTools

    from crewai_rust.testing import ScriptedLLM

    delegations: list[str] = []
    executed: list[str] = []

    class Echo(BaseTool):
        name: str = "echo"
        description: str = "Echo the text back."

        def _run(self, text: str) -> str:
            executed.append(text)
            return f"echo: {text}"

    def respond(messages: list[dict[str, Any]], tools: Any) -> Any:
        text = "\n".join(str(m.get("content") or "") for m in messages)
        step = _tool_results(messages)
        me = "Alice" if "You are Alice" in text else "Bob"
        if not tools or step > (1 if me == "Bob" else 0):
            return None
        if me == "Bob" and step == 0:
            return _tool_call(1, "echo", {"text": "from Bob"})
        delegations.append(me)
        other = "Bob" if me == "Alice" else "Alice"
        return _tool_call(step + 1, "delegate_work_to_coworker", {"task": "Write the report", "context": "c", "coworker": other})

    llm = ScriptedLLM(respond)
    alice = Agent(role="Alice", goal="report", backstory="b", llm=llm, allow_delegation=True, max_iter=max_iter)
    bob = Agent(role="Bob", goal="report", backstory="b", llm=llm, allow_delegation=True, max_iter=max_iter)
    alice.tools = AgentTools(agents=[bob]).tools()
    bob.tools = [*AgentTools(agents=[alice]).tools(), Echo()]
    task = Task(description="Write the report", expected_output="x", agent=alice)
    return Crew(agents=[alice, bob], tasks=[task]), delegations, executed


def test_delegation_loop_and_nesting_depth(use_rust: bool) -> None:
    from crewai_rust.tools import active_executor

    crew, stock_delegations, _ = _delegation_crew()
    assert _run(crew)[0] == "finished"
    # Stock: Bob's delegation back to Alice runs and fails inside CrewAI ("Executor is already running").
    assert stock_delegations == ["Alice", "Bob"]

    crewai_rust.patch("tools", tools={"use_rust": use_rust})
    crew, delegations, executed = _delegation_crew()
    assert _run(crew)[0] == "finished"
    assert delegations == ["Alice", "Bob"]
    executor = active_executor()
    assert executor is not None
    counters = executor.counters()
    assert counters["delegate_work_to_coworker"]["calls"] == 1
    assert counters["delegate_work_to_coworker"]["refusals"]["delegation_cycle"] == 1
    assert "Alice -> Bob -> Alice" in executor.refusals()[0].message
    # Bob's echo ran nested inside Alice's delegation: depth 2 is allowed by default...
    assert executed == ["from Bob"]
    crewai_rust.unpatch()

    # ...and refused when only one level of tool calls is allowed.
    crewai_rust.patch("tools", tools={"use_rust": use_rust, "max_recursion_depth": 1})
    crew, _, executed = _delegation_crew()
    assert _run(crew)[0] == "finished"
    executor = active_executor()
    assert executor is not None
    assert executed == []
    refusal = next(r for r in executor.refusals() if r.reason == "recursion")
    assert refusal.chain == ("Alice:delegate_work_to_coworker", "Bob:echo") and refusal.depth == 2


def test_parallel_crews_do_not_share_windows_or_depth(use_rust: bool) -> None:
    from crewai_rust.tools import active_executor

    crewai_rust.patch("tools", tools={"use_rust": use_rust, "max_repeats": 3})
    three = lambda step: {"text": "hello"} if step < 3 else None  # noqa: E731
    crews = [_echo_crew(three, latency=0.01) for _ in range(3)]
    outcomes: list[str] = []

    def kick(crew: Any) -> None:
        outcomes.append(_run(crew)[0])

    threads = [threading.Thread(target=kick, args=(crew,)) for crew, _ in crews]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert outcomes == ["finished"] * 3
    assert [len(executed) for _, executed in crews] == [3, 3, 3], "9 identical calls, 3 per kickoff, none refused"
    executor = active_executor()
    assert executor is not None and executor.refusals() == []
    assert executor.counters()["echo"]["calls"] == 9
