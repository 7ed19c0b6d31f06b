"""The ``processes`` backend: real offline crews on worker processes, against stock.

Pools are small (2 workers) and every test stops them afterwards and checks
that no worker process is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import crewai_rust
from crewai_rust.tasks import RustTaskExecutor, WorkerDiedError, kickoff_many
from crewai_rust.tasks._backends import shutdown_pools

pytestmark = [pytest.mark.slow, pytest.mark.crew, pytest.mark.filterwarnings("ignore:crewai_rust. kickoffs now run")]

TESTS = Path(__file__).resolve().parent
ROOT = Path(crewai_rust.__file__).resolve().parent.parent
INPUTS = [{"topic": f"topic {i}"} for i in range(6)]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return any(line.startswith("State:") and "Z" in line for line in status)
    except FileNotFoundError:
        return True


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a script started with ``start_new_session``: its pool's
    workers, the forkserver and multiprocessing's resource tracker are all in it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry))
    return found


def wait_session_gone(sid: int, seconds: float = 15.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return session_pids(sid)


def wait_gone(pids: list[int], seconds: float = 15.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if not gone(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


def worker_pids() -> list[int]:
    from crewai_rust.tasks import _backends

    return [pid for pool in list(_backends._pools.values()) for pid in pool.pids]


@pytest.fixture(autouse=True)
def _no_workers_left() -> Iterator[None]:
    yield
    pids = worker_pids()
    shutdown_pools()
    assert wait_gone(pids) == [], "worker processes outlived shutdown"


def outputs(results: list[Any]) -> list[list[str]]:
    return [[t.raw for t in r.tasks_output] for r in results]


_STOCK: dict[str, Any] = {}


def stock(inputs: list[dict[str, Any]]) -> tuple[list[list[str]], Any, dict[str, int]]:
    from _fanout_crews import research_crew

    key = repr(inputs)
    if key not in _STOCK:
        crew = research_crew()
        results = crew.kickoff_for_each(inputs)
        _STOCK[key] = (outputs(results), crew.usage_metrics, dict(crew.agents[0].llm._token_usage))
    return _STOCK[key]


@pytest.mark.parametrize("backend", ["threads", "processes"])
@pytest.mark.parametrize("factory", ["_fanout_crews:research_crew", "_fanout_crews:ResearchCrew"])
def test_kickoff_many_matches_stock(backend: str, factory: str) -> None:
    want, want_usage, _ = stock(INPUTS)
    results = kickoff_many(factory, INPUTS, backend=backend, workers=2, max_concurrency=4)
    assert outputs(results) == want
    assert want_usage.total_tokens > 0
    assert results.usage_metrics == want_usage


def test_runs_happen_in_worker_processes_spread_over_the_pool() -> None:
    results = kickoff_many("_fanout_crews:pid_crew", INPUTS, backend="processes", workers=2, max_concurrency=4)
    pids = {int(r.raw.split()[0].removeprefix("pid=")) for r in results}
    assert os.getpid() not in pids
    assert pids == set(worker_pids()) and len(pids) == 2


def test_pool_is_warm_and_reused_across_calls() -> None:
    kickoff_many("_fanout_crews:pid_crew", INPUTS[:2], backend="processes", workers=2, max_concurrency=2)
    first = sorted(worker_pids())
    kickoff_many("_fanout_crews:pid_crew", INPUTS[:2], backend="processes", workers=2, max_concurrency=2)
    assert sorted(worker_pids()) == first


def test_patched_kickoff_for_each_on_processes_matches_stock(use_rust: bool) -> None:
    from _fanout_crews import research_crew

    want, want_usage, want_counters = stock(INPUTS)
    state = crewai_rust.patch("tasks", tasks={"use_rust": use_rust, "backend": "processes", "workers": 2,
                                              "crew_factory": "_fanout_crews:research_crew", "max_concurrency": 4})
    assert state["components"]["TASKS"]["enabled"], state
    crew = research_crew()
    results = crew.kickoff_for_each(INPUTS)
    assert outputs(results) == want
    assert crew.usage_metrics == want_usage
    # The caller's LLM ends with stock's lifetime counts, though it never ran here.
    assert crew.agents[0].llm.calls == 0
    assert dict(crew.agents[0].llm._token_usage) == want_counters
    assert len(worker_pids()) == 2


def test_environment_selects_the_process_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from _fanout_crews import pid_crew

    monkeypatch.setenv("CREWAI_RUST_TASKS_BACKEND", "processes")
    monkeypatch.setenv("CREWAI_RUST_TASKS_CREW_FACTORY", "_fanout_crews:pid_crew")
    monkeypatch.setenv("CREWAI_RUST_TASKS_WORKERS", "2")
    crewai_rust.patch("tasks")
    results = pid_crew().kickoff_for_each(INPUTS[:4])
    pids = {int(r.raw.split()[0].removeprefix("pid=")) for r in results}
    assert os.getpid() not in pids and pids <= set(worker_pids())


def test_without_a_factory_kickoff_for_each_stays_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from _fanout_crews import pid_crew

    monkeypatch.setenv("CREWAI_RUST_TASKS_BACKEND", "processes")
    monkeypatch.delenv("CREWAI_RUST_TASKS_CREW_FACTORY", raising=False)
    crewai_rust.patch("tasks")
    results = pid_crew().kickoff_for_each(INPUTS[:2])
    assert {r.raw.split()[0] for r in results} == {f"pid={os.getpid()}"}
    assert worker_pids() == []


def test_errors_per_input_and_return_exceptions() -> None:
    inputs = [{"topic": "fine 0"}, {"topic": "boom 1"}, {"topic": "fine 2"}]
    results = kickoff_many("_fanout_crews:research_crew", inputs, backend="processes", workers=2,
                           max_concurrency=2, return_exceptions=True)
    assert isinstance(results[1], ValueError) and "scripted failure" in str(results[1])
    assert "in worker process" in str(results[1].__cause__)
    assert [r.raw for r in (results[0], results[2])] == [o[-1] for o in stock([inputs[0], inputs[2]])[0]]
    # Usage counts the runs that finished, as stock would have counted them without the failing one.
    assert results.usage_metrics == stock([inputs[0], inputs[2]])[1]
    with pytest.raises(ValueError, match="scripted failure"):
        kickoff_many("_fanout_crews:research_crew", inputs, backend="processes", workers=2, max_concurrency=2)


def test_timeout_reports_the_slow_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FANOUT_TEST_SLOW", "6")
    inputs = [{"topic": "slow 0"}, {"topic": "fine 1"}]
    # Warm workers (each builds its crew on first use), so only the slow input can overrun.
    kickoff_many("_fanout_crews:research_crew", INPUTS[:2], backend="processes", workers=2, max_concurrency=2)
    results = kickoff_many("_fanout_crews:research_crew", inputs, backend="processes", workers=2,
                           max_concurrency=2, timeout=3.0, return_exceptions=True)
    assert isinstance(results[0], TimeoutError)
    assert results[1].raw == stock([inputs[1]])[0][0][-1]


def test_a_killed_worker_fails_only_its_input_and_is_replaced() -> None:
    from crewai_rust.tasks import _backends

    inputs = [{"topic": f"fine {i}"} for i in range(5)]
    inputs[2] = {"topic": "die 2"}
    results = kickoff_many("_fanout_crews:research_crew", inputs, backend="processes", workers=2,
                           max_concurrency=2, return_exceptions=True)
    assert isinstance(results[2], WorkerDiedError)
    assert "SIGKILL" in str(results[2])
    fine = [r for i, r in enumerate(results) if i != 2]
    assert [r.raw for r in fine] == [o[-1] for o in stock([x for i, x in enumerate(inputs) if i != 2])[0]]
    (pool,) = _backends._pools.values()
    assert pool.replaced == 1 and len(pool.pids) == 2


def test_first_process_run_warns_about_event_listeners(monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai_rust.tasks import _procpool

    monkeypatch.setattr(_procpool, "_warned", False)
    with pytest.warns(RuntimeWarning, match="event listeners registered in this process") as caught:
        kickoff_many("_fanout_crews:research_crew", INPUTS[:1], backend="processes", workers=1, max_concurrency=1)
    assert [w.filename for w in caught] == [__file__]  # it names the caller's line, not crewai_rust's
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kickoff_many("_fanout_crews:research_crew", INPUTS[:1], backend="processes", workers=1, max_concurrency=1)


def test_executor_backend_processes_map_submit_amap() -> None:
    from _fanout_crews import getpid, nap, square

    executor = RustTaskExecutor(4, backend="processes", workers=2)
    assert executor.map(square, range(10)) == [x * x for x in range(10)]
    assert os.getpid() not in set(executor.map(getpid, range(4)))
    assert executor.submit(square, 7).result(timeout=60) == 49
    assert asyncio.run(executor.amap(square, [1, 2, 3])) == [1, 4, 9]

    async def cancel_it() -> None:
        task = asyncio.ensure_future(executor.amap(nap, [30.0, 30.0]))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    pids = worker_pids()
    started = time.monotonic()
    asyncio.run(cancel_it())
    assert time.monotonic() - started < 25  # cancelled, not waited out
    assert wait_gone(pids) == []  # the workers running the cancelled items were stopped


def test_memory_saved_by_one_worker_is_recalled_by_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    crewai_rust.patch(["memory", "tasks"])
    first = kickoff_many("_fanout_crews:memory_crew", [{"topic": "the zebra-4417 fact"}], backend="processes",
                         workers=2, max_concurrency=2)
    second = kickoff_many("_fanout_crews:memory_crew", [{"topic": "what we know"}], backend="processes",
                          workers=2, max_concurrency=2)
    saver = first[0].raw.split()[0]
    reader = [t.raw for t in second[0].tasks_output]
    assert reader[0].split()[0] != saver, "both inputs ran in the same worker process"
    assert "recalled=True" in reader[0], reader


def test_workers_apply_the_drivers_patch_settings_runtime_included() -> None:
    # RUNTIME halves the CPU of a kickoff: a worker without it would be the slow path.
    crewai_rust.patch(["tasks", "runtime"], runtime={"event_bus": False, "save_workers": 3})
    results = kickoff_many("_fanout_crews:settings_crew", INPUTS[:4], backend="processes", workers=2,
                           max_concurrency=4)
    answers = {r.raw.split(" ", 1)[1] for r in results}
    assert answers == {"enabled=RUNTIME,TASKS runtime=[('event_bus', False), ('save_workers', 3)] "
                       "ours={'emit': False, 'state': True}"}, answers
    assert len({r.raw.split()[0] for r in results}) == 2  # both workers answered
    # A changed patch() gets workers with the new settings.
    crewai_rust.unpatch()
    crewai_rust.patch(["tasks", "runtime", "database"])
    results = kickoff_many("_fanout_crews:settings_crew", INPUTS[:4], backend="processes", workers=2,
                           max_concurrency=4)
    assert {r.raw.split(" ", 1)[1] for r in results} == {
        "enabled=DATABASE,RUNTIME,TASKS runtime=[] ours={'emit': True, 'state': True}"}


SCRIPT_PRELUDE = f"""
import os, sys, threading, time, signal, multiprocessing
sys.path[:0] = [{str(ROOT)!r}, {str(TESTS)!r}]
from crewai_rust.tasks import kickoff_many
from crewai_rust.tasks import _backends
"""


def run_script(tmp_path: Path, body: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Run ``body`` as a user script in its own session (so a signal can go to its whole process group)."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_PRELUDE + textwrap.dedent(body), encoding="utf-8")
    env = {**os.environ, "FANOUT_TEST_SLOW": "60", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path, start_new_session=True, **kwargs)


def read_pids(proc: subprocess.Popen[str]) -> list[int]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("pids "), line + (proc.stderr.read() if proc.stderr else "")
    return [int(p) for p in line.split()[1:]]


PRINT_PIDS_THEN = """
def watch():
    while len([p for pool in list(_backends._pools.values()) for p in pool.pids]) < 2:
        time.sleep(0.05)
    time.sleep(0.5)
    print("pids", *[p for pool in list(_backends._pools.values()) for p in pool.pids], flush=True)
    {action}
