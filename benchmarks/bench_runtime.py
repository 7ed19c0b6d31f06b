"""RUNTIME benchmarks: CrewAI's own engine (Flow runs, event bus, file store, memory saves).

* ``runtime``: CPU seconds per kickoff (``time.process_time``, all threads) and
  context switches per kickoff (``getrusage``, all threads) for a 1-agent/1-task
  crew and the demo crew (3 agents, 4 tasks with 2 async, tools, memory), with a
  0 ms scripted LLM: ``stock``, ``no-runtime`` (every other component patched)
  and ``runtime`` (everything patched). Crews are rebuilt per variant, so each
  sees its own memory backend.
* ``memory-fanout``: ``kickoff_for_each`` over 20 inputs of a 2-task crew with
  memory, 100 ms per LLM call, TASKS fan-out at concurrency 16: ``no-runtime``
  (CrewAI's one save worker, every recall waits for every run's saves),
  ``runtime``, and ``ideal`` = inputs / 16 x one kickoff; ``stock`` (sequential)
  only without ``--quick``.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import main, row

CONCURRENCY = 16
LATENCY = 0.1
FANOUT_INPUTS = 20
VARIANTS = ("stock", "no-runtime", "runtime")


def _offline() -> None:
    from crewai_rust.testing import configure_offline

    configure_offline(tempfile.mkdtemp(prefix="bench_runtime_"))


def _apply(variant: str) -> None:
    import crewai_rust
    from crewai_rust._registry import COMPONENTS

    crewai_rust.unpatch()
    if variant == "no-runtime":
        crewai_rust.patch([c for c in COMPONENTS if c != "RUNTIME"], tasks={"max_concurrency": CONCURRENCY})
    elif variant == "runtime":
        crewai_rust.patch(tasks={"max_concurrency": CONCURRENCY})


def _switches() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def _simple_crew() -> Any:
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM

    agent = Agent(role="Solo", goal="Answer", backstory="Terse.", llm=ScriptedLLM())
    task = Task(description="Say one line about the topic '{topic}'.", expected_output="one line", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def _demo_crew() -> Any:
    from crewai_rust._demo.scenario import build_main_crew, respond
    from crewai_rust.testing import ScriptedLLM

    return build_main_crew(ScriptedLLM(respond))


def _drain(crew: Any) -> None:
    memory = getattr(crew, "_memory", None)
    if memory is not None:
        memory.drain_writes()


def _cpu_rows(case: str, build: Callable[[], Any], kickoffs: int) -> list[dict[str, Any]]:
    rows = []
    outputs: dict[str, list[str]] = {}
    for variant in VARIANTS:
        _apply(variant)
        crew = build()
        for _ in range(2):  # warm-up: imports, first-use caches, the memory store's first open
            crew.kickoff(inputs={"topic": "warm-up"})
            _drain(crew)
        cpu, switches = [], []
        for i in range(kickoffs):
            start_cpu, start_sw = time.process_time(), _switches()
            out = crew.kickoff(inputs={"topic": "honey bees"})
            _drain(crew)  # background saves are part of a kickoff's cost
            cpu.append(time.process_time() - start_cpu)
            switches.append(_switches() - start_sw)
            if i == 0:
                outputs[variant] = [t.raw for t in out.tasks_output]
        rows.append(row("runtime", case, variant, cpu, unit="cpu", context_switches=statistics.median(switches)))
    _apply("stock")
    assert outputs["runtime"] == outputs["stock"], "patched outputs differ from stock"
    return rows


def _fanout_crew() -> Any:
    from crewai_rust._demo.scenario import build_fanout_crew, respond
    from crewai_rust.testing import ScriptedLLM

    return build_fanout_crew(ScriptedLLM(respond, latency=LATENCY))


def _fanout_samples(variant: str, quick: bool) -> int:
    """Runs per variant: stock (sequential, ~50 s) once, no-runtime (~6 s) 2-3 times, runtime 3-5 times."""
    if variant == "stock":
        return 1
    if variant == "runtime":
        return 3 if quick else 5
    return 2 if quick else 3


def _fanout_rows(quick: bool) -> list[dict[str, Any]]:
    inputs = [{"topic": f"topic {i}"} for i in range(FANOUT_INPUTS)]
    case = f"kickoff_for_each {FANOUT_INPUTS} x {int(LATENCY * 1000)}ms, memory, c={CONCURRENCY}"
    rows = []
    _apply("runtime")
    crew = _fanout_crew()
    crew.kickoff(inputs={"topic": "warm-up"})
    one = []
    for _ in range(3):
        start = time.perf_counter()
        crew.kickoff(inputs={"topic": "one run"})
        one.append(time.perf_counter() - start)
    _drain(crew)
    ideal = FANOUT_INPUTS / CONCURRENCY * statistics.median(one)
    rows.append(row("memory-fanout", case, "ideal", [ideal]))
    variants = ("no-runtime", "runtime") if quick else ("stock", "no-runtime", "runtime")
    for variant in variants:
        _apply(variant)
        crew = _fanout_crew()
        crew.kickoff(inputs={"topic": "warm-up"})
        _drain(crew)
        samples = []
        for _ in range(_fanout_samples(variant, quick)):
            start = time.perf_counter()
            crew.kickoff_for_each(inputs)
            _drain(crew)
            samples.append(time.perf_counter() - start)
        r = row("memory-fanout", case, variant, samples)
        r["of_ideal"] = round(ideal / r["median_s"], 3)
        rows.append(r)
    _apply("stock")
    return rows


_last_rows: list[dict[str, Any]] = []


def run(quick: bool) -> list[dict[str, Any]]:
    _offline()
    kickoffs = 5 if quick else 15
    rows = _cpu_rows("simple crew, CPU per kickoff", _simple_crew, kickoffs * 2)
    rows += _cpu_rows("demo crew, CPU per kickoff", _demo_crew, kickoffs)
    rows += _fanout_rows(quick)
    _last_rows[:] = rows
    return rows


def _print_extra(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if "context_switches" in r:
            print(f"{r['case']:<34} {r['impl']:<11} {r['median_s'] * 1e3:8.2f} ms CPU, "
                  f"{r['context_switches']:7.0f} context switches per kickoff")
        if "of_ideal" in r:
            print(f"{r['case']:<34} {r['impl']:<11} {r['median_s']:.2f} s = {1 / r['of_ideal']:.2f}x the ideal")


if __name__ == "__main__":
    main(run)
    _print_extra(_last_rows)
