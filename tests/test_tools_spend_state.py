"""SpendGuard, the CrewAI-free bookkeeping behind escalation and the per-kickoff budget."""

from __future__ import annotations

from typing import Any

import pytest

from crewai_rust.tools._spend import FORCED, NORMAL, PENDING, STOPPED, SpendGuard


class _LLM:
    def __init__(self) -> None:
        self._token_usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "successful_requests": 0}

    def spend(self, tokens: int) -> None:
        self._token_usage["total_tokens"] += tokens
        self._token_usage["prompt_tokens"] += tokens
        self._token_usage["successful_requests"] += 1


def _phase(guard: SpendGuard, run: str, agent: str) -> str:
    return guard._loops[(run, agent)].phase


def test_escalation_walks_normal_pending_forced_stopped() -> None:
    guard = SpendGuard(max_refusals=2, max_llm_calls=None, max_tokens=None)
    assert guard.before_llm("r", "A", "t1", None) == ("ok", None)
    assert guard.note_refusal("r", "A", "t1", "echo", "fp1", "repeat") is False
    assert _phase(guard, "r", "A") == NORMAL
    assert guard.note_refusal("r", "A", "t1", "echo", "fp1", "repeat") is True
    assert _phase(guard, "r", "A") == PENDING and not guard.escalated("r", "A", "t1")
    verdict, loop = guard.before_llm("r", "A", "t1", None)
    assert verdict == "force" and loop["refusals"] == 2 and _phase(guard, "r", "A") == FORCED
    assert guard.escalated("r", "A", "t1") and not guard.escalated("r", "B", "t1") and not guard.escalated("r2", "A", "t1")
    loop, first = guard.stop_from_tool("r", "A", "echo", "fp1")
    assert first and loop["tools"] == ["echo", "echo", "echo"] and _phase(guard, "r", "A") == STOPPED
    verdict, (loop, first) = guard.before_llm("r", "A", "t2", None)
    assert verdict == "loop" and not first, "stopped for the rest of the run, logged once"
    assert guard.stats()["escalations"] == 1 and guard.stats()["loop_stops"] == 1


def test_a_new_task_after_an_answer_starts_again() -> None:
    guard = SpendGuard(max_refusals=2, max_llm_calls=None, max_tokens=None)
    guard.note_refusal("r", "A", "t1", "echo", "fp", "repeat")
    guard.note_refusal("r", "A", "t1", "echo", "fp", "repeat")
    assert guard.before_llm("r", "A", "t1", None)[0] == "force"
    # The forced call was answered: the agent's next LLM call is for another task.
    assert guard.before_llm("r", "A", "t2", None) == ("ok", None)
    assert _phase(guard, "r", "A") == NORMAL and guard._loops[("r", "A")].refusals == 0
    # A refusal in a new task does not carry the old task's count.
    guard.note_refusal("r", "A", "t1", "echo", "fp", "repeat")
    assert guard.note_refusal("r", "A", "t3", "echo", "fp", "repeat") is False


def test_forced_then_asking_again_is_a_loop() -> None:
    guard = SpendGuard(max_refusals=1, max_llm_calls=None, max_tokens=None)
    guard.note_refusal("r", "A", "t", "x", "", "cycle")
    assert guard.before_llm("r", "A", "t", None)[0] == "force"
    verdict, (loop, first) = guard.before_llm("r", "A", "t", None)
    assert verdict == "loop" and first and loop["refusals"] == 1


def test_zero_max_refusals_never_escalates() -> None:
    guard = SpendGuard(max_refusals=0, max_llm_calls=None, max_tokens=None)
    for _ in range(10):
        assert guard.note_refusal("r", "A", "t", "x", "fp", "repeat") is False
    assert guard.before_llm("r", "A", "t", None) == ("ok", None)


def test_llm_call_budget_counts_calls_per_run() -> None:
    guard = SpendGuard(max_refusals=2, max_llm_calls=3, max_tokens=None)
    for _ in range(3):
        assert guard.before_llm("r1", "A", "t", None)[0] == "ok"
    verdict, ((limit, budget), usage, first) = guard.before_llm("r1", "A", "t", None)
    assert (verdict, limit, budget, usage["llm_calls"], first) == ("budget", "max_llm_calls", 3, 3, True)
    assert guard.before_llm("r1", "A", "t", None)[1][2] is False, "a budget stop is counted and logged once"
    assert guard.before_llm("r2", "A", "t", None)[0] == "ok", "another run has its own budget"
    assert guard.stats()["budget_stops"] == 1


def test_token_budget_reads_growth_of_crewais_records() -> None:
    guard = SpendGuard(max_refusals=2, max_llm_calls=None, max_tokens=100)
    llm = _LLM()
    llm.spend(1000)  # spent before this run: the first sight is the baseline
    assert guard.before_llm("r", "A", "t", llm)[0] == "ok"
    llm.spend(60)
    assert guard.before_llm("r", "A", "t", llm)[0] == "ok"
    assert guard.run_usage("r")["total_tokens"] == 60
    llm.spend(50)
    verdict, ((limit, _), usage, _) = guard.before_llm("r", "A", "t", llm)
    assert verdict == "budget" and limit == "max_tokens" and usage["total_tokens"] == 110 and usage["llm_calls"] == 2
    assert usage["successful_requests"] == 2


def test_runs_are_bounded_and_forgotten() -> None:
    guard = SpendGuard(max_refusals=1, max_llm_calls=None, max_tokens=None, max_runs=4)
    for i in range(10):
        guard.before_llm(f"r{i}", "A", "t", None)
    assert guard.stats()["runs_tracked"] == 4
    guard.note_refusal("r9", "A", "t", "x", "fp", "repeat")
    guard.forget_run("r9")
    assert ("r9", "A") not in guard._loops and guard.run_usage("r9")["llm_calls"] == 0
    guard.reset()
    assert guard.stats()["runs_tracked"] == 0


@pytest.mark.parametrize("bad", [{"max_refusals": -1}, {"max_llm_calls": 0}, {"max_tokens": 0}])
def test_executor_rejects_bad_spend_options(bad: dict[str, Any]) -> None:
    from crewai_rust.tools import RustToolExecutor

    with pytest.raises(ValueError):
        RustToolExecutor(use_rust=False, **bad)


def test_typed_errors_import_lazily() -> None:
    import os
    import subprocess
    import sys

    import crewai_rust

    # The crewai_rust under test (source tree or installed), not whatever the cwd holds.
    root = os.path.dirname(os.path.dirname(os.path.abspath(crewai_rust.__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    code = "import sys, crewai_rust.tools as t; assert 'crewai' not in sys.modules; t.ToolLoopError; assert 'crewai' in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    assert proc.returncode == 0, proc.stderr


def test_same_task_in_a_new_conversation_starts_again() -> None:
    guard = SpendGuard(max_refusals=1, max_llm_calls=None, max_tokens=None)
    guard.note_refusal("r", "A", "t", "x", "fp", "repeat")
    prompt = {"role": "user", "content": "final answer now"}
    conversation: list[Any] = [{"role": "user", "content": "task"}]
    assert guard.before_llm("r", "A", "t", None, messages=conversation, force_message=prompt)[0] == "force"
    conversation.append(prompt)
    # A guardrail re-runs task t: new messages without the forced prompt -> not a loop.
    assert guard.before_llm("r", "A", "t", None, messages=[{"role": "user", "content": "task, retry"}]) == ("ok", None)
    assert _phase(guard, "r", "A") == NORMAL
