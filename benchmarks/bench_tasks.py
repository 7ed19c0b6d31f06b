"""Fan-out benchmarks: concurrent kickoff_for_each and the per-task overhead of each executor.

* ``crew``: ``Crew.kickoff_for_each`` over 20 (and, not quick, 100) inputs with a
  ScriptedLLM that waits 100 ms per call (releasing the GIL like a network
  call): stock (sequential), patched with the python twin and the rust twin at
  concurrency 16, beside the ideal ``inputs / 16 x one run``. ``of_ideal`` is
  the fraction of the ideal speed-up reached (ideal time / patched time).
  ``gil-floor`` is ``inputs x CPU time of one kickoff``: the python parts of all
  kickoffs share one GIL, so no in-process fan-out can beat it. Patched rows use
  a blocking lock backend (the DATABASE component's when installed, else an
  in-process stand-in); ``*-filelock`` keeps stock's polling file lock, which
  every kickoff takes for its task-output storage.
* ``overhead``: seconds per no-op job for 10k jobs: rust twin, python twin,
  a warm ``concurrent.futures.ThreadPoolExecutor(16)``, ``asyncio.gather`` of
  coroutines, and stock's thread-per-task (``Task.execute_async``), on 2k jobs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import main, measure, row, time_calls  # noqa: E402

CONCURRENCY = 16
LATENCY = 0.1
NOOP_JOBS = 10_000
THREAD_PER_TASK_JOBS = 2_000


def _offline() -> None:
    from crewai_rust.testing import configure_offline

    configure_offline(tempfile.mkdtemp(prefix="bench_tasks_"))


def _crew(latency: float) -> Any:
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM

    llm = ScriptedLLM(latency=latency)
    agent = Agent(role="Analyst", goal="Answer about {topic}", backstory="Terse.", llm=llm)
    task = Task(description="Summarise {topic}", expected_output="one line", agent=agent)
    return Crew(agents=[agent], tasks=[task])


class _InProcessLocks:
    """Stand-in for the DATABASE component's blocking lock backend: one threading.Lock per name.

    Stock ``crewai_core.lock_store`` polls a file lock every 0.25 s, and every
    kickoff takes it (task-output storage), so concurrent kickoffs in one
    process queue on it. Used only when the DATABASE component is not installed.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, name: str, timeout: float = 120.0) -> Any:
        from contextlib import contextmanager

        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())

        @contextmanager
        def held() -> Any:
            if not lock.acquire(timeout=timeout):
                raise TimeoutError(f"lock {name!r} not acquired within {timeout} s")
            try:
                yield
            finally:
                lock.release()

        return held()


def _patch(impl: str, blocking_lock: bool) -> Any:
    """Patch TASKS (and a blocking lock: DATABASE when present, else the stand-in); returns the undo."""
    import crewai_rust
    from crewai_core import lock_store

    crewai_rust.patch("tasks", tasks={"use_rust": impl == "rust", "max_concurrency": CONCURRENCY})
    if not blocking_lock:
        return crewai_rust.unpatch
    if importlib.util.find_spec("crewai_rust.database") is not None:
        if crewai_rust.patch("database")["components"]["DATABASE"]["enabled"]:
            return crewai_rust.unpatch
    previous = lock_store._backend
    lock_store.set_lock_backend(_InProcessLocks())

    def undo() -> None:
        lock_store.set_lock_backend(previous)
        crewai_rust.unpatch()

    return undo


