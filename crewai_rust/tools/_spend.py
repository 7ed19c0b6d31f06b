"""What stops the spending: refusal escalation per agent and an LLM budget per run.

A refusal is only a message to the model; a model that ignores it keeps paying
for LLM calls. :class:`SpendGuard` keeps, per run (kickoff), the LLM calls and
tokens spent, and per (run, agent) the refusals of that agent's current task:

- ``NORMAL``: refusals are counted; the ``max_refusals``-th one makes it ``PENDING``.
- ``PENDING``: the agent's next LLM call (same task) becomes CrewAI's forced
  final answer, and the state ``FORCED``.
- ``FORCED``: a tool call, or another LLM call for the same task, means the model
  ignored the forced final answer: ``STOPPED`` and a ``ToolLoopError``.
- ``STOPPED``: every later LLM or tool call of that agent in the run is stopped.

An LLM call for a different task of the agent, or for the same task in a new
conversation (a guardrail or retry re-running it: the forced prompt is no longer
in the messages), means the earlier run of the task ended with an answer: its
count starts again. Pure Python and CrewAI-free; the hooks that
drive it live in the executor.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("crewai_rust.tools")

NORMAL, PENDING, FORCED, STOPPED = "normal", "pending", "forced", "stopped"

#: CrewAI's own per-LLM token records (``BaseLLM._token_usage``) we read deltas of.
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_prompt_tokens", "successful_requests")


@dataclass
class AgentLoop:
    """One agent's refusals in one run (its current task)."""

    task: Any = None
    refusals: int = 0
    phase: str = NORMAL
    tools: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    stopped_logged: bool = False
    forced_message: Any = None  # the prompt object appended to the conversation

    def restart(self, task: Any) -> None:
        self.task, self.refusals, self.phase = task, 0, NORMAL
        self.tools, self.fingerprints, self.reasons = [], [], []
        self.forced_message = None

    def describe(self) -> dict[str, Any]:
        return {"refusals": self.refusals, "tools": list(self.tools), "fingerprints": list(self.fingerprints)}


@dataclass
class RunSpend:
    """LLM calls and tokens of one run, read from CrewAI's usage records."""

    llm_calls: int = 0
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USAGE_KEYS, 0))
    seen: dict[int, dict[str, int]] = field(default_factory=dict)  # id(llm's record) -> last snapshot
    budget_stopped: str | None = None

    def absorb(self, record: dict[str, Any] | None) -> None:
        """Add what an LLM's cumulative record grew by since this run last looked."""
        if record is None:
            return
        key = id(record)
        now = {k: int(record.get(k, 0) or 0) for k in USAGE_KEYS}
        last = self.seen.get(key)
        self.seen[key] = now
        if last is None:
            return  # first sight: the baseline (what others spent before this run)
        for k in USAGE_KEYS:
            grown = now[k] - last[k]
            if grown > 0:
                self.usage[k] += grown

    def as_dict(self) -> dict[str, int]:
        return {"llm_calls": self.llm_calls, **self.usage}


def usage_record(llm: Any) -> dict[str, Any] | None:
    """CrewAI's cumulative token record of ``llm`` (``_token_usage``, else the public summary)."""
    record = getattr(llm, "_token_usage", None)
    if isinstance(record, dict):
        return record
    summary = getattr(llm, "get_token_usage_summary", None)
    if callable(summary):
        try:
            return dict(summary().model_dump())
        except Exception:  # a foreign LLM object: no usage to read
            return None
    return None


