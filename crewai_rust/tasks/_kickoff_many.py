"""``kickoff_many``: a crew factory over many inputs, on threads, worker processes or Ray actors.

``kickoff_many("pkg.crew:ResearchCrew", inputs)`` is ``ResearchCrew().crew().kickoff_for_each(inputs)``
made concurrent: outputs in input order, ``usage_metrics`` (on the returned list)
exactly as stock's sequential ``kickoff_for_each`` reports it (or the plain
per-run sum with ``usage_metrics="per_run"``). With ``backend="processes"`` each
worker process builds the crew once from the factory and runs each input on a
``copy()`` with private token counters; the counts travel back with positional
LLM keys (the factory builds the same crew everywhere) and are summed here.
``backend="ray"`` does the same on long-lived threaded Ray actors (see :mod:`._ray`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ._backends import REMOTE_BACKENDS, resolve_backend, resolve_ray_address, resolve_workers, shared_pool
from ._config import check_timeout, resolve_max_concurrency
from ._factory import build_crew, check_factory_path
from ._usage import USAGE_MODES, RunUsage, UsageLedger, total_usage

#: ``on_result(index, output_or_exception, usage_metrics_or_None, seconds_or_None)``
OnResult = Callable[[int, Any, Any, "float | None"], Any]


class KickoffResults(list):  # type: ignore[type-arg]
    """The outputs in input order (exceptions in failed slots with ``return_exceptions``), plus ``usage_metrics``."""

    usage_metrics: Any = None


def positional_baseline(crew: Any) -> dict[int, dict[str, int]]:
    """A crew's LLM counters by position (how worker results name them)."""
    from ._usage import _llms

    return {pos: dict(llm._token_usage) for pos, llm in enumerate(_llms(crew))}


def merge_positional(crew: Any, runs: list[RunUsage | None]) -> None:
    """Add the runs' private counts to ``crew``'s LLMs, as stock's shared counters would end."""
    from ._usage import _llms

    llms = _llms(crew)
    for run in runs:
        if run is None:
            continue
        for pos, _, private in run.terms:
            if pos < len(llms):
                counters = llms[pos]._token_usage
                for key, value in private.items():
                    counters[key] = counters.get(key, 0) + value


def run_on_processes(
    factory: str,
    inputs: list[dict[str, Any]],
    *,
    input_files: Any,
    workers: int | None,
    max_concurrency: int,
    timeout: float | None,
    return_exceptions: bool,
    on_result: OnResult | None = None,
    cancel: threading.Event | None = None,
    backend: str = "processes",
    address: str | None = None,
) -> tuple[list[Any], list[RunUsage | None]]:
    """Outputs (or exceptions) and per-run usage of each input, run on the shared process (or Ray) pool."""
    from ._procmap import process_map
    from ._procpool import check_not_bootstrapping, warn_listeners_once
    from ._worker import run_crew_input

    if backend == "ray":
        from ._ray import check_ray_available

        check_ray_available()
        address = resolve_ray_address(address)
    else:
        check_not_bootstrapping()
    warn_listeners_once()
    pool = shared_pool(resolve_workers(workers, max_concurrency), max_concurrency, backend, address)
    items = [(factory, dict(inp or {}), input_files) for inp in inputs]

    def settled(index: int, ok: bool, value: Any) -> None:
        if on_result is not None:
            if ok:
                on_result(index, value[0], value[1].own if value[1] is not None else None, value[2])
            else:
                on_result(index, value, None, None)

    raw = process_map(pool, run_crew_input, items, max_concurrency=max_concurrency, timeout=timeout,
                      return_exceptions=return_exceptions, on_settle=settled, cancel=cancel)
    outputs = [r if isinstance(r, BaseException) or r is None else r[0] for r in raw]
    usage = [None if isinstance(r, BaseException) or r is None else r[1] for r in raw]
    return outputs, usage