def _crew_rows(quick: bool) -> list[dict[str, Any]]:
    from crewai_rust._selection import speedups_module

    crew = _crew(LATENCY)
    rows: list[dict[str, Any]] = []
    one_run = time_calls(lambda: crew.kickoff(inputs={"topic": "warm-up"}), repeat=5)
    one = sorted(one_run)[len(one_run) // 2]
    cpu = []
    for _ in range(5):
        start = time.process_time()
        crew.kickoff(inputs={"topic": "cpu"})
        cpu.append(time.process_time() - start)
    cpu_per_run = sorted(cpu)[len(cpu) // 2]
    impls = ["python"] + (["rust"] if speedups_module() is not None else [])
    for n in [20] if quick else [20, 100]:
        inputs = [{"topic": f"topic {i}"} for i in range(n)]
        case = f"kickoff_for_each {n} x {int(LATENCY * 1000)}ms, c={CONCURRENCY}"
        repeat = 3 if quick or n <= 20 else 2
        expected = [o.raw for o in crew.kickoff_for_each(inputs)] if n <= 20 else None
        rows.append(measure("crew", case, "stock", lambda: crew.kickoff_for_each(inputs), repeat=repeat, warmup=0))
        ideal = n / CONCURRENCY * one
        rows.append(row("crew", case, "ideal", [ideal]))
        # One process runs python under one GIL: n x (CPU seconds of one kickoff) is a floor too.
        rows.append(row("crew", case, "gil-floor", [n * cpu_per_run], cpu_per_run_s=cpu_per_run))
        variants = [(impl, True) for impl in impls] + [(impls[-1], False)]
        for impl, blocking_lock in variants:
            undo = _patch(impl, blocking_lock)
            try:
                if expected is not None:
                    got = [o.raw for o in crew.kickoff_for_each(inputs)]
                    assert got == expected, "patched outputs differ from stock"
                label = impl if blocking_lock else f"{impl}-filelock"
                r = measure("crew", case, label, lambda: crew.kickoff_for_each(inputs), repeat=repeat, warmup=0)
            finally:
                undo()
            r["of_ideal"] = round(ideal / r["median_s"], 3)
            r["of_reachable"] = round(max(ideal, n * cpu_per_run) / r["median_s"], 3)
            rows.append(r)
    return rows


def _noop(_: Any = None) -> None:
    return None


async def _anoop() -> None:
    return None


def _per_task(group: str, case: str, impl: str, fn: Any, jobs: int, repeat: int) -> dict[str, Any]:
    samples = [s / jobs for s in time_calls(fn, repeat=repeat)]
    return row(group, case, impl, samples, jobs=jobs)


def _overhead_rows(quick: bool) -> list[dict[str, Any]]:
    from crewai_rust.tasks import RustTaskExecutor
    from crewai_rust._selection import speedups_module

    repeat = 5 if quick else 11
    items = list(range(NOOP_JOBS))
    case = f"per no-op job ({NOOP_JOBS // 1000}k jobs, c={CONCURRENCY})"
    rows = []
    py = RustTaskExecutor(CONCURRENCY, use_rust=False)
    rows.append(_per_task("overhead", case, "python", lambda: py.map(_noop, items), NOOP_JOBS, repeat))
    if speedups_module() is not None:
        rs = RustTaskExecutor(CONCURRENCY, use_rust=True)
        rows.append(_per_task("overhead", case, "rust", lambda: rs.map(_noop, items), NOOP_JOBS, repeat))
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        rows.append(_per_task("overhead", case, "tpe", lambda: list(pool.map(_noop, items)), NOOP_JOBS, repeat))
    loop = asyncio.new_event_loop()
    try:

        async def gather() -> None:
            await asyncio.gather(*(_anoop() for _ in items))

        rows.append(_per_task("overhead", case, "asyncio", lambda: loop.run_until_complete(gather()), NOOP_JOBS, repeat))
    finally:
        loop.close()

    def thread_per_task() -> None:
        threads = [threading.Thread(target=_noop) for _ in range(THREAD_PER_TASK_JOBS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    rows.append(_per_task("overhead", case, "stock", thread_per_task, THREAD_PER_TASK_JOBS, max(3, repeat // 2)))
    return rows


_last_rows: list[dict[str, Any]] = []


def run(quick: bool) -> list[dict[str, Any]]:
    _offline()
    os.environ.setdefault("CREWAI_RUST_MAX_CONCURRENCY", str(CONCURRENCY))
    rows = _overhead_rows(quick) + _crew_rows(quick)
    _last_rows[:] = rows
    return rows


def _print_ideal_fractions() -> None:
    for r in _last_rows:
        if "of_ideal" in r:
            print(
                f"{r['case']:<36} {r['impl']:<16} {r['of_ideal'] * 100:5.1f}% of the ideal speed-up (target >= 70%),"
                f" {r['of_reachable'] * 100:5.1f}% of max(ideal, gil-floor)"
            )


if __name__ == "__main__":
    main(run)
    _print_ideal_fractions()
