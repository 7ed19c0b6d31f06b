"""TOOLS benchmarks: call fingerprints, guard decisions, the guard's added cost
per tool call (standalone and through CrewAI's hooks), and CrewAI's
``check_repeated_tool_call`` against the exact faster replacement.

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
    from crewai_rust.tools._fingerprint import call_fingerprint as py_fingerprint
    from crewai_rust.tools._window import PyToolGuard

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


if __name__ == "__main__":
    main(run)
