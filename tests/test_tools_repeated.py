"""The replacement check_repeated_tool_call behaves exactly like CrewAI's, and
patch()/unpatch() swap every bound name and restore it by identity."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crewai_rust


class Shown:
    """An object json.dumps(default=str) turns into its str."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class Label(str):
    pass


def _pair() -> tuple[Any, Any]:
    from crewai.utilities import agent_utils

    from crewai_rust.tools._repeated import make_check_repeated_tool_call

    return agent_utils.check_repeated_tool_call, make_check_repeated_tool_call(agent_utils)


def _outcome(check: Any, counts: dict, call: tuple) -> Any:
    name, args, result, agent, task = call
    try:
        check(counts, tool_name=name, tool_args=args, result=result, agent=agent, task=task)
    except Exception as exc:  # compare type, message and payload
        return (type(exc), str(exc), repr(exc.args))
    return None


class _Agent:
    role = "Researcher"


class _Task:
    name = None
    description = "Find things"
    id = "1234"


_args = st.sampled_from(
    [
        None,
        "q=rust",
        '"q=rust"',
        '{"q": "rust"}',
        {"q": "rust"},
        {"q": Label("rust")},
        {"q": Shown("rust")},
        {"q": "rust", "n": 1},
        {"n": 1, "q": "rust"},
        {"q": "rust", "n": 1.0},
        {"q": "rust", "n": True},
        {"q": ["a", "b"]},
        {"q": ("a", "b")},
        {1: "x"},
        {"1": "x"},
        {"q": float("nan")},
        Shown("q=rust"),
        Label("q=rust"),
        ["q", "rust"],
        {"u": "é\ud800"},
        {"u": "\\u00e9"},
    ]
)
_results = st.sampled_from(["ok", Label("ok"), Shown("ok"), 1, "1", None, "None", {"a": 1}, "é" * 3, "x" * 20000])
_names = st.sampled_from(["search", Label("search"), "other"])
_calls = st.lists(st.tuples(_names, _args, _results, st.sampled_from([None, _Agent()]), st.sampled_from([None, _Task()])), max_size=40)


@settings(max_examples=100, deadline=None)
@given(calls=_calls, threshold=st.sampled_from([1, 2, 3, 5]))
def test_same_decisions_as_crewai_on_random_sequences(calls: list, threshold: int) -> None:
    from crewai.utilities import agent_utils

    original, fast = _pair()
    saved = agent_utils.MAX_REPEATED_TOOL_CALLS
    agent_utils.MAX_REPEATED_TOOL_CALLS = threshold
    try:
        counts_a: dict = {}
        counts_b: dict = {}
        for call in calls:
            assert _outcome(fast, counts_b, call) == _outcome(original, counts_a, call), call
        assert sorted(counts_a.values()) == sorted(counts_b.values())
    finally:
        agent_utils.MAX_REPEATED_TOOL_CALLS = saved


def test_same_error_on_the_fifth_call_and_same_failures_on_bad_input() -> None:
    from crewai.tools.tool_failure import ToolExecutionFailedError

    original, fast = _pair()
    big = "lorem ipsum " * 9000  # ~100 KB result
    a: dict = {}
    b: dict = {}
    call = ("search", {"q": "x"}, big, _Agent(), _Task())
    outcomes = [(_outcome(original, a, call), _outcome(fast, b, call)) for _ in range(5)]
    assert [x == y for x, y in outcomes] == [True] * 5
    assert outcomes[-1][0][0] is ToolExecutionFailedError
    assert "called 'search' with the same arguments 5 times" in outcomes[-1][0][1]
    loop: dict = {}
    loop["self"] = loop
    for bad_args in (loop, {1: "a", "b": 2}, {(1, 2): "tuple key"}):
        call = ("search", bad_args, "r", None, None)
        assert _outcome(fast, {}, call) == _outcome(original, {}, call) is not None


def _bound_names() -> dict[str, Any]:
    return {
        name: vars(module)["check_repeated_tool_call"]
        for name, module in list(sys.modules.items())
        if module is not None and name.startswith("crewai.") and "check_repeated_tool_call" in vars(module)
    }