threading.Thread(target=watch, daemon=True).start()
if __name__ == "__main__":
    try:
        kickoff_many("_fanout_crews:research_crew", [{{"topic": "slow 0"}}, {{"topic": "slow 1"}}],
                     backend="processes", workers=2, max_concurrency=2)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


def test_ctrl_c_stops_the_workers(tmp_path: Path) -> None:
    # Ctrl-C in a terminal: SIGINT to the whole foreground process group, workers included.
    proc = run_script(tmp_path, PRINT_PIDS_THEN.format(action="pass"))
    pids = read_pids(proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "interrupted" in out, err
    assert proc.returncode == 0, err
    assert wait_gone(pids) == []
    assert wait_session_gone(proc.pid) == []  # the forkserver and resource tracker too


def test_a_killed_driver_leaves_no_workers(tmp_path: Path) -> None:
    proc = run_script(tmp_path, PRINT_PIDS_THEN.format(action="pass"))
    pids = read_pids(proc)
    helpers = [p for p in session_pids(proc.pid) if p != proc.pid and p not in pids]
    assert len(helpers) >= 1, helpers  # the forkserver (and the resource tracker)
    proc.kill()
    proc.communicate(timeout=60)
    assert wait_gone(pids) == []
    assert wait_session_gone(proc.pid) == [], "a process of the killed driver's pool outlived it"


def test_script_without_main_guard_gets_a_clear_error(tmp_path: Path) -> None:
    proc = run_script(tmp_path, """
    print("script ran", flush=True)
    kickoff_many("_fanout_crews:research_crew", [{"topic": "a"}], backend="processes", workers=2)
    """)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode != 0
    assert "PoolStartError" in err and 'if __name__ == "__main__":' in err
    # The driver plus one import per worker started at first; nothing restarted in a loop.
    assert out.count("script ran") <= 3


def test_run_many_writes_one_line_per_input_and_resumes(tmp_path: Path) -> None:
    inputs = [{"topic": f"topic {i}"} for i in range(4)]
    source = tmp_path / "inputs.jsonl"
    source.write_text("".join(json.dumps(x) + "\n" for x in inputs), encoding="utf-8")
    out = tmp_path / "results.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "crewai_rust", "run-many", "_fanout_crews:research_crew", str(source),
               "--out", str(out), "--backend", "processes", "--workers", "2", "--max-concurrency", "2"]
    # A previous run finished input 1 (and crashed mid-line on another).
    out.write_text(json.dumps({"index": 1, "output": "from before"}) + "\n" + '{"index": 3, "outp', encoding="utf-8")
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # progress goes to stderr (rich's bar when installed, else plain lines)
    assert "3/3 done" in done.stderr or "kickoffs" in done.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[1] == '{"index": 3, "outp'
    by_index = {record["index"]: record for record in map(json.loads, lines[2:])}
    assert sorted(by_index) == [0, 2, 3]
    want = stock(inputs)[0]
    for index, line in by_index.items():
        assert line["output"] == want[index][-1]
        assert line["error"] is None and line["usage"]["total_tokens"] > 0 and line["seconds"] > 0


def test_run_many_ctrl_c_keeps_finished_lines_and_resume_runs_only_the_rest(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [{"topic": "fine 0"}, {"topic": "slow 1"}, {"topic": "fine 2"}, {"topic": "slow 3"}]
    source = tmp_path / "inputs.jsonl"
    source.write_text("".join(json.dumps(x) + "\n" for x in inputs), encoding="utf-8")
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "crewai_rust", "run-many", "_fanout_crews:research_crew", str(source),
               "--out", str(out), "--backend", "processes", "--workers", "2", "--max-concurrency", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "PYTHONWARNINGS": "ignore",
           "FANOUT_TEST_SLOW": "120"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text(encoding="utf-8").count("\n") >= 2:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # both slow inputs are now running in the workers
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    assert wait_session_gone(proc.pid) == []
    first = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["index"] for r in first) == [0, 2], first
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**env, "FANOUT_TEST_SLOW": "0"})
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert records[:2] == first  # finished work kept as it was
    assert sorted(r["index"] for r in records) == [0, 1, 2, 3]  # each input once
    monkeypatch.setenv("FANOUT_TEST_SLOW", "0")
    want = stock(inputs)[0]
    assert all(r["output"] == want[r["index"]][-1] and r["error"] is None for r in records)
