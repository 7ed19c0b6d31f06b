"""The guard stops the spending, not only the tool: offline crews whose LLM
ignores every refusal, run stock and patched side by side (LLM calls and tool
runs counted), escalation to CrewAI's forced final answer and ``ToolLoopError``,
and the per-kickoff LLM budget."""

from __future__ import annotations

import json
import logging
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import crewai_rust

pytestmark = pytest.mark.crew

FORCE_MARK = "MUST give your absolute best final answer"


def _call(n: int, name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]


def _tool_results(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "tool")


def _forced(messages: list[dict[str, Any]]) -> bool:
    return any(FORCE_MARK in str(m.get("content") or "") for m in messages if m.get("role") == "user")


@dataclass
class Outcome:
    llm_calls: int
    tool_runs: int
    error: BaseException | None
    result: Any = None

    @property
    def kind(self) -> str:
        return "final answer" if self.error is None else type(self.error).__name__


def _tool(name: str, runs: list[str], result: Callable[[dict[str, Any], int], str] | None = None) -> Any:
    from crewai.tools import BaseTool

    class Recorded(BaseTool):
        def _run(self, **kwargs: Any) -> str:
            runs.append(f"{self.name}:{json.dumps(kwargs, sort_keys=True)}")
            return result(kwargs, len(runs)) if result else f"{self.name} says {kwargs}"

    Recorded.__name__ = f"Tool_{name}"
    return Recorded(name=name, description=f"The {name} tool: takes text.", args_schema=_schema())


def _schema() -> Any:
    from pydantic import BaseModel

    class Args(BaseModel):
        text: str

    return Args


def _looping_crew(
    plan: Callable[[int], tuple[str, dict[str, Any]] | None],
    tool_names: tuple[str, ...] = ("echo",),
    *,
    max_iter: int = 40,
    result: Callable[[dict[str, Any], int], str] | None = None,
    tools_when_forced_by_crewai: bool = False,
) -> tuple[Any, Any, list[str]]:
    """One agent whose LLM asks for ``plan(step)`` whatever it is told; None means a final answer.

    The model ignores refusals and crewai_rust's forced final answer (it still has
    tools then). ``tools_when_forced_by_crewai`` makes it answer CrewAI's own
    forced final answer (at ``max_iter``, no tools offered) with tool calls too.
    """
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM

    runs: list[str] = []

    def respond(messages: list[dict[str, Any]], tools: Any) -> Any:
        step = _tool_results(messages)
        if not tools and not tools_when_forced_by_crewai:
            return None
        planned = plan(step)
        return None if planned is None else _call(step, planned[0], planned[1])

    llm = ScriptedLLM(respond)
    tools = [_tool(name, runs, result) for name in tool_names]
    agent = Agent(role="Looper", goal="use the tools", backstory="scripted", llm=llm, tools=tools, max_iter=max_iter)
    task = Task(description="Do the thing", expected_output="a sentence", agent=agent)
    return Crew(agents=[agent], tasks=[task]), llm, runs


def _kick(crew: Any, llm: Any, runs: list[str]) -> Outcome:
    try:
        result = crew.kickoff()
    except Exception as exc:  # the outcome under test
        return Outcome(llm.calls, len(runs), exc)
    return Outcome(llm.calls, len(runs), None, result)


_DELEGATED: list[str] = []


