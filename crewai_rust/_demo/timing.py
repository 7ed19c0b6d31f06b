"""Per-phase timers wrapped around CrewAI's own methods, the same in both runs.

The wrappers sit at CrewAI's layer (``Memory.recall``, the task-output handler,
the agent's tool dispatch), so stock and patched runs are timed at the same
place whatever crewai_rust swaps in underneath. Time is exclusive per thread:
when ``recall`` waits inside ``drain_writes`` that wait is not counted as recall.
"""

from __future__ import annotations

import functools
import importlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

#: phase -> list of "module:Class.method" wrapped to measure it
PHASE_TARGETS: dict[str, list[str]] = {
    "memory recall": ["crewai.memory.unified_memory:Memory.recall"],
    "memory save": ["crewai.memory.unified_memory:Memory._encode_batch"],
    "waiting for saves": ["crewai.memory.unified_memory:Memory.drain_writes"],
    "tool dispatch": ["crewai.agents.agent_executor:AgentExecutor._execute_single_native_tool_call"],
    "flow engine": [
        "crewai.flow.runtime:Flow._create_initial_state",
        "crewai.flow.runtime:Flow._find_triggered_methods",
    ],
    "task-output storage": [
        "crewai.utilities.task_output_storage_handler:TaskOutputStorageHandler.add",
        "crewai.utilities.task_output_storage_handler:TaskOutputStorageHandler.update",
    ],
}


class PhaseTimer:
    """Accumulates exclusive seconds and call counts per phase across threads."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.missing: list[str] = []
        self.spans: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def _wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        timer = self

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = getattr(timer._local, "stack", None)
            if stack is None:
                stack = timer._local.stack = []
            stack.append(0.0)  # time spent in nested phases
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                nested = stack.pop()
                if stack:
                    stack[-1] += elapsed
                with timer._lock:
                    timer.seconds[phase] += elapsed - nested
                    timer.calls[phase] += 1
                    timer.spans[phase].append((start, start + elapsed))

        return timed

    def install(self) -> None:
        """Wrap every target; a target absent from the installed CrewAI is listed, not hidden."""
        for phase, targets in PHASE_TARGETS.items():
            for target in targets:
                module_name, _, path = target.partition(":")
                owner_name, _, attr = path.rpartition(".")
                try:
                    owner = getattr(importlib.import_module(module_name), owner_name)
                    original = getattr(owner, attr)
                except (ImportError, AttributeError):
                    self.missing.append(target)
                    continue
                setattr(owner, attr, self._wrap(phase, original))

    def measure(self, phase: str, fn: Callable[[], Any]) -> Any:
        """Time one call of ``fn`` as ``phase``."""
        return self._wrap(phase, fn)()

    def report(self) -> dict[str, dict[str, float]]:
        """Per phase: exclusive seconds summed over threads, calls, and the wall-clock seconds its calls covered."""
        return {
            p: {"seconds": s, "calls": self.calls[p], "wall": covered_seconds(self.spans[p], float("-inf"), float("inf"))}
            for p, s in self.seconds.items()
        }


def covered_seconds(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of ``[start, end]`` during which at least one span was in flight.

    With the scripted LLM's agent calls as spans this is the floor of a
    window: the time it would still take if the framework cost nothing and
    the calls kept their order; the rest of the window is framework time.
    """
    clipped = sorted((max(a, start), min(b, end)) for a, b in spans if b > start and a < end)
    total = 0.0
    cur_a = cur_b = None
    for a, b in clipped:
        if cur_b is None or a > cur_b:
            if cur_b is not None and cur_a is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None and cur_a is not None:
        total += cur_b - cur_a
    return total