def run_on_threads(
    crew: Any,
    inputs: list[dict[str, Any]],
    *,
    input_files: Any,
    max_concurrency: int,
    timeout: float | None,
    return_exceptions: bool,
    on_result: OnResult | None = None,
) -> tuple[list[Any], list[RunUsage | None]]:
    """The same contract on the thread backend, with ``crew`` built in this process."""
    from ._executor import RustTaskExecutor

    usage: list[RunUsage | None] = [None] * len(inputs)

    def run(index: int) -> Any:
        started = time.perf_counter()
        copy = crew.copy()
        ledger = UsageLedger(copy)
        try:
            output = copy.kickoff(inputs=inputs[index], input_files=input_files)
        except BaseException as exc:
            if on_result is not None:
                on_result(index, exc, None, None)
            raise
        finally:
            ledger.merge_back()
        usage[index] = ledger.record(copy)
        seconds = time.perf_counter() - started
        if on_result is not None:
            late = timeout is not None and seconds >= timeout
            on_result(index, TimeoutError(f"item {index} did not finish within {timeout:g} s") if late else output,
                      None if late or usage[index] is None else usage[index].own, None if late else seconds)  # type: ignore[union-attr]
        return output

    results = RustTaskExecutor(max_concurrency).map(run, range(len(inputs)), timeout=timeout,
                                                     return_exceptions=return_exceptions)
    usage = [u if not isinstance(r, BaseException) else None for u, r in zip(usage, results)]
    return results, usage


def kickoff_many(
    crew_factory: str,
    inputs: list[dict[str, Any]],
    *,
    backend: str | None = None,
    workers: int | None = None,
    max_concurrency: int | None = None,
    timeout: float | None = None,
    return_exceptions: bool = False,
    input_files: Any = None,
    usage_metrics: str = "stock",
    on_result: OnResult | None = None,
    address: str | None = None,
) -> KickoffResults:
    """Kick off the crew built by ``crew_factory`` once per input; see the module docstring.

    ``backend``: ``"threads"``, ``"processes"`` or ``"ray"`` (default ``CREWAI_RUST_TASKS_BACKEND``,
    else threads). ``workers``: processes or Ray actors (default ``CREWAI_RUST_TASKS_WORKERS``, else
    the CPU count). ``address``: the Ray cluster (default ``CREWAI_RUST_TASKS_RAY_ADDRESS``,
    else the Ray already initialised in this process, else a new local one).
    ``on_result`` is called once per settled input, as it settles.
    """
    check_factory_path(crew_factory)
    if usage_metrics not in USAGE_MODES:
        raise ValueError(f"usage_metrics must be one of {USAGE_MODES}, got {usage_metrics!r}")
    backend = resolve_backend(backend)
    limit = resolve_max_concurrency(max_concurrency)
    timeout = check_timeout(timeout)
    inputs = list(inputs)
    if backend in REMOTE_BACKENDS:
        outputs, usage = run_on_processes(crew_factory, inputs, input_files=input_files, workers=workers,
                                          max_concurrency=limit, timeout=timeout,
                                          return_exceptions=return_exceptions, on_result=on_result,
                                          backend=backend, address=address)
        before: dict[int, dict[str, int]] = {}
    else:
        crew = build_crew(crew_factory)
        before = positional_baseline(crew)
        outputs, usage = run_on_threads(crew, inputs, input_files=input_files, max_concurrency=limit,
                                        timeout=timeout, return_exceptions=return_exceptions, on_result=on_result)
        usage = [_positional(run) for run in usage]
    results = KickoffResults(outputs)
    results.usage_metrics = total_usage(usage, before, usage_metrics)
    return results


def _positional(run: RunUsage | None) -> RunUsage | None:
    if run is None:
        return None
    return RunUsage(own=run.own, fixed=run.fixed, terms=[(pos, t, p) for pos, (_, t, p) in enumerate(run.terms)])
