"""Past the GIL: kickoff_for_each on threads against worker processes and Ray actors.

``crew`` rows: N kickoffs of a one-task crew whose ScriptedLLM waits L ms per
call (releasing the GIL like a network wait), at concurrency C (16 and 32):

* ``stock``: stock ``kickoff_for_each`` (sequential, so one measurement per N x L:
  the ``c=32`` case repeats the ``c=16`` figure, marked ``same_as``);
* ``threads``: patched ``kickoff_for_each`` (every component, as ``import crewai_rust.shim``
  patches; RUNTIME halves the CPU of a kickoff), thread backend;
* ``proc-1w`` / ``proc-2w`` / ``proc-4w``: ``kickoff_many(..., backend="processes")``
  on a warm pool of 1, 2 or 4 worker processes (each worker applies the same patch);
* ``ray-2a``: ``kickoff_many(..., backend="ray")`` on 2 warm threaded actors of a local Ray;
* ``ideal``: N / C x the wall time of one patched kickoff;
* ``gil-1p`` / ``gil-2p``: N x the CPU time of one patched kickoff (alone), over 1 and over
  min(2, CPUs) processes: the python parts of kickoffs in one process share
  one GIL, so one process cannot beat ``gil-1p`` and two cannot beat ``gil-2p``.

No backend can beat ``ideal`` or ``gil-2p``, so the most any of them can gain over
threads in a case is ``threads / max(ideal, gil-2p)`` (``bound_vs_threads`` on the
threads row, printed at the end with ``threads / ideal``). Every crew row carries the
1-minute load average when it was measured (``load_1m``): other jobs on the machine
take CPU from the backends that need both cores most.

``pool`` rows: seconds until a 2-worker pool is ready, cold (first pool of the
process: starts the forkserver, which imports CrewAI) and warm (forkserver up);
``ray.init`` of a local Ray, and 2 actors ready (each imports CrewAI), first and second pool.
``runmany`` rows: 256 x 100 ms on 2 worker processes, ``kickoff_many`` against the
``run-many`` command's code path (its JSON lines and progress per input), same warm pool.
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
CONCURRENCIES = (16, 32)
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


def _patch(concurrency: int = CONCURRENCY) -> None:
    import crewai_rust

    crewai_rust.patch(tasks={"max_concurrency": concurrency})


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _one_kickoff(latency: float) -> tuple[float, float]:
    """Wall and CPU seconds of one kickoff (medians), on a crew of its own."""
    # A crew kicked off directly keeps that kickoff's interpolated task texts, and stock's
    # kickoff_for_each copies them (its later outputs ignore the new inputs): probe on another crew.
    probe = _crew(latency)
    one = _median(time_calls(lambda: probe.kickoff(inputs={"topic": "warm-up"}), repeat=5))
    cpu = []
    for _ in range(5):
        start = time.process_time()
        probe.kickoff(inputs={"topic": "cpu"})
        cpu.append(time.process_time() - start)
    return one, _median(cpu)


def _pool_rows() -> list[dict[str, Any]]:
    from crewai_rust.tasks._procpool import ProcessPool
    from crewai_rust.tasks._ray import RayPool, ensure_ray

    rows = []
    for label in ("cold", "warm"):
        pool = ProcessPool(2, CONCURRENCY // 2)
        started = time.perf_counter()
        pool.start()
        rows.append(row("pool", "2 workers ready", label, [time.perf_counter() - started]))
        pool.shutdown()
    started = time.perf_counter()
    ensure_ray(None)
    rows.append(row("pool", "ray.init (local)", "cold", [time.perf_counter() - started]))
    for label in ("first", "second"):
        ray_pool = RayPool(2, CONCURRENCY // 2)
        started = time.perf_counter()
        ray_pool.start()
        rows.append(row("pool", "2 Ray actors ready", label, [time.perf_counter() - started]))
        ray_pool.shutdown()
    return rows


def _median(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2]


def _check(label: str, expected: list[str], got: list[str]) -> None:
    diff = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert len(got) == len(expected) and not diff, f"{label} differs from stock: {diff[:2]}"


def _crew_rows(quick: bool) -> list[dict[str, Any]]:
    import crewai_rust
    from crewai_rust.tasks import kickoff_many

    rows: list[dict[str, Any]] = []
    cores = min(2, os.cpu_count() or 1)
    sizes = [64] if quick else [64, 256]
    remote = [("processes", w, f"proc-{w}w") for w in (1, 2, 4)] + [("ray", 2, "ray-2a")]
    for name, latency in LATENCIES.items():
        _, stock_cpu = _one_kickoff(latency)
        _patch()
        try:
            one, cpu_per_run = _one_kickoff(latency)
        finally:
            crewai_rust.unpatch()
        crew = _crew(latency)
        for n in sizes:
            inputs = [{"topic": f"topic {i}"} for i in range(n)]
            repeat = 1 if n > 64 else 2
            expected = [o.raw for o in crew.kickoff_for_each(inputs)]
            stock_row = measure("crew", f"{n} x {name}, c={CONCURRENCIES[0]}", "stock",
                                lambda: crew.kickoff_for_each(inputs), repeat=repeat, warmup=0)
            for c in CONCURRENCIES:
                case = f"{n} x {name}, c={c}"
                if c == CONCURRENCIES[0]:
                    rows.append(stock_row)
                else:  # sequential: the concurrency does not change it
                    rows.append({**stock_row, "case": case, "same_as": stock_row["case"]})
                ideal = n / c * one
                rows.append(row("crew", case, "ideal", [ideal]))
                rows.append(row("crew", case, "gil-1p", [n * cpu_per_run], cpu_per_run_s=cpu_per_run,
                                stock_cpu_per_run_s=stock_cpu))
                rows.append(row("crew", case, "gil-2p", [n * cpu_per_run / cores]))
                _patch(c)
                try:
                    _check("threads", expected, [o.raw for o in crew.kickoff_for_each(inputs)])
                    load = _load()
                    r = measure("crew", case, "threads", lambda: crew.kickoff_for_each(inputs), repeat=repeat,
                                warmup=0, extra={"load_1m": load})
                    reachable = max(ideal, n * cpu_per_run / cores)
                    r["vs_ideal"] = round(r["median_s"] / ideal, 3)
                    r["bound_vs_threads"] = round(r["median_s"] / reachable, 3)
                    rows.append(r)
                    for backend, workers, label in remote:
                        def fan_out(backend: str = backend, workers: int = workers, c: int = c) -> Any:
                            return kickoff_many(f"bench_fanout:crew_{name}", inputs, backend=backend,
                                                workers=workers, max_concurrency=c)

                        _check(label, expected, [o.raw for o in fan_out()])  # also warms the pool
                        load = _load()
                        r = measure("crew", case, label, fan_out, repeat=repeat, warmup=0, extra={"load_1m": load})
                        r["of_reachable"] = round(reachable / r["median_s"], 3)
                        rows.append(r)
                finally:
                    crewai_rust.unpatch()  # also stops this patch's pools
    return rows


def _run_many_rows(n: int) -> list[dict[str, Any]]:
    """``kickoff_many`` against the ``run-many`` command's code path on the same warm 2-worker pool."""
    import argparse
    import contextlib
    import io
    import json

    import crewai_rust
    from crewai_rust import _cli_run_many
    from crewai_rust.tasks import kickoff_many

    work = Path(tempfile.mkdtemp(prefix="bench_run_many_"))
    inputs = [{"topic": f"topic {i}"} for i in range(n)]
    source = work / "inputs.jsonl"
    source.write_text("".join(json.dumps(x) + "\n" for x in inputs), encoding="utf-8")
    expected = [o.raw for o in _crew(0.1).kickoff_for_each(inputs)]
    case = f"{n} x 100ms, c={CONCURRENCY}, 2 workers"
    rounds = {"n": 0}

    def run_many() -> None:
        rounds["n"] += 1
        out = work / f"results-{rounds['n']}.jsonl"
        args = argparse.Namespace(factory="bench_fanout:crew_100ms", inputs=source, out=out, backend="processes",
                                  workers=2, address=None, max_concurrency=CONCURRENCY, timeout=None,
                                  resume=False, no_patch=True)
        with contextlib.redirect_stderr(io.StringIO()):
            assert _cli_run_many.run(args) == 0
        got = {r["index"]: r["output"] for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
        _check("run-many", expected, [got[i] for i in range(n)])

    def many() -> None:
        _check("kickoff_many", expected, [o.raw for o in kickoff_many(
            "bench_fanout:crew_100ms", inputs, backend="processes", workers=2, max_concurrency=CONCURRENCY)])

    _patch()
    try:
        many()  # warms the pool both use
        rows = []
        for _ in range(2):  # interleaved, so load drifts hit both alike
            rows.append(measure("runmany", case, "kickoff_many", many, repeat=1, warmup=0))
            rows.append(measure("runmany", case, "run-many", run_many, repeat=1, warmup=0))
    finally:
        crewai_rust.unpatch()
    merged = []
    for impl in ("kickoff_many", "run-many"):
        samples = [r["median_s"] for r in rows if r["impl"] == impl]
        merged.append(row("runmany", case, impl, samples))
    merged[1]["vs_kickoff_many"] = round(merged[1]["median_s"] / merged[0]["median_s"], 3)
    return merged


def run(quick: bool) -> list[dict[str, Any]]:
    import warnings

    from crewai_rust.testing import configure_offline

    configure_offline(tempfile.mkdtemp(prefix="bench_fanout_"))
    warnings.filterwarnings("ignore", message="crewai_rust: kickoffs now run")
    rows = _pool_rows() + _crew_rows(quick) + _run_many_rows(64 if quick else 256)
    by_case: dict[str, dict[str, float]] = {}
    for r in rows:
        by_case.setdefault(r["case"], {})[r["impl"]] = r["median_s"]
    for r in rows:
        threads = by_case[r["case"]].get("threads")
        if r["impl"].startswith(("proc-", "ray-")) and threads:
            r["vs_threads"] = round(threads / r["median_s"], 2)
    _last_rows[:] = rows
    return rows


_last_rows: list[dict[str, Any]] = []

if __name__ == "__main__":
    import subprocess

    model = [line for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
             if line.startswith("Model name")]
    print(*model, f"cores {os.cpu_count()}, load average at start {os.getloadavg()}", flush=True)
    main(run)
    print(f"load average at end {os.getloadavg()}")
    for r in _last_rows:
        if "bound_vs_threads" in r:
            print(f"{r['case']:<24} threads = {r['vs_ideal']:.2f}x ideal; no backend can beat threads by more than"
                  f" {r['bound_vs_threads']:.2f}x here (threads / max(ideal, gil-2p)); load {r['load_1m']}")
        if "vs_threads" in r:
            print(f"{r['case']:<24} {r['impl']:<8} {r['vs_threads']:.2f}x threads,"
                  f" {r['of_reachable'] * 100:5.1f}% of max(ideal, gil-floor / cores), load {r['load_1m']}")
        if "vs_kickoff_many" in r:
            print(f"{r['case']:<24} run-many takes {r['vs_kickoff_many']:.3f}x the time of kickoff_many")