class SpendGuard:
    """Per-run budgets and per-agent escalation; thread-safe, bounded to ``max_runs`` runs."""

    def __init__(self, max_refusals: int, max_llm_calls: int | None, max_tokens: int | None, max_runs: int = 256) -> None:
        self.max_refusals = max_refusals
        self.max_llm_calls = max_llm_calls
        self.max_tokens = max_tokens
        self.max_runs = max_runs
        self._runs: OrderedDict[str, RunSpend] = OrderedDict()
        self._loops: OrderedDict[tuple[str, str], AgentLoop] = OrderedDict()
        self._lock = threading.Lock()
        self.escalations = 0
        self.loop_stops = 0
        self.budget_stops = 0
        self.forced_answers = 0

    # -- bookkeeping ------------------------------------------------------------
    def _run(self, run: str) -> RunSpend:
        state = self._runs.get(run)
        if state is None:
            while len(self._runs) >= self.max_runs:
                self._runs.popitem(last=False)
            state = self._runs[run] = RunSpend()
        return state

    def _loop(self, run: str, agent: str) -> AgentLoop:
        key = (run, agent)
        state = self._loops.get(key)
        if state is None:
            while len(self._loops) >= self.max_runs * 8:
                self._loops.popitem(last=False)
            state = self._loops[key] = AgentLoop()
        return state

    # -- events -------------------------------------------------------------------
    def note_refusal(self, run: str, agent: str, task: Any, tool: str, fingerprint: str, reason: str) -> bool:
        """Count a refusal of ``agent``; True when it starts an escalation."""
        if self.max_refusals <= 0:
            return False
        with self._lock:
            state = self._loop(run, agent)
            if state.task != task and state.phase != STOPPED:
                state.restart(task)
            state.refusals += 1
            state.tools.append(tool)
            state.reasons.append(reason)
            if fingerprint:
                state.fingerprints.append(fingerprint)
            if state.phase == NORMAL and state.refusals >= self.max_refusals:
                state.phase = PENDING
                self.escalations += 1
                return True
            return False

    def before_llm(
        self, run: str, agent: str, task: Any, llm: Any, *, loops: bool = True, messages: list[Any] | None = None, force_message: Any = None
    ) -> tuple[str, Any]:
        """Decide one LLM call: ("ok", None), ("force", loop), ("loop", (loop, first)) or ("budget", (limit, usage, first))."""
        record = usage_record(llm) if llm is not None else None
        with self._lock:
            spend = self._run(run)
            spend.absorb(record)
            limit = None
            if self.max_llm_calls is not None and spend.llm_calls >= self.max_llm_calls:
                limit = ("max_llm_calls", self.max_llm_calls)
            elif self.max_tokens is not None and spend.usage["total_tokens"] >= self.max_tokens:
                limit = ("max_tokens", self.max_tokens)
            if limit is not None:
                first = spend.budget_stopped is None
                if first:
                    spend.budget_stopped = limit[0]
                    self.budget_stops += 1
                return "budget", (limit, spend.as_dict(), first)
            verdict: tuple[str, Any] = ("ok", None)
            state = self._loops.get((run, agent)) if loops and self.max_refusals > 0 else None
            if state is not None:
                if state.phase == STOPPED:
                    verdict = ("loop", self._stop(state))
                elif state.task != task:
                    state.restart(task)  # a new task: the earlier one ended with an answer
                elif state.phase == PENDING:
                    state.phase = FORCED
                    state.forced_message = force_message
                    self.forced_answers += 1
                    verdict = ("force", state.describe())
                elif state.phase == FORCED:
                    marker = state.forced_message
                    if marker is not None and messages is not None and not any(m is marker for m in reversed(messages)):
                        state.restart(task)  # the task runs again in a new conversation (guardrail, retry)
                    else:
                        verdict = ("loop", self._stop(state))
            if verdict[0] != "loop":
                spend.llm_calls += 1
            return verdict

    def escalated(self, run: str, agent: str, task: Any) -> bool:
        """Whether a tool call of ``agent`` now must be stopped (forced answer ignored, or stopped)."""
        if self.max_refusals <= 0:
            return False
        with self._lock:
            state = self._loops.get((run, agent))
            return state is not None and (state.phase == STOPPED or (state.phase == FORCED and state.task == task))

    def stop_from_tool(self, run: str, agent: str, tool: str, fingerprint: str) -> tuple[dict[str, Any], bool]:
        """The agent answered the forced final answer with a tool call: stop it."""
        with self._lock:
            state = self._loop(run, agent)
            state.tools.append(tool)
            if fingerprint:
                state.fingerprints.append(fingerprint)
            return self._stop(state)

    def _stop(self, state: AgentLoop) -> tuple[dict[str, Any], bool]:
        """Mark the agent stopped; returns what it did and whether this is the first stop (log once)."""
        state.phase = STOPPED
        first = not state.stopped_logged
        if first:
            state.stopped_logged = True
            self.loop_stops += 1
        return state.describe(), first

    # -- what happened --------------------------------------------------------------
    def run_usage(self, run: str) -> dict[str, int]:
        with self._lock:
            state = self._runs.get(run)
            return state.as_dict() if state is not None else RunSpend().as_dict()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "escalations": self.escalations,
                "forced_final_answers": self.forced_answers,
                "loop_stops": self.loop_stops,
                "budget_stops": self.budget_stops,
                "llm_calls": sum(r.llm_calls for r in self._runs.values()),
                "runs_tracked": len(self._runs),
            }

    def forget_run(self, run: str) -> None:
        with self._lock:
            self._runs.pop(run, None)
            for key in [k for k in self._loops if k[0] == run]:
                del self._loops[key]

    def reset(self) -> None:
        with self._lock:
            self._runs.clear()
            self._loops.clear()
            self.escalations = self.loop_stops = self.budget_stops = self.forced_answers = 0
