"""Past the GIL: kickoff_for_each on threads against worker processes.

``crew`` rows: N kickoffs of a one-task crew whose ScriptedLLM waits L ms per
call (releasing the GIL like a network wait), at concurrency 16:

* ``stock``: stock ``kickoff_for_each`` (sequential);
* ``threads``: patched ``kickoff_for_each`` (TASKS and DATABASE, thread backend);
* ``proc-1w`` / ``proc-2w``: ``kickoff_many(..., backend="processes")`` on a warm
  pool of 1 or 2 worker processes (same patch in each worker);
* ``ideal``: N / 16 x the wall time of one kickoff;
* ``gil-1p`` / ``gil-2p``: N x the CPU time of one kickoff, over 1 and over
  min(2, CPUs) processes: the python parts of kickoffs in one process share
  one GIL, so one process cannot beat ``gil-1p`` and two cannot beat ``gil-2p``.

``pool`` rows: seconds until a 2-worker pool is ready, cold (first pool of the
process: starts the forkserver, which imports CrewAI) and warm (forkserver up).
Outputs of every backend are checked equal to stock's before timing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import main, measure, row, time_calls  # noqa: E402

CONCURRENCY = 16
LATENCIES = {"100ms": 0.1, "20ms": 0.02}


def _crew(latency: float) -> Any:
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM

    llm = ScriptedLLM(latency=latency)
    agent = Agent(role="Analyst", goal="Answer about {topic}", backstory="Terse.", llm=llm)
    task = Task(description="Summarise {topic}", expected_output="one line", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def crew_100ms() -> Any:
    """Factory the worker processes import (``bench_fanout:crew_100ms``)."""
    return _crew(0.1)


def crew_20ms() -> Any:
    return _crew(0.02)


def _patch() -> None:
    import crewai_rust

    crewai_rust.patch(["tasks", "database"], tasks={"max_concurrency": CONCURRENCY})


def _pool_rows() -> list[dict[str, Any]]:
    from crewai_rust.tasks._procpool import ProcessPool

    rows = []
    for label in ("cold", "warm"):
        pool = ProcessPool(2, CONCURRENCY // 2)
        started = time.perf_counter()
        pool.start()
        rows.append(row("pool", "2 workers ready", label, [time.perf_counter() - started]))
        pool.shutdown()
    return rows


def _median(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2]


def _crew_rows(quick: bool) -> list[dict[str, Any]]:
    import crewai_rust
    from crewai_rust.tasks import kickoff_many

    rows: list[dict[str, Any]] = []
    cores = min(2, os.cpu_count() or 1)
    sizes = [64] if quick else [64, 256]
    for name, latency in LATENCIES.items():
        # A crew kicked off directly keeps that kickoff's interpolated task texts, and stock's
        # kickoff_for_each copies them (its later outputs ignore the new inputs): probe on another crew.
        probe = _crew(latency)
        one = _median(time_calls(lambda: probe.kickoff(inputs={"topic": "warm-up"}), repeat=5))
        cpu = []
        for _ in range(5):
            start = time.process_time()
            probe.kickoff(inputs={"topic": "cpu"})
            cpu.append(time.process_time() - start)
        crew = _crew(latency)
        cpu_per_run = _median(cpu)
        for n in sizes:
            inputs = [{"topic": f"topic {i}"} for i in range(n)]
            case = f"{n} x {name}, c={CONCURRENCY}"
            repeat = 1 if n > 64 else 2
            expected = [o.raw for o in crew.kickoff_for_each(inputs)]
            rows.append(measure("crew", case, "stock", lambda: crew.kickoff_for_each(inputs), repeat=repeat, warmup=0))
            ideal = n / CONCURRENCY * one
            rows.append(row("crew", case, "ideal", [ideal]))
            rows.append(row("crew", case, "gil-1p", [n * cpu_per_run], cpu_per_run_s=cpu_per_run))
            rows.append(row("crew", case, "gil-2p", [n * cpu_per_run / cores]))
            _patch()
            try:
                assert [o.raw for o in crew.kickoff_for_each(inputs)] == expected, "threads differ from stock"
                rows.append(measure("crew", case, "threads", lambda: crew.kickoff_for_each(inputs), repeat=repeat, warmup=0))
                for workers in (1, 2):
                    def fan_out() -> Any:
                        return kickoff_many(f"bench_fanout:crew_{name}", inputs, backend="processes",
                                            workers=workers, max_concurrency=CONCURRENCY)

                    got = [o.raw for o in fan_out()]  # also warms the pool
                    diff = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got)) if e != g]
                    assert len(got) == len(expected) and not diff, f"proc-{workers}w differs from stock: {diff[:2]}"
                    r = measure("crew", case, f"proc-{workers}w", fan_out, repeat=repeat, warmup=0)
                    r["of_reachable"] = round(max(ideal, n * cpu_per_run / cores) / r["median_s"], 3)
                    rows.append(r)
            finally:
                crewai_rust.unpatch()
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    import warnings

    from crewai_rust.testing import configure_offline

    configure_offline(tempfile.mkdtemp(prefix="bench_fanout_"))
    warnings.filterwarnings("ignore", message="crewai_rust: kickoffs now run")
    rows = _pool_rows() + _crew_rows(quick)
    by_case: dict[str, dict[str, float]] = {}
    for r in rows:
        by_case.setdefault(r["case"], {})[r["impl"]] = r["median_s"]
    for r in rows:
        threads = by_case[r["case"]].get("threads")
        if r["impl"].startswith("proc-") and threads:
            r["vs_threads"] = round(threads / r["median_s"], 2)
    _last_rows[:] = rows
    return rows


_last_rows: list[dict[str, Any]] = []

if __name__ == "__main__":
    main(run)
    for r in _last_rows:
        if "vs_threads" in r:
            print(f"{r['case']:<24} {r['impl']:<8} {r['vs_threads']:.2f}x threads,"
                  f" {r['of_reachable'] * 100:5.1f}% of max(ideal, gil-floor / cores)")
