"""``RustToolExecutor``: recursion-tracked tool dispatch and a loop guard.

Every tool call passes :meth:`RustToolExecutor.admit` before it runs and
:meth:`RustToolExecutor.release` after it: admit checks the nesting depth of
the call chain, delegation loops between agents, the run's call budget and the
loop window (repeats and short cycles), and either records the call or returns
a :class:`Refusal` whose message the agent can read. The same pair backs
``execute_tool`` (standalone use) and CrewAI's before/after tool-call hooks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from .._selection import implementation_name, twin, use_rust as resolve_rust
from . import _context, _runs
from ._errors import REASONS, Refusal, RefusedResult, ToolArgumentsError, ToolNotRegisteredError, ToolRefusedError
from . import _fingerprint, _toolguard_py
from ._fingerprint import fallback_fingerprint, normalise_args
from ._spend import SpendGuard

logger = logging.getLogger("crewai_rust.tools")

DEFAULTS: dict[str, Any] = {
    "max_recursion_depth": 8,
    "loop_window": 10,
    "max_repeats": 3,
    "max_calls": None,
    "strict": False,
    "cycle_repeats": 2,
    "max_cycle_length": 3,
    "max_refusals": 2,
    "max_llm_calls": None,
    "max_tokens": None,
}

#: CrewAI's forced-final-answer prompt (``I18N_DEFAULT.errors("force_final_answer")``), read once.
_FORCE_FINAL_ANSWER: list[str] = []


def _force_final_answer_message() -> dict[str, str]:
    if not _FORCE_FINAL_ANSWER:
        from crewai.utilities.i18n import I18N_DEFAULT

        _FORCE_FINAL_ANSWER.append(I18N_DEFAULT.errors("force_final_answer"))
    return {"role": "user", "content": _FORCE_FINAL_ANSWER[0]}


def _task_key(task: Any) -> Any:
    """A task's identity that outlives nothing: its uuid (a new delegated Task gets a new one)."""
    return None if task is None else getattr(task, "id", None) or id(task)


def _positive(name: str, value: Any, *, allow_none: bool = False, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}")


