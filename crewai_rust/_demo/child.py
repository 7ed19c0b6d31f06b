"""One demo run in its own process: ``python -m crewai_rust._demo.child MODE OUT.json``.

MODE is ``stock`` (CrewAI as installed) or ``patched`` (``crewai_rust.patch()``
first). Progress lines go to stdout as ``PROGRESS <text>``; results go to OUT.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from crewai_rust._env import env_float, env_int
from crewai_rust.testing import configure_offline

#: the demo runs every component with its defaults
PATCH_OPTIONS: dict[str, dict[str, Any]] = {}


def _guard_report() -> list[str]:
    """What the TOOLS loop guard refused in this process, one line per refusal."""
    try:
        from crewai_rust.tools import active_executor
    except ImportError:
        return []
    executor = active_executor()
    if executor is None:
        return []
    return [f"{r.agent} / {r.tool}: {r.reason}" for r in executor.refusals()]


def progress(text: str) -> None:
    print(f"PROGRESS {text}", flush=True)


def run(mode: str, out_path: str) -> None:
    configure_offline(os.environ.get("CREWAI_STORAGE_DIR"))
    latency = env_float("CREWAI_RUST_DEMO_LATENCY", 0.02)
    fanout = env_int("CREWAI_RUST_DEMO_INPUTS", 6, minimum=0)
    progress("importing CrewAI")
    import crewai  # noqa: F401

    import crewai_rust

    from . import scenario
    from .timing import PhaseTimer, covered_seconds

    status: dict[str, Any] | None = None
    if mode == "patched":
        status = crewai_rust.patch(**PATCH_OPTIONS)
    timer = PhaseTimer()
    timer.install()

    progress("building crews")
    llm = scenario.TimedScriptedLLM(scenario.respond, latency=latency)
    windows: dict[str, tuple[float, float]] = {}

    def window(name: str, fn: Any) -> Any:
        start = time.perf_counter()
        try:
            return timer.measure(name, fn)
        finally:
            windows[name] = (start, time.perf_counter())

    main_crew = scenario.build_main_crew(llm)
    progress("kickoff: 3 agents, 4 tasks (2 async), memory on")
    main_out = window("whole kickoff", lambda: main_crew.kickoff(inputs={"topic": scenario.TOPICS[0]}))
    fan_crew = scenario.build_fanout_crew(llm)
    inputs = [{"topic": scenario.TOPICS[1 + i % (len(scenario.TOPICS) - 1)] + f" #{i}"} for i in range(fanout)]
    progress(f"kickoff_for_each over {fanout} inputs")
    fan_outs = window("task fan-out", lambda: fan_crew.kickoff_for_each(inputs=inputs))
    progress("waiting for background memory saves")
    for crew in (main_crew, fan_crew):
        memory = getattr(crew, "_memory", None)
        if memory is not None:
            memory.drain_writes()
    memory = getattr(main_crew, "_memory", None)
    storage = getattr(memory, "_storage", None)
    result = {
        "mode": mode,
        "latency": latency,
        "inputs": fanout,
        "outputs": {
            "main": [t.raw for t in main_out.tasks_output],
            "fanout": [[t.raw for t in out.tasks_output] for out in fan_outs],
        },
        "phases": timer.report(),
        "floors": {
            name: {"wall": end - start, "llm_floor": covered_seconds(scenario.LLM_SPANS, start, end)}
            for name, (start, end) in windows.items()
        },
        "timer_missing": timer.missing,
        "tool_executions": dict(scenario.EXECUTIONS),
        "llm_calls": llm.calls,
        "memory_storage": type(storage).__module__ + "." + type(storage).__name__ if storage is not None else None,
        "status": status,
        "guard": _guard_report() if mode == "patched" else [],
        "build_info": crewai_rust.build_info(),
        "finished_at": time.time(),
    }
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2, default=str)
    progress("done")


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
