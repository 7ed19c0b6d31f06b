"""``patch(tasks={...})``: concurrent ``kickoff_for_each``, bounded async kickoffs and async tasks.

Options (``patch(tasks={...})``), each with its environment fallback:

* ``max_concurrency`` (``CREWAI_RUST_MAX_CONCURRENCY``, default 16): kickoffs
  and async task bodies running at once;
* ``timeout`` (``CREWAI_RUST_TASKS_TIMEOUT``, seconds, default none): per-input
  limit of ``kickoff_for_each``; an overrunning kickoff is reported as
  ``TimeoutError`` and ``kickoff_for_each`` still waits for it to return;
* ``return_exceptions`` (default False): ``kickoff_for_each`` puts a failed
  input's exception in its slot (and logs it) instead of raising the first;
* ``usage_metrics``: ``"stock"`` (default, the figure stock reports) or
  ``"per_run"`` (the plain sum of what each run used);
* ``execute_async`` (default True): route ``Task.execute_async`` through the
  shared executor; ``serialize_agent_tasks`` (default True): one task at a
  time per agent (fixes crewAIInc/crewAI #7332);
* ``use_rust``: None (default: compiled twin when built), True or False;
* ``backend`` (``CREWAI_RUST_TASKS_BACKEND``, default ``"threads"``) with
  ``crew_factory`` (``CREWAI_RUST_TASKS_CREW_FACTORY``, ``"pkg.crew:ResearchCrew"``)
  and ``workers`` (``CREWAI_RUST_TASKS_WORKERS``): ``"processes"`` runs
  ``kickoff_for_each`` on worker processes that build the crew from the factory
  (see :mod:`._process_fanout`); ``"ray"`` runs it on Ray actors (``ray_address``,
  ``CREWAI_RUST_TASKS_RAY_ADDRESS``: a cluster, else a local Ray); without a
  factory it stays on threads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._env import check_options, env_flag, env_float, env_str
from .._patcher import Patcher
from ._config import check_timeout, resolve_max_concurrency
from ._crew_fanout import (
    FanoutSettings,
    make_akickoff_for_each,
    make_kickoff_for_each,
    make_kickoff_for_each_async,
)
from ._executor import RustTaskExecutor
from ._task_async import make_execute_async
from ._usage import USAGE_MODES

TIMEOUT_ENV = "CREWAI_RUST_TASKS_TIMEOUT"


@dataclasses.dataclass(frozen=True)
class TasksSettings:
    """What ``patch(tasks=...)`` configures, validated, with the environment fallbacks applied."""

    max_concurrency: int
    timeout: float | None = None
    return_exceptions: bool = False
    usage_metrics: str = "stock"
    execute_async: bool = True
    serialize_agent_tasks: bool = True
    use_rust: bool | None = None
    backend: str = "threads"
    crew_factory: str | None = None
    workers: int | None = None
    ray_address: str | None = None

    @property
    def off_process(self) -> bool:
        """A process or Ray backend was chosen (``kickoff_for_each`` uses it only with a factory)."""
        return self.backend in ("processes", "ray")


_KNOWN = tuple(field.name for field in dataclasses.fields(TasksSettings))

_active: dict[str, Any] = {}


def _timeout_option(options: dict[str, Any]) -> float | None:
    if "timeout" in options:
        return check_timeout(options["timeout"])
    raw = env_float(TIMEOUT_ENV, None, minimum=float("-inf"), finite=False)
    if raw is None:
        return None
    try:
        return check_timeout(raw)
    except ValueError as exc:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: {exc}") from None


def settings_from(options: dict[str, Any]) -> TasksSettings:
    """Validated options, with environment fallbacks; unknown keys are an error."""
    check_options("tasks", options, _KNOWN)
    usage = options.get("usage_metrics", "stock")
    if usage not in USAGE_MODES:
        raise ValueError(f"usage_metrics must be one of {USAGE_MODES}, got {usage!r}")
    return TasksSettings(
        max_concurrency=resolve_max_concurrency(options.get("max_concurrency")),
        timeout=_timeout_option(options),
        return_exceptions=bool(options.get("return_exceptions", False)),
        usage_metrics=usage,
        execute_async=bool(options.get("execute_async", env_flag("CREWAI_RUST_TASKS_EXECUTE_ASYNC", True))),
        serialize_agent_tasks=bool(options.get("serialize_agent_tasks", True)),
        use_rust=options.get("use_rust"),
        **process_settings(options),
    )


def activate(patcher: Patcher, options: dict[str, Any]) -> str:
    config = settings_from(options)
    executor = RustTaskExecutor(config.max_concurrency, use_rust=config.use_rust)
    task_executor = RustTaskExecutor(config.max_concurrency, use_rust=config.use_rust)
    settings = FanoutSettings(executor, config.timeout, config.return_exceptions, config.usage_metrics)
    crew_cls = patcher.resolve("crewai.crew:Crew", "crewai.crew:Crew")
    if crew_cls is not None:
        original = crew_cls.__dict__.get("kickoff_for_each")
        if original is None:
            patcher.report_missing("crewai.crew:Crew.kickoff_for_each", "Crew has no kickoff_for_each")
        else:
            patched = make_kickoff_for_each(original, settings)
            if config.off_process and config.crew_factory is not None:
                from ._process_fanout import make_process_kickoff_for_each

                patched = make_process_kickoff_for_each(original, settings, config.crew_factory, config.workers,
                                                        config.backend, config.ray_address)
            patcher.replace("crewai.crew:Crew", "kickoff_for_each", patched)
        if patcher.resolve("crewai.crews.utils:run_for_each_async") is not None:
            for name, factory in (("kickoff_for_each_async", make_kickoff_for_each_async), ("akickoff_for_each", make_akickoff_for_each)):
                if name in crew_cls.__dict__:
                    patcher.replace("crewai.crew:Crew", name, factory(settings))
                else:
                    patcher.report_missing(f"crewai.crew:Crew.{name}", f"Crew has no {name}")
    if config.execute_async:
        task_cls = patcher.resolve("crewai.task:Task", "crewai.task:Task.execute_async")
        if task_cls is not None:
            if "execute_async" in task_cls.__dict__ and hasattr(task_cls, "_execute_task_async"):
                patcher.replace("crewai.task:Task", "execute_async", make_execute_async(task_executor, config.serialize_agent_tasks))
            else:
                patcher.report_missing("crewai.task:Task.execute_async", "Task has no execute_async/_execute_task_async")
    _active.update(crew=executor, task=task_executor, settings=settings, config=config)
    return executor.implementation


def process_settings(options: dict[str, Any]) -> dict[str, Any]:
    """``backend``, ``crew_factory``, ``workers`` and ``ray_address``, with their environment fallbacks, checked."""
    from ._backends import CREW_FACTORY_ENV, resolve_backend, resolve_ray_address
    from ._factory import check_factory_path

    backend = resolve_backend(options.get("backend"))
    address = resolve_ray_address(options.get("ray_address"))
    factory = options.get("crew_factory") or env_str(CREW_FACTORY_ENV)
    if factory is not None:
        check_factory_path(factory)
        if backend == "ray":  # without a factory kickoff_for_each stays on threads and needs no Ray
            from ._ray import check_ray_available

            check_ray_available()
    workers = options.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    return {"backend": backend, "crew_factory": factory, "workers": workers, "ray_address": address}


def deactivate() -> None:
    """Forget the executors (their idle threads exit on their own) and stop process pools built for this patch."""
    _active.clear()
    import sys

    backends = sys.modules.get("crewai_rust.tasks._backends")
    if backends is not None:
        backends.shutdown_pools()


def active_executors() -> dict[str, Any]:
    """The executors the patch installed (``crew``, ``task``), for tests and status."""
    return dict(_active)