class RustToolExecutor:
    """Tool dispatch with a recursion limit, a loop guard, a call budget and counters.

    Defaults never stop a legitimate workflow: 8 nested tool calls, 3 identical
    calls (same agent, tool and canonical arguments) within the last 10, two
    full rounds of a cycle of 2 or 3 calls, no budget. Inside CrewAI, an agent
    refused ``max_refusals`` times in one task is asked for its final answer
    (CrewAI's own prompt) and stopped with ``ToolLoopError`` if it calls tools
    again; ``max_llm_calls`` / ``max_tokens`` cap each kickoff's LLM spending
    (``BudgetExceededError``).
    """

    def __init__(
        self,
        max_recursion_depth: int = DEFAULTS["max_recursion_depth"],
        loop_window: int = DEFAULTS["loop_window"],
        max_repeats: int = DEFAULTS["max_repeats"],
        max_calls: int | None = DEFAULTS["max_calls"],
        strict: bool = DEFAULTS["strict"],
        use_rust: bool | None = None,
        *,
        cycle_repeats: int = DEFAULTS["cycle_repeats"],
        max_cycle_length: int = DEFAULTS["max_cycle_length"],
        max_runs: int = 256,
        refusal_log_size: int = 1000,
        max_refusals: int = DEFAULTS["max_refusals"],
        max_llm_calls: int | None = DEFAULTS["max_llm_calls"],
        max_tokens: int | None = DEFAULTS["max_tokens"],
    ) -> None:
        _positive("max_recursion_depth", max_recursion_depth)
        _positive("loop_window", loop_window)
        _positive("max_repeats", max_repeats)
        _positive("max_calls", max_calls, allow_none=True)
        _positive("cycle_repeats", cycle_repeats)
        _positive("max_cycle_length", max_cycle_length, minimum=0)
        _positive("max_runs", max_runs)
        _positive("refusal_log_size", refusal_log_size)
        _positive("max_refusals", max_refusals, minimum=0)
        _positive("max_llm_calls", max_llm_calls, allow_none=True)
        _positive("max_tokens", max_tokens, allow_none=True)
        self.max_recursion_depth = max_recursion_depth
        self.loop_window = loop_window
        self.max_repeats = max_repeats
        self.max_calls = max_calls
        self.strict = bool(strict)
        self.cycle_repeats = cycle_repeats
        self.max_cycle_length = max_cycle_length
        self.max_refusals = max_refusals
        self.max_llm_calls = max_llm_calls
        self.max_tokens = max_tokens
        self._spend = SpendGuard(max_refusals, max_llm_calls, max_tokens, max_runs)
        self._max_runs = max_runs
        self._rust = resolve_rust(use_rust)
        guard_args = (loop_window, max_repeats, cycle_repeats, max_cycle_length, max_calls, max_runs)
        self._guard = twin(_toolguard_py.ToolGuard, self._rust)(*guard_args)
        self._fingerprint = twin(_fingerprint.tool_call_fingerprint, self._rust)
        self._tools: dict[str, Callable[..., Any]] = {}
        self._refusals: deque[Refusal] = deque(maxlen=refusal_log_size)
        self._results: dict[str, dict[str, str]] = {}  # run -> fingerprint -> last result CrewAI saw
        self._escalated_refusals = 0
        self._lock = threading.Lock()
        # Bound once so CrewAI's unregister_* finds the very objects registered.
        self.before_hook = self._before_tool_call
        self.after_hook = self._after_tool_call
        self.before_llm_hook = self._before_llm_call

    @property
    def implementation(self) -> str:
        """"rust" or "python": which twin fingerprints calls and keeps the window."""
        return implementation_name(self._rust)

    def config(self) -> dict[str, Any]:
        return {
            "max_recursion_depth": self.max_recursion_depth,
            "loop_window": self.loop_window,
            "max_repeats": self.max_repeats,
            "max_calls": self.max_calls,
            "strict": self.strict,
            "cycle_repeats": self.cycle_repeats,
            "max_cycle_length": self.max_cycle_length,
            "max_refusals": self.max_refusals,
            "max_llm_calls": self.max_llm_calls,
            "max_tokens": self.max_tokens,
            "implementation": self.implementation,
        }

    # -- the guard ------------------------------------------------------------
    def fingerprint(self, agent: Any, tool_name: str, args: Any) -> str:
        """The loop-guard key of a call; never raises (odd arguments get a stable fallback)."""
        try:
            return self._fingerprint(_runs.agent_role(agent), tool_name, normalise_args(args))
        except Exception as exc:  # a fingerprint must never break dispatch
            logger.debug("crewai_rust tools: fingerprint fell back for %s: %r", tool_name, exc)
            return fallback_fingerprint(_runs.agent_role(agent), tool_name, args)

    def admit(self, agent: Any, tool_name: str, args: Any, *, run: str | None = None, marker: Any = None) -> Refusal | None:
        """Decide a call before it runs and open its frame; None means it may run.

        Every ``admit`` must be followed by :meth:`release` with the same
        ``marker`` (refused calls too): the frame holds the nesting depth.
        """
        role = _runs.agent_role(agent)
        run = run if run is not None else _runs.run_key()
        chain = _context.current_chain()
        depth = len(chain) + 1
        coworker = _runs.coworker_of(tool_name, args)
        refusal: Refusal | None = None
        fingerprint = ""
        if depth > self.max_recursion_depth:
            refusal = self._refuse("recursion", tool_name, role, run, depth, chain)
        elif coworker is not None and self._closes_delegation_loop(role, coworker, chain):
            refusal = self._refuse("delegation_cycle", tool_name, role, run, depth, chain, coworker=coworker)
        else:
            fingerprint = self.fingerprint(role, tool_name, args)  # role is already a str
            reason = self._guard.admit(run, fingerprint, tool_name)
            if reason is not None:
                refusal = self._refuse(reason, tool_name, role, run, depth, chain, fingerprint=fingerprint, counted=True)
        marker = marker if marker is not None else object()
        _context.push(_context.Frame(role, tool_name, coworker, marker, time.perf_counter(), refusal, run, fingerprint))
        return refusal

    def release(self, marker: Any) -> _context.Frame | None:
        """Close the frame opened by :meth:`admit`; records the time an admitted call took."""
        frame = _context.pop(marker)
        if frame is not None and frame.refusal is None:
            self._guard.add_time(frame.tool, time.perf_counter() - frame.started)
        return frame

    @staticmethod
    def _closes_delegation_loop(role: str, coworker: str, chain: tuple[_context.Frame, ...]) -> bool:
        callers = [f.agent for f in chain if f.refusal is None] + [role]
        return any(_runs.same_agent(coworker, c) for c in callers)

    def _refuse(
        self,
        reason: str,
        tool: str,
        agent: str,
        run: str,
        depth: int,
        chain: tuple[_context.Frame, ...],
        *,
        coworker: str | None = None,
        fingerprint: str = "",
        counted: bool = False,
    ) -> Refusal:
        if not counted:
            self._guard.note_refusal(tool, reason)
        links = tuple(f"{f.agent or '?'}:{f.tool}" for f in chain if f.refusal is None) + (f"{agent or '?'}:{tool}",)
        # The same refused call always reads the same: CrewAI's own repeat check must see a repeat.
        message = self._message(reason, tool, agent, depth, links, coworker, run)
        refusal = Refusal(reason, tool, agent, run, depth, message, links, fingerprint)
        self._refusals.append(refusal)
        logger.warning("crewai_rust tools: refused %s call of %r by %r (run %s): %s", reason, tool, agent, run, message)
        return refusal

    def _message(
        self, reason: str, tool: str, agent: str, depth: int, links: tuple[str, ...], coworker: str | None, run: str
    ) -> str:
        who = f"Agent '{agent}'" if agent else "This agent"
        if reason == "recursion":
            return (
                f"Tool call refused: '{tool}' would be nested {depth} tool calls deep, past the limit of "
                f"{self.max_recursion_depth}. Call chain: {' -> '.join(links)}. "
                "Finish with the information you already have instead of calling more tools."
            )
        if reason == "delegation_cycle":
            agents = [link.rsplit(":", 1)[0] for link in links]
            start = next((i for i, a in enumerate(agents) if _runs.same_agent(a, coworker or "")), 0)
            loop = " -> ".join(agents[start:] + [coworker or "?"])
            return (
                f"Tool call refused: {who} asking '{coworker}' via '{tool}' would close a delegation loop "
                f"({loop}). Do this part of the work yourself or give your final answer."
            )
        if reason == "budget":
            return (
                f"Tool call refused: this run already made {self._guard.run_calls(run)} tool calls, its budget "
                f"(max_calls={self.max_calls}). Give your final answer with the information you have."
            )
        if reason == "repeat":
            return (
                f"Tool call refused: {who} already called '{tool}' with these same arguments {self.max_repeats} "
                f"times within the last {self.loop_window} tool calls. Repeating it will not give new "
                "information: use the results you have or change the arguments."
            )
        return (
            f"Tool call refused: {who} is going round a cycle of tool calls that has already repeated "
            f"{self.cycle_repeats} times (now calling '{tool}' again). Stop repeating the cycle: use the "
            "results you have or try something different."
        )

    # -- standalone dispatch --------------------------------------------------
    def register_tool(self, tool: Any, name: str | None = None) -> str:
        """Register a callable, a CrewAI ``BaseTool`` or any object with ``run``; returns its name."""
        if name is None:
            name = getattr(tool, "name", None) or getattr(tool, "__name__", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"cannot tell the name of tool {tool!r}; pass name=")
        if callable(getattr(tool, "run", None)) and not isinstance(tool, type):
            fn = tool.run
        elif callable(tool):
            fn = tool
        else:
            raise TypeError(f"tool {name!r} is neither callable nor has a run() method")
        self._tools[name] = fn
        return name

    def unregister_tool(self, name: str) -> bool:
        return self._tools.pop(name, None) is not None

    @property
    def tools(self) -> list[str]:
        return list(self._tools)

    def execute_tool(self, name: str, args: Any = None, *, agent: Any = None, run_id: str | None = None) -> Any:
        """Run a registered tool through the guards; returns its result.

        ``run_id`` names the run (window and budget) for this call and the calls
        nested inside it. Raises :class:`ToolNotRegisteredError`, :class:`ToolArgumentsError` (args
        not a mapping or JSON object text) or :class:`ToolRefusedError`;
        exceptions of the tool itself propagate unchanged.
        """
        fn = self._tools.get(name)
        if fn is None:
            raise ToolNotRegisteredError(f"no tool named {name!r} is registered (known: {sorted(self._tools)})")
        kwargs = normalise_args(args) if args is not None else {}
        if not isinstance(kwargs, dict):
            raise ToolArgumentsError(f"arguments for {name!r} must be a mapping or JSON object text, got {type(args).__name__}")
        if not all(isinstance(k, str) for k in kwargs):
            raise ToolArgumentsError(f"argument names for {name!r} must be strings")
        marker = object()
        token = _context.set_run(run_id) if run_id is not None else None  # nested calls join the run
        try:
            refusal = self.admit(agent, name, kwargs, marker=marker)
            try:
                if refusal is not None:
                    raise ToolRefusedError(refusal)
                return fn(**kwargs)
            finally:
                self.release(marker)
        finally:
            if token is not None:
                _context.reset_run(token)

    @contextlib.contextmanager
    def run(self, run_id: str) -> Iterator[str]:
        """Calls inside this block (and threads copying its context) belong to run ``run_id``."""
        token = _context.set_run(run_id)
        try:
            yield run_id
        finally:
            _context.reset_run(token)
            self._guard.forget_run(run_id)
            self._spend.forget_run(run_id)
            with self._lock:
                self._results.pop(run_id, None)

    # -- CrewAI hooks ------------------------------------------------------
    def _before_tool_call(self, ctx: Any) -> bool | None:
        run = _runs.run_key(ctx.crew)
        role = _runs.agent_role(ctx.agent)
        task = _task_key(ctx.task)
        if self._spend.escalated(run, role, task):
            return self._refuse_escalated(ctx, run, role)
        refusal = self.admit(ctx.agent, ctx.tool_name, ctx.tool_input, run=run, marker=ctx.tool_input)
        if refusal is None:
            return None
        if not self.strict and self._spend.note_refusal(run, role, task, refusal.tool, refusal.fingerprint, refusal.reason):
            logger.warning(
                "crewai_rust tools: escalating agent %r (run %s): %d refused calls; its next LLM call is CrewAI's "
                "forced final answer, and a tool call after it ends the task with ToolLoopError",
                role, run, self.max_refusals,
            )
        return False

    def _refuse_escalated(self, ctx: Any, run: str, role: str) -> bool:
        """A tool call after the forced final answer: blocked here, raised from the after-hook."""
        fingerprint = self.fingerprint(role, ctx.tool_name, ctx.tool_input)
        message = f"Tool call refused: agent '{role}' was asked for its final answer and must not call tools."
        refusal = Refusal("escalated", ctx.tool_name, role, run, len(_context.current_chain()) + 1, message, (), fingerprint)
        with self._lock:
            self._escalated_refusals += 1
        self._refusals.append(refusal)
        _context.push(_context.Frame(role, ctx.tool_name, None, ctx.tool_input, time.perf_counter(), refusal, run, fingerprint))
        return False

    def _after_tool_call(self, ctx: Any) -> str | None:
        frame = self.release(ctx.tool_input)
        if frame is None:
            return None
        refusal = frame.refusal
        if refusal is None:
            if frame.fingerprint:
                self._remember_result(frame.run, frame.fingerprint, ctx.tool_result)
            return None
        if refusal.reason == "escalated":
            raise self._loop_error(refusal.run, refusal.agent, refusal.tool, ctx.task, ctx.tool_input, from_tool=True)
        if self.strict:
            from ._stops import loop_aborted

            raise loop_aborted(refusal)
        return RefusedResult(str(refusal.message), self._last_result(refusal.run, refusal.fingerprint))

    def _remember_result(self, run: str, fingerprint: str, result: Any) -> None:
        if not isinstance(result, str):
            return
        limit = max(16, 2 * self.loop_window)
        with self._lock:
            results = self._results.get(run)
            if results is None:
                while len(self._results) >= self._max_runs:
                    del self._results[next(iter(self._results))]
                results = self._results[run] = {}
            results.pop(fingerprint, None)
            results[fingerprint] = result
            while len(results) > limit:
                del results[next(iter(results))]

    def _last_result(self, run: str, fingerprint: str) -> str | None:
        if not fingerprint:
            return None
        with self._lock:
            results = self._results.get(run)
            return results.get(fingerprint) if results is not None else None

    def _before_llm_call(self, ctx: Any) -> None:
        """Before every LLM call CrewAI makes: the run's budget, then the agent's escalation state."""
        executor = getattr(ctx, "executor", None)
        run = _runs.run_key(getattr(ctx, "crew", None))
        role = _runs.agent_role(ctx.agent)
        # Direct LLM-layer calls (memory, planning) count for the budget, not for an agent's loop.
        force = _force_final_answer_message()
        messages = ctx.messages
        verdict, info = self._spend.before_llm(
            run, role, _task_key(ctx.task), ctx.llm, loops=executor is not None, messages=messages, force_message=force
        )
        if verdict == "ok":
            return None
        if verdict == "force":
            messages.append(force)  # in place: CrewAI sends the executor's own list
            return None
        if verdict == "loop":
            raise self._loop_error(run, role, info[0]["tools"][-1] if info[0]["tools"] else "", ctx.task, None, state=info)
        from ._stops import BudgetExceededError

        (limit, budget), usage, first = info
        if first:
            logger.warning(
                "crewai_rust tools: run %s spent its budget %s=%d (llm_calls=%d, total_tokens=%d); stopping it",
                run, limit, budget, usage["llm_calls"], usage["total_tokens"],
            )
        raise BudgetExceededError(limit, budget, usage, run=run, agent=role)

    def _loop_error(
        self, run: str, role: str, tool: str, task: Any, tool_args: Any, *, from_tool: bool = False, state: Any = None
    ) -> Exception:
        from ._stops import ToolLoopError

        if state is None:
            state = self._spend.stop_from_tool(run, role, tool, self.fingerprint(role, tool, tool_args) if from_tool else "")
        loop, first = state
        if first:
            logger.warning(
                "crewai_rust tools: stopped agent %r (run %s) with ToolLoopError: it called %r after %d refused calls "
                "and the forced final answer",
                role, run, tool, loop["refusals"],
            )
        return ToolLoopError(
            role, tool, run=run, refusals=loop["refusals"], tools=loop["tools"], fingerprints=loop["fingerprints"],
            task=task, tool_args=tool_args,
        )

    # -- what happened -------------------------------------------------------
    def counters(self) -> dict[str, dict[str, Any]]:
        """Per tool: calls admitted, refusals by reason, seconds spent running."""
        return dict(self._guard.counters())

    def refusals(self, run: str | None = None) -> list[Refusal]:
        """The most recent refusals (all runs, or one)."""
        return [r for r in self._refusals if run is None or r.run == run]

    def run_calls(self, run: str) -> int:
        return int(self._guard.run_calls(run))

    def run_usage(self, run: str) -> dict[str, int]:
        """LLM calls and tokens (CrewAI's own records) the guard has seen for run ``run`` so far."""
        return self._spend.run_usage(run)

    def stats(self) -> dict[str, Any]:
        """Totals since start or :meth:`reset`: tool calls, refusals (by reason), escalations, stops."""
        counters = self.counters()
        by_reason = dict.fromkeys((*REASONS, "escalated"), 0)
        for entry in counters.values():
            for reason, n in entry["refusals"].items():
                by_reason[reason] = by_reason.get(reason, 0) + n
        with self._lock:
            by_reason["escalated"] = self._escalated_refusals
        return {
            "implementation": self.implementation,
            "tool_calls": sum(entry["calls"] for entry in counters.values()),
            "refusals": sum(by_reason.values()),
            "refusals_by_reason": by_reason,
            **self._spend.stats(),
        }

    def reset(self) -> None:
        """Forget all runs, counters and refusals."""
        self._guard.reset()
        self._refusals.clear()
        self._spend.reset()
        with self._lock:
            self._results.clear()
            self._escalated_refusals = 0

    def __repr__(self) -> str:
        return f"RustToolExecutor({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"
