"""TOOLS benchmarks: call fingerprints, guard decisions, the guard's added cost
per tool call (standalone and through CrewAI's hooks), the before-LLM-call
hook's added cost per LLM call (escalation + budget) next to CrewAI's own
per-call overhead, and CrewAI's ``check_repeated_tool_call`` against the exact
faster replacement.

``python benchmarks/bench_tools.py [--quick]``
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import main, measure  # noqa: E402

from crewai_rust.testing import configure_offline  # noqa: E402

configure_offline()


def _args(size: str) -> dict[str, Any]:
    if size == "small":
        return {"query": "rust crewai loop guard", "limit": 10, "fresh": True}
    if size == "medium":
        return {
            "query": "quarterly revenue by region",
            "filters": [{"field": f"f{i}", "op": "eq", "value": i * 1.5, "tags": ["a", "b", "ç"]} for i in range(20)],
            "options": {"limit": 50, "offset": 0, "sort": {"by": "date", "desc": True}},
        }
    return {"document": "lorem ipsum dolor sit amet " * 4000, "rows": [[i, f"row {i}", i / 7] for i in range(1000)]}


def _stock_key(name: str, args: Any) -> int:
    # How stock CrewAI keys a call: a sorted-keys JSON dump, hashed.
    return hash(json.dumps([name, args], sort_keys=True, default=str))


def _orjson_key(name: str, args: Any) -> str:
    import orjson

    return hashlib.blake2b(orjson.dumps([name, args], option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def run(quick: bool) -> list[dict[str, Any]]:
    from crewai_rust import _selection
    from crewai_rust.tools import RustToolExecutor
    from crewai_rust.tools._fingerprint import tool_call_fingerprint as py_fingerprint
    from crewai_rust.tools._toolguard_py import ToolGuard as PyToolGuard

    speedups = _selection.speedups_module()
    repeat = 5 if quick else 15
    rows: list[dict[str, Any]] = []
    numbers = {"small": 2000, "medium": 300, "large": 20} if quick else {"small": 20000, "medium": 3000, "large": 200}

    # -- fingerprint of one call ------------------------------------------------
    for size in ("small", "medium", "large"):
        args = _args(size)
        case = f"call fingerprint, {size} args ({len(json.dumps(args)) // 1024} KB)" if size != "small" else "call fingerprint, small args"
        number = numbers[size]
        rows.append(measure("fingerprint", case, "stock", lambda a=args: _stock_key("search", a), repeat=repeat, number=number))
        rows.append(measure("fingerprint", case, "orjson", lambda a=args: _orjson_key("search", a), repeat=repeat, number=number))
        rows.append(measure("fingerprint", case, "python", lambda a=args: py_fingerprint("Researcher", "search", a), repeat=repeat, number=number))
        if speedups is not None:
            fp = speedups.tool_call_fingerprint
            rows.append(measure("fingerprint", case, "rust", lambda a=args: fp("Researcher", "search", a), repeat=repeat, number=number))

    # -- guard decision per call (window bookkeeping only) ---------------------------
    fps = [f"{i % 7:032x}" for i in range(64)]
    guards: list[tuple[str, Any]] = [("python", PyToolGuard(10, 1000, 1000, 3))]
    if speedups is not None:
        guards.append(("rust", speedups.ToolGuard(10, 1000, 1000, 3)))
    for impl, guard in guards:
        state = {"i": 0}

        def decide(g: Any = guard, s: dict[str, int] = state) -> None:
            s["i"] += 1
            g.admit("run", fps[s["i"] & 63], "search")

        rows.append(measure("guard", "admit (window 10, cycles <= 3)", impl, decide, repeat=repeat, number=numbers["small"] * 2))

    # -- added cost per tool call: standalone dispatch --------------------------------
    def tool(query: str, limit: int, fresh: bool) -> str:
        return query

    small = _args("small")
    rows.append(measure("dispatch", "tool call, small args", "stock", lambda: tool(**small), repeat=repeat, number=numbers["small"]))
    impls = [("python", False)] + ([("rust", True)] if speedups is not None else [])
    for impl, rust in impls:
        ex = RustToolExecutor(use_rust=rust, max_repeats=10**6, cycle_repeats=10**6)
        ex.register_tool(tool, name="search")
        rows.append(
            measure("dispatch", "tool call, small args", impl, lambda e=ex: e.execute_tool("search", small), repeat=repeat, number=numbers["small"])
        )

    # -- added cost per tool call inside CrewAI: before + after hooks ------------------
    from crewai.hooks import (
        register_after_tool_call_hook,
        register_before_tool_call_hook,
        unregister_after_tool_call_hook,
        unregister_before_tool_call_hook,
    )
    from crewai.hooks.tool_hooks import ToolCallHookContext, run_after_tool_call_hooks, run_before_tool_call_hooks

    class _Agent:
        role = "Researcher"

    def hooks_round() -> None:
        args = dict(small)
        before = ToolCallHookContext(tool_name="search", tool_input=args, tool=None, agent=_Agent())  # type: ignore[arg-type]
        run_before_tool_call_hooks(before)
        after = ToolCallHookContext(tool_name="search", tool_input=args, tool=None, agent=_Agent(), tool_result="r")  # type: ignore[arg-type]
        run_after_tool_call_hooks(after)

    rows.append(measure("hooks", "before+after hooks, small args", "stock", hooks_round, repeat=repeat, number=numbers["small"]))

    # Any registered hook switches on CrewAI's per-dispatch telemetry: measure that floor too.
    def noop(ctx: Any) -> None:
        return None

    register_before_tool_call_hook(noop)
    register_after_tool_call_hook(noop)
    try:
        rows.append(measure("hooks", "before+after hooks, small args", "noop-hook", hooks_round, repeat=repeat, number=numbers["small"] // 4))
    finally:
        unregister_before_tool_call_hook(noop)
        unregister_after_tool_call_hook(noop)
    for impl, rust in impls:
        ex = RustToolExecutor(use_rust=rust, max_repeats=10**6, cycle_repeats=10**6)
        register_before_tool_call_hook(ex.before_hook)
        register_after_tool_call_hook(ex.after_hook)
        try:
            rows.append(measure("hooks", "before+after hooks, small args", impl, hooks_round, repeat=repeat, number=numbers["small"] // 4))
        finally:
            unregister_before_tool_call_hook(ex.before_hook)
            unregister_after_tool_call_hook(ex.after_hook)

    rows.extend(_llm_hook_rows(impls, repeat, numbers["small"]))

    # -- check_repeated_tool_call: stock vs the exact replacement -----------------------
    from crewai.utilities import agent_utils

    from crewai_rust.tools._repeated import make_check_repeated_tool_call

    stock_check = agent_utils.check_repeated_tool_call
    fast_check = make_check_repeated_tool_call(agent_utils)
    for label, result in (("100 B", "x" * 100), ("10 KB", "lorem ipsum " * 850), ("100 KB", "lorem ipsum é " * 7300)):
        case = f"check_repeated_tool_call, {label} result"
        number = {"100 B": 1000, "10 KB": 200, "100 KB": 40}[label]
        # A tool returns a new string each call: every timed call gets an object never
        # hashed before (a str caches its hash), so neither side is flattered.
        fresh = [result[:1] + result[1:] for _ in range((repeat + 1) * number + 1)]
        for impl, check in (("stock", stock_check), ("python", fast_check)):
            counts: dict[int, int] = {}
            state = {"i": 0}

            def one(c: Any = check, d: dict[int, int] = counts, s: dict[str, int] = state) -> None:
                d.clear()
                s["i"] = (s["i"] + 1) % len(fresh)
                c(d, tool_name="search", tool_args=small, result=fresh[s["i"]])

            rows.append(measure("repeated", case, impl, one, repeat=repeat, number=number))
    return rows


def _llm_hook_rows(impls: list[tuple[str, bool]], repeat: int, number: int) -> list[dict[str, Any]]:
    """The before-LLM hook per LLM call: CrewAI's own call path around an instant LLM, with and without it."""
    from crewai.utilities.agent_utils import get_llm_response
    from crewai_core.printer import PRINTER

    from crewai_rust.testing import ScriptedLLM
    from crewai_rust.tools import RustToolExecutor

    class _Agent:
        role = "Researcher"
        verbose = False

    class _Task:
        id = "task-1"

    class _Executor:
        """What CrewAI's hook dispatch reads from an AgentExecutor."""

        def __init__(self, hooks: list[Any]) -> None:
            self.before_llm_call_hooks = hooks
            self.after_llm_call_hooks: list[Any] = []
            self.messages = [{"role": "user", "content": "Current Task: research the loop guard"}]
            self.llm = ScriptedLLM(lambda m, t: "Final Answer: done")
            self.iterations = 0
            self.agent, self.task, self.crew = _Agent(), _Task(), None

    def one_call(ex: _Executor) -> None:
        get_llm_response(ex.llm, list(ex.messages), [], PRINTER, executor_context=ex, verbose=False)  # type: ignore[arg-type]

    rows = []
    case = "LLM call path, instant LLM"
    stock = _Executor([])
    rows.append(measure("llm-hook", case, "stock", lambda: one_call(stock), repeat=repeat, number=number // 4))
    noop = _Executor([lambda ctx: None])
    rows.append(measure("llm-hook", case, "noop-hook", lambda: one_call(noop), repeat=repeat, number=number // 4))
    for impl, rust in impls:
        # A budget high enough never to stop, escalation on: every check runs, none fires.
        guard = RustToolExecutor(use_rust=rust, max_llm_calls=10**12, max_tokens=10**12)
        ex = _Executor([guard.before_llm_hook])
        rows.append(measure("llm-hook", case, impl, lambda e=ex: one_call(e), repeat=repeat, number=number // 4))
    rows.extend(_crew_rows(impls, repeat))
    return rows


def _crew_rows(impls: list[tuple[str, bool]], repeat: int) -> list[dict[str, Any]]:
    """A whole kickoff per LLM call (10 calls: 9 tool calls, 1 answer): CrewAI's own per-call cost, stock vs patched."""
    import crewai_rust
    from crewai import Agent, Crew, Task
    from crewai.tools import BaseTool

    from crewai_rust.testing import ScriptedLLM

    class Page(BaseTool):
        name: str = "page"
        description: str = "Read one page."

        def _run(self, n: int) -> str:
            return f"page {n}"

    def respond(messages: list[dict[str, Any]], tools: Any) -> Any:
        step = sum(1 for m in messages if m.get("role") == "tool")
        if not tools or step >= 9:
            return None
        return [{"id": f"c{step}", "type": "function", "function": {"name": "page", "arguments": json.dumps({"n": step})}}]

    llm = ScriptedLLM(respond)
    agent = Agent(role="Reader", goal="read", backstory="b", llm=llm, tools=[Page()], max_iter=20)
    crew = Crew(agents=[agent], tasks=[Task(description="Read the pages", expected_output="a summary", agent=agent)])
    case, calls = "crew kickoff per LLM call (10 calls)", 10
    rows = [measure("llm-hook", case, "stock", crew.kickoff, repeat=repeat, number=1, extra={"per": "kickoff / 10"})]
    for impl, rust in impls:
        crewai_rust.patch("tools", tools={"use_rust": rust, "max_llm_calls": 10**6})
        try:
            rows.append(measure("llm-hook", case, impl, crew.kickoff, repeat=repeat, number=1))
        finally:
            crewai_rust.unpatch()
    for r in rows:  # report per LLM call
        for key in ("median_s", "q1_s", "q3_s"):
            r[key] /= calls
    return rows


if __name__ == "__main__":
    main(run)
