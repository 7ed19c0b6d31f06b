"""The patched ``Crew.kickoff_for_each`` on worker processes or Ray actors (``patch(tasks={"backend": ...})``).

The crew the user calls it on cannot travel to a worker (a ``Crew`` does not
pickle), so workers build theirs from the configured ``crew_factory``, which
must build the same crew. The caller's crew still ends as stock leaves it:
``usage_metrics`` summed as stock's sequential run reports it, its LLMs'
lifetime token counts advanced by what the runs used, its task-output log reset.
Streaming crews keep the stock path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._crew_fanout import FanoutSettings, finish_for_each, wrapping
from ._kickoff_many import merge_positional, positional_baseline, run_on_processes


def make_process_kickoff_for_each(
    original: Callable[..., Any], settings: FanoutSettings, crew_factory: str, workers: int | None,
    backend: str = "processes", address: str | None = None,
) -> Callable[..., Any]:
    """``kickoff_for_each`` that runs each input on the shared process pool (or Ray actors)."""

    def kickoff_for_each(self: Any, inputs: list[dict[str, Any]], input_files: Any = None) -> list[Any]:
        if self.stream:
            return original(self, inputs, input_files)
        inputs = list(inputs)
        before = positional_baseline(self)
        results, usage = run_on_processes(
            crew_factory, inputs, input_files=input_files, workers=workers,
            max_concurrency=settings.executor.max_concurrency, timeout=settings.timeout,
            return_exceptions=settings.return_exceptions, backend=backend, address=address,
        )
        merge_positional(self, usage)
        return finish_for_each(self, results, usage, before, settings)

    return wrapping(original, kickoff_for_each)
