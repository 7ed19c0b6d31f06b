"""The loop guard's bookkeeping, pure-Python twin of ``_speedups.ToolGuard``.

Per run: a sliding window of the fingerprints of attempted calls (refused
attempts too, so retrying a refused cycle stays refused) and the count of
admitted calls (the budget). Per tool: calls, refusals by reason, seconds spent. A call
is refused before it runs when the budget is spent, when its fingerprint
already appears ``max_repeats`` times in the window, or when it would start
round ``cycle_repeats + 1`` of a short cycle (A, B, A, B, then A).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from ._errors import REASONS


class _Run:
    __slots__ = ("calls", "window")

    def __init__(self, size: int) -> None:
        self.window: deque[str] = deque(maxlen=size)
        self.calls = 0


class ToolGuard:
    """Same constructor, methods and decisions as the Rust ``ToolGuard``."""

    def __init__(
        self,
        loop_window: int,
        max_repeats: int,
        cycle_repeats: int,
        max_cycle_length: int,
        max_calls: int | None = None,
        max_runs: int = 256,
    ) -> None:
        for name, value in (
            ("loop_window", loop_window),
            ("max_repeats", max_repeats),
            ("cycle_repeats", cycle_repeats),
            ("max_runs", max_runs),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if max_cycle_length < 0:
            raise OverflowError("can't convert negative int to unsigned")
        if max_calls is not None and max_calls < 1:
            raise ValueError("max_calls must be at least 1 or None")
        self._loop_window = loop_window
        self._max_repeats = max_repeats
        self._cycle_repeats = cycle_repeats
        self._max_cycle_length = max_cycle_length
        self._max_calls = max_calls
        self._max_runs = max_runs
        self._runs: dict[str, _Run] = {}
        self._tools: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def _counters(self, tool: str) -> list[Any]:
        entry = self._tools.get(tool)
        if entry is None:
            entry = self._tools[tool] = [0, [0] * len(REASONS), 0.0]
        return entry

    def _run(self, run: str) -> _Run:
        state = self._runs.get(run)
        if state is None:
            while len(self._runs) >= self._max_runs:
                del self._runs[next(iter(self._runs))]
            state = self._runs[run] = _Run(self._loop_window)
        return state

    def _decide(self, state: _Run, fingerprint: str) -> str | None:
        if self._max_calls is not None and state.calls >= self._max_calls:
            return "budget"
        window = state.window
        if window.count(fingerprint) >= self._max_repeats:
            return "repeat"
        for period in range(2, self._max_cycle_length + 1):
            needed = self._cycle_repeats * period + 1
            if len(window) + 1 < needed:
                continue
            seq = list(window)[len(window) + 1 - needed :] + [fingerprint]
            periodic = all(seq[i] == seq[i + period] for i in range(needed - period))
            block = seq[needed - period :]
            if periodic and any(x != block[0] for x in block[1:]):
                return "cycle"
        return None

    def admit(self, run: str, fingerprint: str, tool: str) -> str | None:
        """None when the call may run (it is recorded), else the refusal reason (counted)."""
        with self._lock:
            state = self._run(run)
            reason = self._decide(state, fingerprint)
            state.window.append(fingerprint)  # refused attempts too, like the Rust twin
            counters = self._counters(tool)
            if reason is None:
                state.calls += 1
                counters[0] += 1
            else:
                counters[1][REASONS.index(reason)] += 1
            return reason

    def note_refusal(self, tool: str, reason: str) -> None:
        """Count a refusal decided outside the window (recursion, delegation cycle)."""
        if reason not in REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}; known: {list(REASONS)}")
        with self._lock:
            self._counters(tool)[1][REASONS.index(reason)] += 1

    def add_time(self, tool: str, seconds: float) -> None:
        with self._lock:
            self._counters(tool)[2] += seconds

    def run_calls(self, run: str) -> int:
        state = self._runs.get(run)
        return state.calls if state is not None else 0

    def forget_run(self, run: str) -> None:
        with self._lock:
            self._runs.pop(run, None)

    def reset(self) -> None:
        with self._lock:
            self._runs.clear()
            self._tools.clear()

    def counters(self) -> dict[str, dict[str, Any]]:
        """{tool: {"calls": n, "refusals": {reason: n}, "seconds": s}} in first-seen order."""
        with self._lock:
            return {
                tool: {"calls": c[0], "refusals": dict(zip(REASONS, c[1])), "seconds": c[2]}
                for tool, c in self._tools.items()
            }
