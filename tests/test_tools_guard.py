"""The loop guard and RustToolExecutor on their own (no crew): decisions, counters,
recursion depth per execution context, typed errors, twin parity."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crewai_rust.tools import (
    RustToolExecutor,
    ToolArgumentsError,
    ToolNotRegisteredError,
    ToolRefusedError,
)
from crewai_rust.tools._toolguard_py import ToolGuard as PyToolGuard


def _executor(use_rust: bool, **kwargs: Any) -> RustToolExecutor:
    ex = RustToolExecutor(use_rust=use_rust, **kwargs)
    assert ex.implementation == ("rust" if use_rust else "python")
    return ex


def test_repeats_are_refused_before_they_run(use_rust: bool) -> None:
    ran: list[str] = []
    ex = _executor(use_rust, max_repeats=2)
    ex.register_tool(lambda q: ran.append(q) or f"found {q}", name="search")
    assert ex.execute_tool("search", {"q": "a"}) == "found a"
    assert ex.execute_tool("search", '{"q" :  "a"}') == "found a"
    with pytest.raises(ToolRefusedError) as info:
        ex.execute_tool("search", {"q": "a"})
    assert ran == ["a", "a"], "the refused call never ran"
    assert info.value.reason == "repeat"
    assert "same arguments 2 times" in str(info.value)
    assert ex.execute_tool("search", {"q": "b"}) == "found b"
    counters = ex.counters()["search"]
    assert counters["calls"] == 3 and counters["refusals"]["repeat"] == 1 and counters["seconds"] > 0
    assert [r.reason for r in ex.refusals()] == ["repeat"]


def test_alternating_cycle_is_refused(use_rust: bool) -> None:
    ex = _executor(use_rust)
    ex.register_tool(lambda: "a", name="A")
    ex.register_tool(lambda: "b", name="B")
    for name in ["A", "B", "A", "B"]:
        ex.execute_tool(name)
    with pytest.raises(ToolRefusedError) as info:
        ex.execute_tool("A")
    assert info.value.reason == "cycle"
    with pytest.raises(ToolRefusedError):
        ex.execute_tool("B")


def test_budget_is_per_run(use_rust: bool) -> None:
    ex = _executor(use_rust, max_calls=3)
    ex.register_tool(lambda i: i, name="step")
    with ex.run("first"):
        for i in range(3):
            ex.execute_tool("step", {"i": i})
        with pytest.raises(ToolRefusedError, match="budget"):
            ex.execute_tool("step", {"i": 99})
    with ex.run("second"):
        assert ex.execute_tool("step", {"i": 0}) == 0
    assert ex.execute_tool("step", {"i": 1}, run_id="third") == 1


def test_legitimate_varied_workflow_is_never_refused(use_rust: bool) -> None:
    ex = _executor(use_rust)
    ex.register_tool(lambda page: page, name="read")
    ex.register_tool(lambda note: note, name="write")
    for step in range(30):
        ex.execute_tool("read" if step % 2 else "write", {"page": step} if step % 2 else {"note": f"n{step}"})
    assert ex.refusals() == []


def test_recursion_depth_names_the_chain(use_rust: bool) -> None:
    ex = _executor(use_rust, max_recursion_depth=3)
    depths: list[int] = []

    def nest(level: int) -> str:
        depths.append(level)
        return ex.execute_tool("nest", {"level": level + 1}, agent="Researcher")

    ex.register_tool(nest, name="nest")
    with pytest.raises(ToolRefusedError) as info:
        ex.execute_tool("nest", {"level": 1}, agent="Researcher")
    assert depths == [1, 2, 3], "the 4th nested call was refused before it ran"
    refusal = info.value.refusal
    assert refusal.reason == "recursion" and refusal.depth == 4
    assert refusal.chain == ("Researcher:nest",) * 4
    assert "Researcher:nest -> Researcher:nest" in refusal.message
    from crewai_rust.tools import _context

    assert _context.current_depth() == 0, "every frame was closed"
    assert ex.counters()["nest"]["refusals"]["recursion"] == 1


def test_depth_is_per_execution_context(use_rust: bool) -> None:
    ex = _executor(use_rust, max_recursion_depth=2)
    barrier = threading.Barrier(4)
    seen: list[int] = []

    def inner() -> str:
        from crewai_rust.tools import _context

        seen.append(_context.current_depth())
        barrier.wait(timeout=10)  # all four outer calls are in flight at once
        return "ok"

    ex.register_tool(inner, name="inner")
    ex.register_tool(lambda i: ex.execute_tool("inner"), name="outer")

    def one(i: int) -> str:
        return ex.execute_tool("outer", {"i": i}, run_id=f"run{i}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(one, range(4))) == ["ok"] * 4
    assert seen == [2, 2, 2, 2], "parallel threads never share a depth counter"

    # A thread started with a copy of the context inherits the chain it was started in.
    inherited: list[int] = []

    def spawn() -> str:
        from crewai_rust.tools import _context

        worker = threading.Thread(target=contextvars.copy_context().run, args=(lambda: inherited.append(_context.current_depth()),))
        worker.start()
        worker.join()
        return "spawned"

    ex.register_tool(spawn, name="spawn")
    ex.execute_tool("spawn")
    assert inherited == [1]


def test_delegation_loop_is_refused(use_rust: bool) -> None:
    ex = _executor(use_rust)
    delegated: list[str] = []

    def delegate(task: str, context: str, coworker: str) -> str:
        delegated.append(coworker)
        back = "Alice" if coworker.lower() == "bob" else "Bob"
        return ex.execute_tool("Delegate work to coworker", {"task": task, "context": context, "coworker": back}, agent=coworker)

    ex.register_tool(delegate, name="Delegate work to coworker")
    with pytest.raises(ToolRefusedError) as info:
        ex.execute_tool("Delegate work to coworker", {"task": "t", "context": "c", "coworker": "bob"}, agent="Alice")
    assert delegated == ["bob"]
    assert info.value.reason == "delegation_cycle"
    assert "(Alice -> bob -> Alice)" in str(info.value)


def test_typed_errors_lose_nothing(use_rust: bool) -> None:
    ex = _executor(use_rust)
    ex.register_tool(lambda x: x, name="echo")
    with pytest.raises(ToolNotRegisteredError, match="no tool named 'nope'"):
        ex.execute_tool("nope", {})
    with pytest.raises(ToolArgumentsError):
        ex.execute_tool("echo", ["not", "a", "mapping"])
    with pytest.raises(ToolArgumentsError):
        ex.execute_tool("echo", "plain text")
    with pytest.raises(ToolArgumentsError):
        ex.execute_tool("echo", {1: "x"})

    def boom() -> None:
        raise LookupError("tool failed")

    ex.register_tool(boom, name="boom")
    with pytest.raises(LookupError, match="tool failed"):
        ex.execute_tool("boom")
    assert ex.execute_tool("echo", {"x": 5}) == 5
    assert ex.counters()["boom"]["calls"] == 1
    for bad in ({"max_repeats": 0}, {"loop_window": -1}, {"max_calls": 0}, {"max_recursion_depth": True}, {"max_repeats": 2.5}):
        with pytest.raises(ValueError):
            RustToolExecutor(use_rust=use_rust, **bad)
    with pytest.raises(ValueError):
        ex.register_tool(object())


def test_unfingerprintable_arguments_still_dispatch(use_rust: bool) -> None:
    ex = _executor(use_rust)

    class Weird:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    ex.register_tool(lambda obj: "handled", name="take")
    assert ex.execute_tool("take", {"obj": Weird()}) == "handled"
    assert ex.execute_tool("take", {"obj": Weird()}) == "handled"


# -- twin parity over call sequences -------------------------------------------
_calls = st.lists(
    st.tuples(st.sampled_from(["r1", "r2"]), st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["t1", "t2"])),
    max_size=60,
)
_configs = st.tuples(
    st.integers(1, 8), st.integers(1, 4), st.integers(1, 3), st.integers(0, 4), st.none() | st.integers(1, 20), st.integers(1, 3)
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=_configs, calls=_calls, extra=st.lists(st.sampled_from(["recursion", "delegation_cycle"]), max_size=3))
def test_twins_decide_and_count_alike(speedups: Any, config: tuple, calls: list, extra: list) -> None:
    rust, python = speedups.ToolGuard(*config), PyToolGuard(*config)
    for run, fingerprint, tool in calls:
        assert rust.admit(run, fingerprint, tool) == python.admit(run, fingerprint, tool)
        rust.add_time(tool, 0.25)
        python.add_time(tool, 0.25)
    for reason in extra:
        rust.note_refusal("t1", reason)
        python.note_refusal("t1", reason)
    assert rust.counters() == python.counters()
    for run in ("r1", "r2", "r3"):
        assert rust.run_calls(run) == python.run_calls(run)


def test_twins_reject_bad_configs_alike(speedups: Any) -> None:
    for bad in [(0, 1, 1, 2), (1, 0, 1, 2), (1, 1, 0, 2), (1, 1, 1, 2, 0), (1, 1, 1, 2, None, 0)]:
        with pytest.raises(ValueError):
            speedups.ToolGuard(*bad)
        with pytest.raises(ValueError):
            PyToolGuard(*bad)
    for guard in (speedups.ToolGuard(3, 2, 2, 3), PyToolGuard(3, 2, 2, 3)):
        with pytest.raises(ValueError, match="unknown refusal reason"):
            guard.note_refusal("t", "bored")


_executor_calls = st.lists(
    st.tuples(
        st.sampled_from(["Alice", "Bob"]),
        st.sampled_from(["search", "read"]),
        st.sampled_from([{"q": 1}, {"q": 1.0}, '{"q": 1}', {"q": "x"}, {"q": [1, 2]}, {"q": {"a": None, "b": True}}]),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=_executor_calls, max_repeats=st.integers(1, 3), max_calls=st.none() | st.integers(1, 30))
def test_executor_twins_refuse_the_same_calls(speedups: Any, calls: list, max_repeats: int, max_calls: Any) -> None:
    twins = [RustToolExecutor(use_rust=flag, max_repeats=max_repeats, max_calls=max_calls, loop_window=6) for flag in (True, False)]
    outcomes: list[list[Any]] = [[], []]
    for ex, log in zip(twins, outcomes):
        ex.register_tool(lambda q: "r", name="search")
        ex.register_tool(lambda q: "r", name="read")
        for agent, tool, args in calls:
            try:
                log.append(ex.execute_tool(tool, args, agent=agent, run_id="parity"))
            except ToolRefusedError as refused:
                log.append((refused.reason, refused.refusal.fingerprint))
    assert outcomes[0] == outcomes[1]
    strip = lambda c: {t: (v["calls"], v["refusals"]) for t, v in c.items()}  # noqa: E731
    assert strip(twins[0].counters()) == strip(twins[1].counters())
