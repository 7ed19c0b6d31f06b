"""Token usage of crew copies that run at the same time, kept apart and summed like stock.

``Crew.copy()`` shallow-copies each agent's LLM, so every copy shares one
``_token_usage`` dict with the original. Stock ``kickoff_for_each`` runs the
copies one after another and sums each copy's ``usage_metrics``, which is the
*cumulative* count of that shared dict after its run (so stock counts run 1
n times, run 2 n-1 times, ...). Run concurrently, that cumulative figure would
depend on timing. So each copy's LLMs get a private counter for the run, the
private counts are added back to the shared dict afterwards (the LLM's lifetime
totals end where stock's do), and the total is computed either exactly as a
sequential stock run would have reported it (``"stock"``, the default) or as
the plain sum of what each run used (``"per_run"``).
"""

from __future__ import annotations

import threading
from typing import Any

_merge_lock = threading.Lock()

USAGE_MODES = ("stock", "per_run")


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


class UsageLedger:
    """The private counters of one crew copy and the shared dicts they came from."""

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


def baseline(ledgers: list[UsageLedger]) -> dict[int, dict[str, int]]:
    """The shared counters before any run, by identity."""
    return {id(shared): dict(shared) for ledger in ledgers for _, shared in ledger.pairs}


def total_usage(crews: list[Any], ledgers: list[UsageLedger], before: dict[int, dict[str, int]], mode: str) -> Any:
    """The ``usage_metrics`` stock would report after running ``crews`` in order (or the per-run sum)."""
    from crewai.types.usage_metrics import UsageMetrics

    total = UsageMetrics()
    if mode == "per_run":
        for crew in crews:
            if crew.usage_metrics:
                total.add_usage_metrics(crew.usage_metrics)
        return total
    simulated = {key: dict(values) for key, values in before.items()}
    for crew, ledger in zip(crews, ledgers):
        for llm, shared in ledger.pairs:
            counters = simulated[id(shared)]
            for key, value in llm._token_usage.items():
                counters[key] = counters.get(key, 0) + value
        if not crew.usage_metrics:
            continue
        # Ask stock's own calculate_usage_metrics, with each LLM showing the
        # shared dict as it would have stood after this run in a sequential loop.
        own_usage, own_metrics = [llm._token_usage for llm, _ in ledger.pairs], crew.usage_metrics
        try:
            for llm, shared in ledger.pairs:
                llm._token_usage = simulated[id(shared)]
            total.add_usage_metrics(crew.calculate_usage_metrics())
        finally:
            for (llm, _), counters in zip(ledger.pairs, own_usage):
                llm._token_usage = counters
            crew.usage_metrics = own_metrics
    return total
