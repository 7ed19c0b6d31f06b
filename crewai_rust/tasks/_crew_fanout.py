"""Concurrent ``Crew.kickoff_for_each`` and bounded ``kickoff_for_each_async``.

Each input runs on its own ``crew.copy()`` (as stock does) inside a job of the
shared executor, so at most ``max_concurrency`` kickoffs run at once; outputs
come back in input order and ``usage_metrics`` is summed as stock sums it (see
:mod:`._usage`). Every run executes in its own copy of the caller's context, so
CrewAI's context-bound state (event scopes, execution ids, hook scopes) and
other components' context variables stay per run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ._usage import RunUsage, UsageLedger, baseline, total_usage

logger = logging.getLogger("crewai_rust")


class FanoutSettings:
    """What ``patch(tasks={...})`` configured for the crew-level fan-out."""

    def __init__(self, executor: Any, timeout: float | None, return_exceptions: bool, usage_mode: str) -> None:
        self.executor = executor
        self.timeout = timeout
        self.return_exceptions = return_exceptions
        self.usage_mode = usage_mode


def _log_failures(results: list[Any]) -> None:
    for index, value in enumerate(results):
        if isinstance(value, BaseException):
            logger.warning("crewai_rust kickoff_for_each: input %d failed: %s: %s", index, type(value).__name__, value)


def make_kickoff_for_each(original: Callable[..., Any], settings: FanoutSettings) -> Callable[..., Any]:
    """The patched ``Crew.kickoff_for_each``; streaming crews keep the stock path."""

    def kickoff_for_each(self: Any, inputs: list[dict[str, Any]], input_files: Any = None) -> list[Any]:
        if self.stream:
            return original(self, inputs, input_files)
        inputs = list(inputs)
        before = baseline(self)
        usage: list[RunUsage | None] = [None] * len(inputs)

        def run(index: int) -> Any:
            # The copy is made in the job, so only running copies are alive at once.
            crew = self.copy()
            ledger = UsageLedger(crew)
            try:
                output = crew.kickoff(inputs=inputs[index], input_files=input_files)
            finally:
                ledger.merge_back()
            usage[index] = ledger.record(crew)
            return output

        results = settings.executor.map(
            run, range(len(inputs)), timeout=settings.timeout, return_exceptions=settings.return_exceptions
        )
        if settings.return_exceptions:
            usage = [u if not isinstance(r, BaseException) else None for u, r in zip(usage, results)]
        return finish_for_each(self, results, usage, before, settings)

    return wrapping(original, kickoff_for_each)


def finish_for_each(crew: Any, results: list[Any], usage: list[Any], before: Any, settings: FanoutSettings) -> list[Any]:
    """What stock's sequential loop leaves behind, whichever backend ran the inputs: failures logged,
    ``usage_metrics`` summed as stock sums it, the task-output log reset."""
    if settings.return_exceptions:
        _log_failures(results)
    crew.usage_metrics = total_usage(usage, before, settings.usage_mode)
    crew._task_output_handler.reset()
    return results


def wrapping(original: Callable[..., Any], patched: Callable[..., Any]) -> Callable[..., Any]:
    """``patched`` as it stands in for ``original``: its docstring, and ``__wrapped__`` for introspection."""
    patched.__wrapped__ = original  # type: ignore[attr-defined]
    patched.__doc__ = original.__doc__
    return patched


def _bounded(kickoff_fn: Callable[[Any, dict[str, Any]], Any], limit: int) -> Callable[[Any, dict[str, Any]], Any]:
    slots = asyncio.Semaphore(limit)

    async def bounded_kickoff(crew: Any, input_data: dict[str, Any]) -> Any:
        async with slots:
            return await kickoff_fn(crew, input_data)

    return bounded_kickoff


def make_kickoff_for_each_async(settings: FanoutSettings) -> Callable[..., Any]:
    """The patched ``Crew.kickoff_for_each_async``: at most ``max_concurrency`` kickoffs at once.

    Each input goes through its copy's own ``kickoff_async``, exactly as stock, so a
    subclass override, a wrapper or a mock of it (and whatever stock's ``kickoff_async``
    does itself, such as checkpoint handling) is honoured; the threads are the running
    loop's default executor, as stock. What the patch adds is the bound: stock starts
    every input at once.
    """
    from crewai.crews.utils import run_for_each_async

    async def kickoff_for_each_async(self: Any, inputs: list[dict[str, Any]], input_files: Any = None) -> Any:
        async def kickoff_fn(crew: Any, input_data: dict[str, Any]) -> Any:
            return await crew.kickoff_async(inputs=input_data, input_files=input_files)

        return await run_for_each_async(self, inputs, _bounded(kickoff_fn, settings.executor.max_concurrency))

    return kickoff_for_each_async


def make_akickoff_for_each(settings: FanoutSettings) -> Callable[..., Any]:
    """The patched ``Crew.akickoff_for_each``: native async kickoffs, at most ``max_concurrency`` at once."""
    from crewai.crews.utils import run_for_each_async

    async def akickoff_for_each(self: Any, inputs: list[dict[str, Any]], input_files: Any = None) -> Any:
        async def kickoff_fn(crew: Any, input_data: dict[str, Any]) -> Any:
            return await crew.akickoff(inputs=input_data, input_files=input_files)

        return await run_for_each_async(self, inputs, _bounded(kickoff_fn, settings.executor.max_concurrency))

    return akickoff_for_each
