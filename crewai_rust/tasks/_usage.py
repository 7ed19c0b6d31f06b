"""Token usage of crew copies that run at the same time, kept apart and summed like stock.

``Crew.copy()`` shallow-copies each agent's LLM, so every copy shares one
``_token_usage`` dict with the original. Stock ``kickoff_for_each`` runs the
copies one after another and sums each copy's ``usage_metrics``, which is the
*cumulative* count of that shared dict after its run (so stock counts run 1
n times, run 2 n-1 times, ...). Run concurrently, that cumulative figure would
depend on timing. So each copy's LLMs get a private counter for the run; the
private counts are added back to the shared dict afterwards (the LLMs' lifetime
totals end where stock's do); and the total is computed either exactly as a
sequential stock run would have reported it (``"stock"``, the default) or as
the plain sum of what each run used (``"per_run"``).

Only a small :class:`RunUsage` is kept per finished run, never the crew copy,
so a fan-out over many inputs holds just the copies that are running.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

_merge_lock = threading.Lock()

USAGE_MODES = ("stock", "per_run")
_UNIT = "total_tokens"


def _llms(crew: Any) -> list[Any]:
    from crewai.llms.base_llm import BaseLLM

    found: dict[int, Any] = {}
    candidates = [getattr(agent, "llm", None) for agent in crew.agents]
    if crew.manager_agent is not None:
        candidates.append(getattr(crew.manager_agent, "llm", None))
    candidates.append(getattr(crew, "manager_llm", None))
    for llm in candidates:
        if isinstance(llm, BaseLLM) and isinstance(getattr(llm, "_token_usage", None), dict):
            found.setdefault(id(llm), llm)
    return list(found.values())


def baseline(crew: Any) -> dict[int, dict[str, int]]:
    """The original crew's shared counters before any run, by identity of the dict."""
    return {id(llm._token_usage): dict(llm._token_usage) for llm in _llms(crew)}


@dataclass
class RunUsage:
    """What one finished run contributes: its own usage and how stock would count it."""

    own: Any  # UsageMetrics: this run only
    fixed: Any  # UsageMetrics: the part of stock's figure not read from shared LLM counters
    terms: list[tuple[int, int, dict[str, int]]] = field(default_factory=list)  # (shared id, times counted, private counts)


class UsageLedger:
    """Private counters for one crew copy while it runs."""

    def __init__(self, crew: Any) -> None:
        self.pairs: list[tuple[Any, dict[str, int]]] = []
        for llm in _llms(crew):
            shared = llm._token_usage
            llm._token_usage = dict.fromkeys(shared, 0)
            self.pairs.append((llm, shared))

    def merge_back(self) -> None:
        """Add this run's private counts to the shared dicts (the LLMs' lifetime totals)."""
        with _merge_lock:
            for llm, shared in self.pairs:
                for key, value in llm._token_usage.items():
                    shared[key] = shared.get(key, 0) + value

    def record(self, crew: Any) -> RunUsage | None:
        """After a finished run: its usage, and how stock's ``calculate_usage_metrics`` counts each LLM."""
        if not crew.usage_metrics:
            return None
        own, private = crew.usage_metrics, [llm._token_usage for llm, _ in self.pairs]
        try:
            for llm, _ in self.pairs:
                llm._token_usage = dict.fromkeys(llm._token_usage, 0)
            fixed = crew.calculate_usage_metrics()
            terms = []
            for index, (llm, shared) in enumerate(self.pairs):
                llm._token_usage = {**llm._token_usage, _UNIT: 1}
                times = crew.calculate_usage_metrics().total_tokens - fixed.total_tokens
                llm._token_usage = {**llm._token_usage, _UNIT: 0}
                terms.append((id(shared), times, dict(private[index])))
        finally:
            for (llm, _), counters in zip(self.pairs, private):
                llm._token_usage = counters
            crew.usage_metrics = own
        return RunUsage(own=own, fixed=fixed, terms=terms)


def total_usage(runs: list[RunUsage | None], before: dict[int, dict[str, int]], mode: str) -> Any:
    """The ``usage_metrics`` stock would report after these runs in input order (or the per-run sum)."""
    from crewai.types.usage_metrics import UsageMetrics

    total = UsageMetrics()
    simulated = {key: dict(values) for key, values in before.items()}
    for run in runs:
        if run is None:
            continue
        if mode == "per_run":
            total.add_usage_metrics(run.own)
            continue
        for shared_id, _, private in run.terms:
            counters = simulated.setdefault(shared_id, {})
            for key, value in private.items():
                counters[key] = counters.get(key, 0) + value
        total.add_usage_metrics(run.fixed)
        for shared_id, times, _ in run.terms:
            for _ in range(times):
                total.add_usage_metrics(UsageMetrics(**simulated[shared_id]))
    return total