def test_patch_replaces_every_bound_name_and_unpatch_restores_identity(use_rust: bool) -> None:
    import crewai.agents.agent_executor  # noqa: F401
    import crewai.agents.step_executor  # noqa: F401
    from crewai.hooks import get_after_tool_call_hooks, get_before_tool_call_hooks

    from crewai_rust.tools import active_executor

    before = _bound_names()
    hooks_before = (get_before_tool_call_hooks(), get_after_tool_call_hooks())
    assert {"crewai.utilities.agent_utils", "crewai.agents.agent_executor", "crewai.agents.step_executor"} <= set(before)
    state = crewai_rust.patch("tools", tools={"max_repeats": 4})["components"]["TOOLS"]
    assert state["enabled"] and state["missing"] == [] and state["implementation"] == ("rust" if use_rust else "python")
    patched = _bound_names()
    fast = patched["crewai.utilities.agent_utils"]
    assert getattr(fast, "__crewai_rust__", None) == "tools"
    assert all(fn is fast for fn in patched.values())
    executor = active_executor()
    assert executor is not None and executor.max_repeats == 4
    assert executor.before_hook in get_before_tool_call_hooks()
    assert executor.after_hook in get_after_tool_call_hooks()
    crewai_rust.unpatch()
    assert _bound_names() == before and all(_bound_names()[k] is v for k, v in before.items())
    assert (get_before_tool_call_hooks(), get_after_tool_call_hooks()) == hooks_before
    assert active_executor() is None


def test_environment_configures_and_typos_fail(monkeypatch: pytest.MonkeyPatch, use_rust: bool) -> None:
    from crewai_rust.tools import active_executor

    monkeypatch.setenv("CREWAI_RUST_TOOLS_MAX_DEPTH", "4")
    monkeypatch.setenv("CREWAI_RUST_TOOLS_MAX_CALLS", "30")
    monkeypatch.setenv("CREWAI_RUST_TOOLS_STRICT", "1")
    monkeypatch.setenv("CREWAI_RUST_TOOLS_REPEATED_CHECK", "0")
    state = crewai_rust.patch("tools", tools={"loop_window": 6})["components"]["TOOLS"]
    executor = active_executor()
    assert executor is not None
    assert (executor.max_recursion_depth, executor.max_calls, executor.strict, executor.loop_window) == (4, 30, True, 6)
    assert not any("check_repeated_tool_call" in p for p in state["patched"])
    crewai_rust.unpatch()
    state = crewai_rust.patch("tools", tools={"max_repeat": 2})["components"]["TOOLS"]
    assert not state["enabled"] and "unknown tools option" in state["error"]
    crewai_rust.unpatch()
    monkeypatch.setenv("CREWAI_RUST_TOOLS_MAX_REPEATS", "zero")
    state = crewai_rust.patch("tools")["components"]["TOOLS"]
    assert not state["enabled"] and "CREWAI_RUST_TOOLS_MAX_REPEATS" in state["error"]


@given(st.text(max_size=30), st.text(max_size=30))
@settings(max_examples=50, deadline=None)
def test_a_refused_repeat_counts_as_the_call_it_repeats(real: str, refusal_text: str) -> None:
    """Only the guard's RefusedResult is keyed differently: by the result it stands for."""
    import pickle

    from crewai_rust.tools._errors import RefusedResult
    from crewai_rust.tools._repeated import repeated_call_key

    args = {"text": "hi"}
    refused = RefusedResult(refusal_text, stands_for=real)
    assert str(refused) == refusal_text  # the agent reads the refusal
    assert repeated_call_key("echo", args, refused) == repeated_call_key("echo", args, real)
    # A refused call that never ran stands for nothing: keyed by its (stable) text, like CrewAI.
    assert repeated_call_key("echo", args, RefusedResult(refusal_text)) == repeated_call_key("echo", args, refusal_text)
    clone = pickle.loads(pickle.dumps(refused))
    assert clone == refused and clone.stands_for == real


def test_crewai_stops_on_the_fifth_call_counting_refused_repeats() -> None:
    from crewai.tools.tool_failure import ToolExecutionFailedError
    from crewai.utilities import agent_utils

    from crewai_rust.tools._errors import RefusedResult

    _, fast = _pair()
    counts: dict[int, int] = {}
    for result in ("x", "x", "x", RefusedResult("Tool call refused: ...", "x")):
        fast(counts, tool_name="echo", tool_args={"text": "hi"}, result=result)
    with pytest.raises(ToolExecutionFailedError):
        fast(counts, tool_name="echo", tool_args={"text": "hi"}, result=RefusedResult("Tool call refused: ...", "x"))
    assert agent_utils.MAX_REPEATED_TOOL_CALLS == 5