@pytest.fixture(autouse=True)
def _count_delegations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every delegation that really runs (CrewAI builds the delegating agent's tools itself)."""
    from crewai.tools.agent_tools.delegate_work_tool import DelegateWorkTool

    original = DelegateWorkTool._run

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        _DELEGATED.append(str(kwargs.get("coworker")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DelegateWorkTool, "_run", counted)


def _delegation_crew() -> tuple[Any, Any, list[str]]:
    """Alice always delegates the work to Bob, Bob always hands it back to Alice."""
    from crewai import Agent, Crew, Task
    from crewai.tools.agent_tools.agent_tools import AgentTools

    from crewai_rust.testing import ScriptedLLM

    def respond(messages: list[dict[str, Any]], tools: Any) -> Any:
        if not tools:
            return None
        text = "\n".join(str(m.get("content") or "") for m in messages)
        me = "Alice" if "You are Alice" in text else "Bob"
        other = "Bob" if me == "Alice" else "Alice"
        return _call(_tool_results(messages), "delegate_work_to_coworker", {"task": "Write the report", "context": "c", "coworker": other})

    llm = ScriptedLLM(respond)
    alice = Agent(role="Alice", goal="report", backstory="b", llm=llm, allow_delegation=True, max_iter=40)
    bob = Agent(role="Bob", goal="report", backstory="b", llm=llm, allow_delegation=True, max_iter=40)

    alice.tools = AgentTools(agents=[bob]).tools()
    bob.tools = AgentTools(agents=[alice]).tools()
    _DELEGATED.clear()
    task = Task(description="Write the report", expected_output="x", agent=alice)
    return Crew(agents=[alice, bob], tasks=[task]), llm, _DELEGATED


def _same(step: int) -> tuple[str, dict[str, Any]]:
    return "echo", {"text": "hello"}


def _two_cycle(step: int) -> tuple[str, dict[str, Any]]:
    return "echo", {"text": "A" if step % 2 == 0 else "B"}


def _three_tools(step: int) -> tuple[str, dict[str, Any]]:
    return ("alpha", "beta", "gamma")[step % 3], {"text": "x"}


def _ticking(kwargs: dict[str, Any], n: int) -> str:
    return f"the time is {n}"  # a new result every call: CrewAI's own repeat check never fires


SCENARIOS: dict[str, Callable[[], tuple[Any, Any, list[str]]]] = {
    "same call forever": lambda: _looping_crew(_same),
    "A,B cycle": lambda: _looping_crew(_two_cycle),
    "three-tool cycle": lambda: _looping_crew(_three_tools, ("alpha", "beta", "gamma")),
    "delegation loop": _delegation_crew,
    "forced answer answered with tool calls": lambda: _looping_crew(
        lambda step: ("clock", {"text": "now"}), ("clock",), result=_ticking, tools_when_forced_by_crewai=True
    ),
}

#: What the patched run must end with (a typed error; CrewAI's own where its stop comes first).
PATCHED_END = {
    "same call forever": "ToolExecutionFailedError",
    "A,B cycle": "ToolLoopError",
    "three-tool cycle": "ToolLoopError",
    "delegation loop": "ToolExecutionFailedError",  # Bob is stopped with ToolLoopError, Alice by CrewAI
    "forced answer answered with tool calls": "ToolLoopError",
}

TABLE: dict[str, dict[str, Outcome]] = {}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_model_ignoring_refusals_costs_no_more_llm_calls_than_stock(
    use_rust: bool, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    from crewai.tools.tool_failure import ToolExecutionFailedError

    from crewai_rust.tools import ToolLoopError, active_executor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stock's own end, not a serializer warning turned into an error
        stock = _kick(*SCENARIOS[scenario]())
    crewai_rust.patch("tools", tools={"use_rust": use_rust})
    with caplog.at_level(logging.WARNING, logger="crewai_rust.tools"):
        patched = _kick(*SCENARIOS[scenario]())
    ours = [r.getMessage() for r in caplog.records if r.name == "crewai_rust.tools"]
    executor = active_executor()
    assert executor is not None
    TABLE.setdefault(scenario, {})["stock"] = stock
    TABLE[scenario]["rust" if use_rust else "python"] = patched

    assert patched.kind == PATCHED_END[scenario], patched.error
    assert isinstance(patched.error, ToolExecutionFailedError), "catchable as CrewAI's own loop stop"
    assert patched.llm_calls <= stock.llm_calls and patched.tool_runs <= stock.tool_runs
    stats = executor.stats()
    assert stats["refusals"] >= 2
    assert crewai_rust.status()["components"]["TOOLS"]["stats"] == stats
    if isinstance(patched.error, ToolLoopError):
        error = patched.error
        assert error.refusals >= 2 and error.tools and error.fingerprints and error.agent in {"Looper", "Alice", "Bob"}
        assert error.record.failure.reason.value == "repeated_call"
        assert stats["escalations"] >= 1 and stats["loop_stops"] >= 1
        # Each escalation and each stop is logged once, with the run id.
        stops = [m for m in ours if m.startswith("crewai_rust tools: stopped agent")]
        assert len(stops) == stats["loop_stops"] and all(error.run in m for m in stops)
        assert len([m for m in ours if "escalating agent" in m]) == stats["escalations"]
        assert len([m for m in ours if "refused" in m and "call of" in m]) == stats["refusals"] - stats["refusals_by_reason"]["escalated"]
        assert patched.llm_calls < stock.llm_calls
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is ToolLoopError and str(clone) == str(error) and clone.fingerprints == error.fingerprints
    if scenario == "forced answer answered with tool calls":
        # Stock runs to max_iter, then fails on the tool calls of its own forced final answer.
        assert stock.llm_calls == 41 and type(stock.error).__name__ == "ValidationError"
        assert patched.llm_calls == 6 and patched.tool_runs == 3
    if scenario == "delegation loop":
        assert stats["loop_stops"] >= 1 and patched.llm_calls < stock.llm_calls
        assert any(r.reason == "delegation_cycle" and r.agent == "Bob" for r in executor.refusals())
    if scenario == "same call forever":
        # CrewAI's own stop on the 5th identical call works with the guard on: the refused
        # repeats count as the call they repeat, so it comes at stock's LLM call count.
        assert stock.llm_calls == patched.llm_calls == 5 and (stock.tool_runs, patched.tool_runs) == (5, 3)


def test_escalation_asks_for_the_final_answer_and_an_obeying_model_finishes(use_rust: bool) -> None:
    from crewai_rust.tools import active_executor

    seen_forced: list[bool] = []

    def plan(step: int) -> tuple[str, dict[str, Any]] | None:
        return "echo", {"text": "hello"}

    crew, llm, runs = _looping_crew(plan)
    original = llm._respond

    def obeying(messages: list[dict[str, Any]], tools: Any) -> Any:
        seen_forced.append(_forced(messages))
        return None if _forced(messages) else original(messages, tools)

    llm._respond = obeying
    crewai_rust.patch("tools", tools={"use_rust": use_rust, "replace_repeated_check": False})
    outcome = _kick(crew, llm, runs)
    assert outcome.error is None, outcome.error
    # 3 runs, 2 refusals, then CrewAI's forced-final-answer prompt on the 6th call, answered.
    assert seen_forced == [False] * 5 + [True] and outcome.tool_runs == 3
    assert outcome.result.raw.startswith("Completed")
    stats = active_executor().stats()  # type: ignore[union-attr]
    assert (stats["escalations"], stats["forced_final_answers"], stats["loop_stops"]) == (1, 1, 0)


def test_strict_still_raises_at_the_first_refusal(use_rust: bool) -> None:
    from crewai.hooks import HookAborted

    from crewai_rust.tools import ToolLoopAbortedError, ToolLoopError

    crewai_rust.patch("tools", tools={"use_rust": use_rust, "strict": True})
    outcome = _kick(*_looping_crew(_two_cycle))
    assert isinstance(outcome.error, ToolLoopAbortedError)
    assert isinstance(outcome.error, ToolLoopError) and isinstance(outcome.error, HookAborted)
    assert outcome.error.refusal.reason == "cycle" and outcome.tool_runs == 4 and outcome.llm_calls == 5


def test_max_refusals_zero_turns_escalation_off(use_rust: bool) -> None:
    crewai_rust.patch("tools", tools={"use_rust": use_rust, "max_refusals": 0})
    outcome = _kick(*_looping_crew(_two_cycle))
    # Without escalation only CrewAI's own stop ends the cycle (refusals count as the call they repeat).
    assert outcome.kind == "ToolExecutionFailedError" and outcome.tool_runs == 4


def test_other_agents_in_the_same_crew_are_unaffected(use_rust: bool) -> None:
    """A looping agent is stopped; a second crew run at the same time by another agent finishes."""
    import threading

    from crewai_rust.tools import ToolLoopError

    crewai_rust.patch("tools", tools={"use_rust": use_rust})
    looping = _looping_crew(_two_cycle)
    legit = _looping_crew(lambda step: ("echo", {"text": f"page {step}"}) if step < 6 else None)
    outcomes: dict[str, Outcome] = {}

    def run(name: str, parts: tuple[Any, Any, list[str]]) -> None:
        outcomes[name] = _kick(*parts)

    threads = [threading.Thread(target=run, args=(n, p)) for n, p in (("looping", looping), ("legit", legit))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert isinstance(outcomes["looping"].error, ToolLoopError)
    assert outcomes["legit"].error is None and outcomes["legit"].tool_runs == 6 and outcomes["legit"].llm_calls == 7


def _legit_pages(step: int) -> tuple[str, dict[str, Any]] | None:
    return ("echo", {"text": f"page {step} of the report"}) if step < 15 else None


def _retry_plan(step: int) -> tuple[str, dict[str, Any]] | None:
    # fetch page 1 fails twice (one plain retry), then other mirrors; the last one works.
    urls = ["mirror-1/page", "mirror-1/page", "mirror-2/page", "mirror-3/page?retry=1", "mirror-4/page"]
    return ("fetch", {"text": urls[step]}) if step < len(urls) else None


def _flaky(kwargs: dict[str, Any], n: int) -> str:
    if not kwargs["text"].startswith("mirror-4"):
        raise ConnectionError(f"{kwargs['text']} timed out")
    return "the page"


@pytest.mark.parametrize("kind", ["fifteen pages", "retry with changed arguments"])
def test_legitimate_crews_run_unchanged_with_defaults(use_rust: bool, kind: str) -> None:
    from crewai_rust.tools import active_executor

    build = {
        "fifteen pages": lambda: _looping_crew(_legit_pages),
        "retry with changed arguments": lambda: _looping_crew(_retry_plan, ("fetch",), result=_flaky),
    }[kind]
    stock = _kick(*build())
    crewai_rust.patch("tools", tools={"use_rust": use_rust})
    patched = _kick(*build())
    assert stock.error is None and patched.error is None, (stock.error, patched.error)
    assert (patched.llm_calls, patched.tool_runs) == (stock.llm_calls, stock.tool_runs)
    assert patched.result.raw == stock.result.raw
    stats = active_executor().stats()  # type: ignore[union-attr]
    assert stats["refusals"] == stats["escalations"] == stats["budget_stops"] == 0
    assert stats["llm_calls"] == patched.llm_calls


class _CountingLLM:
    """A ScriptedLLM that records token usage in CrewAI's own per-LLM record, like a provider."""

    @staticmethod
    def make(respond: Any) -> Any:
        from crewai_rust.testing import ScriptedLLM

        class TokenLLM(ScriptedLLM):
            def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
                answer = super().call(messages, *args, **kwargs)
                prompt = self.get_input_tokens_count(messages)
                self._track_token_usage_internal({"prompt_tokens": prompt, "completion_tokens": 10, "total_tokens": prompt + 10})
                return answer

        return TokenLLM(respond)


def _thirty_pages_crew(pages: int = 29) -> tuple[Any, Any, list[str]]:
    from crewai import Agent, Crew, Task

    runs: list[str] = []

    def respond(messages: list[dict[str, Any]], tools: Any) -> Any:
        step = _tool_results(messages)
        return _call(step, "echo", {"text": f"page {step} of {{topic}}"}) if tools and step < pages else None

    llm = _CountingLLM.make(respond)
    agent = Agent(role="Reader", goal="read", backstory="b", llm=llm, tools=[_tool("echo", runs)], max_iter=40)
    task = Task(description="Read about {topic}", expected_output="a summary", agent=agent)
    return Crew(agents=[agent], tasks=[task]), llm, runs


def test_budget_stops_a_thirty_call_crew_at_ten(use_rust: bool, caplog: pytest.LogCaptureFixture) -> None:
    from crewai_rust.tools import BudgetExceededError, active_executor

    crew, llm, runs = _thirty_pages_crew()
    stock = _kick(crew, llm, runs)
    assert stock.error is None and stock.llm_calls == 30

    crewai_rust.patch("tools", tools={"use_rust": use_rust, "max_llm_calls": 10})
    crew, llm, runs = _thirty_pages_crew()
    with caplog.at_level(logging.WARNING, logger="crewai_rust.tools"):
        outcome = _kick(crew, llm, runs)
    error = outcome.error
    assert isinstance(error, BudgetExceededError), error
    assert outcome.llm_calls == 10 and outcome.tool_runs == 10
    assert error.limit == "max_llm_calls" and error.budget == 10 and error.usage["llm_calls"] == 10
    # Token usage so far is CrewAI's own record of those 10 calls.
    assert error.usage["total_tokens"] == llm.get_token_usage_summary().total_tokens > 0
    budget_logs = [r for r in caplog.records if r.name == "crewai_rust.tools" and "spent its budget" in r.getMessage()]
    assert len(budget_logs) == 1 and error.run in budget_logs[0].getMessage()
    assert active_executor().stats()["budget_stops"] == 1  # type: ignore[union-attr]
    assert crewai_rust.status()["components"]["TOOLS"]["stats"]["budget_stops"] == 1
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is BudgetExceededError and clone.usage == error.usage


def test_token_budget(use_rust: bool) -> None:
    from crewai_rust.tools import BudgetExceededError

    crew, llm, runs = _thirty_pages_crew()
    _kick(crew, llm, runs)
    per_call = llm.get_token_usage_summary().total_tokens / 30
    budget = int(per_call * 5)
    crewai_rust.patch("tools", tools={"use_rust": use_rust, "max_tokens": budget})
    crew, llm, runs = _thirty_pages_crew()
    outcome = _kick(crew, llm, runs)
    assert isinstance(outcome.error, BudgetExceededError) and outcome.error.limit == "max_tokens"
    spent = llm.get_token_usage_summary().total_tokens
    assert outcome.error.usage["total_tokens"] == spent >= budget
    assert outcome.llm_calls < 30


@pytest.mark.parametrize("components", [("tools",), ("tools", "tasks")])
def test_kickoff_for_each_gets_one_budget_per_input(use_rust: bool, components: tuple[str, ...]) -> None:
    from crewai_rust.tools import BudgetExceededError, active_executor

    crewai_rust.patch(list(components), tools={"use_rust": use_rust, "max_llm_calls": 10})
    crew, llm, runs = _thirty_pages_crew(pages=7)  # 8 LLM calls per input
    results = crew.kickoff_for_each(inputs=[{"topic": t} for t in ("ants", "bees", "cats", "dogs")])
    # crew.copy() copies the LLM, so count through the guard and the shared tool log.
    assert len(results) == 4 and len(runs) == 28, "4 x 8 calls under a budget of 10 each"
    stats = active_executor().stats()  # type: ignore[union-attr]
    assert stats["budget_stops"] == 0 and stats["llm_calls"] == 32 and stats["runs_tracked"] == 4

    crew, llm, runs = _thirty_pages_crew()  # 30 per input: every input stops at its own 10
    with pytest.raises(BudgetExceededError) as info:
        crew.kickoff_for_each(inputs=[{"topic": "ants"}, {"topic": "bees"}])
    assert info.value.usage["llm_calls"] == 10


def test_env_sets_the_budget_and_escalation(monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai_rust.tools import active_executor

    monkeypatch.setenv("CREWAI_RUST_TOOLS_MAX_LLM_CALLS", "7")
    monkeypatch.setenv("CREWAI_RUST_TOOLS_MAX_TOKENS", "5000")
    monkeypatch.setenv("CREWAI_RUST_TOOLS_MAX_REFUSALS", "4")
    crewai_rust.patch("tools")
    config = active_executor().config()  # type: ignore[union-attr]
    assert (config["max_llm_calls"], config["max_tokens"], config["max_refusals"]) == (7, 5000, 4)
    from crewai.hooks import get_before_llm_call_hooks

    assert active_executor().before_llm_hook in get_before_llm_call_hooks()  # type: ignore[union-attr]
    crewai_rust.unpatch()
    assert all(getattr(h, "__self__", None) is None or "RustToolExecutor" not in type(h.__self__).__name__ for h in get_before_llm_call_hooks())


def test_parallel_crews_each_get_their_own_budget(use_rust: bool) -> None:
    import threading

    from crewai_rust.tools import active_executor

    crewai_rust.patch("tools", tools={"use_rust": use_rust, "max_llm_calls": 10})
    crews = [_thirty_pages_crew(pages=7) for _ in range(3)]  # 8 LLM calls each, 24 in all
    outcomes: list[Outcome] = []

    def run(parts: tuple[Any, Any, list[str]]) -> None:
        outcomes.append(_kick(*parts))

    threads = [threading.Thread(target=run, args=(parts,)) for parts in crews]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [o.error for o in outcomes] == [None] * 3 and [o.llm_calls for o in outcomes] == [8] * 3
    assert active_executor().stats()["budget_stops"] == 0  # type: ignore[union-attr]


def test_text_mode_cycle_ends_with_tool_loop_error(use_rust: bool) -> None:
    """The ReAct (text) path: the same escalation, stopped from the tool hooks."""
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM
    from crewai_rust.tools import ToolLoopError

    class TextLLM(ScriptedLLM):
        def supports_function_calling(self) -> bool:
            return False

    def build() -> tuple[Any, Any, list[str]]:
        runs: list[str] = []

        def respond(messages: list[dict[str, Any]], tools: Any) -> Any:
            step = sum(1 for m in messages if "Observation:" in str(m.get("content") or ""))
            text = "A" if step % 2 == 0 else "B"
            return f'Thought: again\nAction: echo\nAction Input: {{"text": "{text}"}}'

        llm = TextLLM(respond)
        agent = Agent(role="Looper", goal="g", backstory="b", llm=llm, tools=[_tool("echo", runs)], max_iter=40)
        return Crew(agents=[agent], tasks=[Task(description="echo", expected_output="x", agent=agent)]), llm, runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stock = _kick(*build())
    crewai_rust.patch("tools", tools={"use_rust": use_rust})
    patched = _kick(*build())
    TABLE.setdefault("A,B cycle, text (ReAct) mode", {})["stock"] = stock
    TABLE["A,B cycle, text (ReAct) mode"]["rust" if use_rust else "python"] = patched
    assert isinstance(patched.error, ToolLoopError), patched.error
    assert patched.llm_calls < stock.llm_calls and patched.tool_runs < stock.tool_runs


def test_stock_vs_patched_table(request: pytest.FixtureRequest) -> None:
    """Prints the closing table (run after the scenarios; ``-s`` shows it)."""
    if not TABLE:
        pytest.skip("run together with the scenario tests")
    lines = ["| scenario | stock LLM calls / tool runs / end | patched (rust) | patched (python) |", "|---|---|---|---|"]
    for scenario, outcomes in TABLE.items():
        cells = []
        for impl in ("stock", "rust", "python"):
            o = outcomes.get(impl)
            cells.append("-" if o is None else f"{o.llm_calls} / {o.tool_runs} / {o.kind}")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    print("\n" + "\n".join(lines))
    for outcomes in TABLE.values():
        for impl in ("rust", "python"):
            if impl in outcomes:
                assert outcomes[impl].llm_calls <= outcomes["stock"].llm_calls


def test_a_guardrail_retry_after_the_forced_answer_is_not_a_loop(use_rust: bool) -> None:
    """The forced answer was given; a guardrail re-runs the same task in a new conversation."""
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM

    runs: list[str] = []
    verdicts: list[bool] = []

    def respond(messages: list[dict[str, Any]], tools: Any) -> Any:
        text = "\n".join(str(m.get("content") or "") for m in messages)
        if _forced(messages) or "not good enough" in text:
            return "Final Answer: " + ("second try" if "not good enough" in text else "first try")
        step = _tool_results(messages)
        return _call(step, "echo", {"text": "A" if step % 2 == 0 else "B"})  # a cycle: escalation, not CrewAI, stops it

    def guardrail(output: Any):  # type: ignore[no-untyped-def]  # noqa: ANN202 - CrewAI checks a real annotation
        verdicts.append("second try" in output.raw)
        return (True, output.raw) if verdicts[-1] else (False, "not good enough")

    llm = ScriptedLLM(respond)
    agent = Agent(role="Looper", goal="g", backstory="b", llm=llm, tools=[_tool("echo", runs)], max_iter=40)
    task = Task(description="Do the thing", expected_output="x", agent=agent, guardrail=guardrail)
    crewai_rust.patch("tools", tools={"use_rust": use_rust})
    outcome = _kick(Crew(agents=[agent], tasks=[task]), llm, runs)
    assert outcome.error is None, outcome.error
    assert verdicts == [False, True] and "second try" in outcome.result.raw
    assert outcome.tool_runs == 4 and outcome.llm_calls == 7 + 1  # 4 runs, 2 refusals, forced answer; 1 retry call
