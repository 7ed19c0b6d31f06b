"""The ``ray`` backend: real offline crews on threaded Ray actors, against stock.

One local Ray for the whole session (``ray.init(num_cpus=2)``); actor pools are
kept warm between tests where their shape and settings allow (each new pool
starts actors that import CrewAI). Tests marked ``ray`` skip only when Ray is
not installed, and fail instead when ``CREWAI_RUST_REQUIRE_RAY=1`` (the tox
``ray`` env); a Ray that is installed but cannot start always fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_tasks_processes import ROOT, TESTS, INPUTS, outputs, stock, wait_gone

import crewai_rust
from crewai_rust.tasks import RustTaskExecutor, WorkerDiedError, kickoff_many
from crewai_rust.tasks import _backends
from crewai_rust.tasks._backends import shared_pool, shutdown_pools

FACTORY = "_fanout_crews:research_crew"
#: Seconds a "slow" input sleeps in an actor (actors take the driver's environment when they start).
SLOW = "6"

pytestmark = [pytest.mark.crew, pytest.mark.filterwarnings("ignore:crewai_rust. kickoffs now run")]


def _require_ray() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import ray
    except ImportError as exc:
        if os.environ.get("CREWAI_RUST_REQUIRE_RAY", "").strip() == "1":
            pytest.fail(f"CREWAI_RUST_REQUIRE_RAY=1 but ray is not installed: {exc}")
        pytest.skip(f"ray not installed (pip install 'crewai_rust[ray]'): {exc}")
    return ray


def ray_pids() -> list[int]:
    from crewai_rust.tasks._ray import RayPool

    return [pid for pool in list(_backends._pools.values()) if isinstance(pool, RayPool) for pid in pool.pids]


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """A local Ray for the session; at the end no actor process of ours is left."""
    ray = _require_ray()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FANOUT_TEST_SLOW", SLOW)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not ray.is_initialized():
                ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        seen: set[int] = set()
        yield seen
        seen.update(ray_pids())
        shutdown_pools()
        assert wait_gone(sorted(seen)) == [], "Ray actor processes outlived shutdown"
        ray.shutdown()


@pytest.fixture
def ray_up(ray_session: set[int]) -> Iterator[Any]:
    """Ray is running; the actors this test used are remembered for the session's leak check."""
    import ray

    yield ray
    ray_session.update(ray_pids())


# -- without Ray ---------------------------------------------------------------------
def test_importing_the_package_and_tasks_does_not_import_ray() -> None:
    code = (
        "import sys, json; import crewai_rust, crewai_rust.tasks;"
        "from crewai_rust.tasks import RustTaskExecutor, kickoff_many;"
        "print(json.dumps('ray' in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is False


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ImportError, match=r"crewai_rust\[ray\]"):
        kickoff_many(FACTORY, INPUTS[:1], backend="ray")
    with pytest.raises(ImportError, match=r"crewai_rust\[ray\]"):
        RustTaskExecutor(2, backend="ray")
    # patch() reports it (TASKS stays off) instead of raising.
    state = crewai_rust.patch("tasks", tasks={"backend": "ray", "crew_factory": FACTORY})
    tasks = state["components"]["TASKS"]
    assert not tasks["enabled"] and "crewai_rust[ray]" in tasks["error"], tasks


def test_a_workers_first_kickoff_runs_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker code both backends share: in a fresh worker, the first kickoff runs before any other starts.
    from crewai import Crew

    from crewai_rust.tasks import _worker

    monkeypatch.setattr(_worker, "_warm", False, raising=False)
    monkeypatch.setattr(_worker, "_crews", {})
    spans: list[tuple[float, float]] = []
    original = Crew.kickoff

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return original(self, *args, **kwargs)
        finally:
            spans.append((started, time.monotonic()))

    monkeypatch.setattr(Crew, "kickoff", timed)
    jobs = [(FACTORY, {"topic": f"topic {i}"}, None) for i in range(4)]
    threads = [threading.Thread(target=_worker.run_crew_input, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(spans) == 4
    first_end = min(end for _, end in spans)
    assert sorted(start for start, _ in spans)[1] >= first_end, spans


# -- on Ray ----------------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.parametrize("factory", [FACTORY, "_fanout_crews:ResearchCrew"])
def test_kickoff_many_on_ray_matches_stock(ray_up: Any, factory: str) -> None:
    want, want_usage, _ = stock(INPUTS)
    results = kickoff_many(factory, INPUTS, backend="ray", workers=2, max_concurrency=4)
    assert outputs(results) == want
    assert want_usage.total_tokens > 0
    assert results.usage_metrics == want_usage


@pytest.mark.ray
def test_runs_happen_in_actors_spread_over_the_pool_and_reused(ray_up: Any) -> None:
    first = kickoff_many("_fanout_crews:pid_crew", INPUTS, backend="ray", workers=2, max_concurrency=4)
    pids = {int(r.raw.split()[0].removeprefix("pid=")) for r in first}
    assert os.getpid() not in pids
    pool = shared_pool(2, 4, "ray")
    assert pids == set(pool.pids) and len(pids) == 2
    kickoff_many("_fanout_crews:pid_crew", INPUTS[:2], backend="ray", workers=2, max_concurrency=4)
    assert shared_pool(2, 4, "ray") is pool and set(pool.pids) == pids  # warm actors, reused


@pytest.mark.ray
def test_patched_kickoff_for_each_on_ray_matches_stock(ray_up: Any, use_rust: bool) -> None:
    from _fanout_crews import research_crew

    want, want_usage, want_counters = stock(INPUTS)
    state = crewai_rust.patch("tasks", tasks={"use_rust": use_rust, "backend": "ray", "workers": 2,
                                              "crew_factory": FACTORY, "max_concurrency": 4})
    assert state["components"]["TASKS"]["enabled"], state
    crew = research_crew()
    results = crew.kickoff_for_each(INPUTS)
    assert outputs(results) == want
    assert crew.usage_metrics == want_usage
    # The caller's LLM ends with stock's lifetime counts, though it never ran here.
    assert crew.agents[0].llm.calls == 0
    assert dict(crew.agents[0].llm._token_usage) == want_counters
    assert len(shared_pool(2, 4, "ray").pids) == 2  # the pool of this patch's settings


@pytest.mark.ray
def test_environment_selects_the_ray_backend(ray_up: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from _fanout_crews import pid_crew

    monkeypatch.setenv("CREWAI_RUST_TASKS_BACKEND", "ray")
    monkeypatch.setenv("CREWAI_RUST_TASKS_CREW_FACTORY", "_fanout_crews:pid_crew")
    monkeypatch.setenv("CREWAI_RUST_TASKS_WORKERS", "2")
    crewai_rust.patch("tasks", tasks={"max_concurrency": 4})
    results = pid_crew().kickoff_for_each(INPUTS[:4])
    pids = {int(r.raw.split()[0].removeprefix("pid=")) for r in results}
    assert os.getpid() not in pids and pids <= set(ray_pids())


@pytest.mark.ray
def test_errors_per_input_and_return_exceptions(ray_up: Any) -> None:
    inputs = [{"topic": "fine 0"}, {"topic": "boom 1"}, {"topic": "fine 2"}]
    results = kickoff_many(FACTORY, inputs, backend="ray", workers=2, max_concurrency=2, return_exceptions=True)
    assert type(results[1]) is ValueError and "scripted failure" in str(results[1])
    assert "in Ray actor process" in str(results[1].__cause__)
    assert [r.raw for r in (results[0], results[2])] == [o[-1] for o in stock([inputs[0], inputs[2]])[0]]
    assert results.usage_metrics == stock([inputs[0], inputs[2]])[1]
    with pytest.raises(ValueError, match="scripted failure"):
        kickoff_many(FACTORY, inputs, backend="ray", workers=2, max_concurrency=2)


@pytest.mark.ray
def test_timeout_reports_the_slow_input(ray_up: Any) -> None:
    # Warm actors (each builds its crew on first use), so only the slow input can overrun.
    kickoff_many(FACTORY, INPUTS[:2], backend="ray", workers=2, max_concurrency=2)
    inputs = [{"topic": "slow 0"}, {"topic": "fine 1"}]
    results = kickoff_many(FACTORY, inputs, backend="ray", workers=2, max_concurrency=2, timeout=3.0,
                           return_exceptions=True)
    assert isinstance(results[0], TimeoutError)
    assert results[1].raw == stock([inputs[1]])[0][0][-1]
    with pytest.raises(TimeoutError):
        kickoff_many(FACTORY, inputs, backend="ray", workers=2, max_concurrency=2, timeout=3.0)


@pytest.mark.ray
def test_an_actor_killed_mid_run_fails_only_its_input_and_is_replaced(ray_up: Any) -> None:
    ray = ray_up
    pool = shared_pool(2, 2, "ray")
    pool.start()
    before, replaced = set(pool.pids), pool.replaced
    inputs = [{"topic": f"fine {i}"} for i in range(5)]
    inputs[2] = {"topic": "slow 2"}
    killed: list[int] = []

    def kill_the_slow_one() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for pid, handle in pool.actors.items():
                if any(arg[1] == inputs[2] for _, arg in pool.running_on(pid)):
                    time.sleep(0.5)  # well inside its 6 s sleep
                    ray.kill(handle)
                    killed.append(pid)
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_the_slow_one)
    watcher.start()
    results = kickoff_many(FACTORY, inputs, backend="ray", workers=2, max_concurrency=2, return_exceptions=True)
    watcher.join()
    assert killed, "the slow input never reached an actor"
    assert isinstance(results[2], WorkerDiedError), results[2]
    assert "Ray actor" in str(results[2]) and str(killed[0]) in str(results[2])
    fine = [r for i, r in enumerate(results) if i != 2]
    assert [r.raw for r in fine] == [o[-1] for o in stock([x for i, x in enumerate(inputs) if i != 2])[0]]
    assert pool.replaced == replaced + 1
    assert wait_gone(killed) == []
    deadline = time.monotonic() + 120
    while len(pool.pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pool.pids) == 2 and killed[0] not in pool.pids and before - set(killed) <= set(pool.pids)
    # The replacement runs inputs like the others.
    again = kickoff_many(FACTORY, INPUTS[:2], backend="ray", workers=2, max_concurrency=2)
    assert outputs(again) == stock(INPUTS[:2])[0]


@pytest.mark.ray
def test_an_idle_actor_that_dies_is_replaced_before_it_gets_an_input(ray_up: Any) -> None:
    ray = ray_up
    pool = shared_pool(2, 2, "ray")
    pool.start()
    replaced = pool.replaced
    victim, handle = next(iter(pool.actors.items()))
    ray.kill(handle)
    deadline = time.monotonic() + 120
    while (pool.replaced == replaced or len(pool.pids) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.replaced == replaced + 1 and victim not in pool.pids and len(pool.pids) == 2
    results = kickoff_many(FACTORY, INPUTS, backend="ray", workers=2, max_concurrency=2)
    assert outputs(results) == stock(INPUTS)[0]  # no input was sent to the dead actor


@pytest.mark.ray
def test_memory_saved_by_one_actor_is_recalled_by_another(ray_up: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))  # actors of this patch's new pool take it
    crewai_rust.patch(["memory", "tasks"])
    first = kickoff_many("_fanout_crews:memory_crew", [{"topic": "the zebra-4417 fact"}], backend="ray",
                         workers=2, max_concurrency=2)
    second = kickoff_many("_fanout_crews:memory_crew", [{"topic": "what we know"}], backend="ray",
                          workers=2, max_concurrency=2)
    saver = first[0].raw.split()[0]
    reader = [t.raw for t in second[0].tasks_output]
    assert saver != f"pid={os.getpid()}"
    assert reader[0].split()[0] != saver, "both inputs ran in the same actor"
    assert "recalled=True" in reader[0], reader
    assert any(tmp_path.rglob("*.db")), "the store is not the shared SQLite file under CREWAI_STORAGE_DIR"


@pytest.mark.ray
def test_first_ray_run_warns_about_event_listeners(ray_up: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai_rust.tasks import _procpool

    monkeypatch.setattr(_procpool, "_warned", False)
    with pytest.warns(RuntimeWarning, match="event listeners registered in this process"):
        kickoff_many(FACTORY, INPUTS[:1], backend="ray", workers=2, max_concurrency=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kickoff_many(FACTORY, INPUTS[:1], backend="ray", workers=2, max_concurrency=2)


@pytest.mark.ray
def test_executor_backend_ray_map_submit_amap_and_cancel(ray_up: Any) -> None:
    from _fanout_crews import getpid, nap, square

    executor = RustTaskExecutor(4, backend="ray", workers=2)
    assert "backend='ray'" in repr(executor)
    assert executor.map(square, range(10)) == [x * x for x in range(10)]
    assert os.getpid() not in set(executor.map(getpid, range(4)))
    assert executor.map(lambda x: x + 1, range(3)) == [1, 2, 3]  # Ray serialises closures too
    assert executor.submit(square, 7).result(timeout=60) == 49
    assert asyncio.run(executor.amap(square, [1, 2, 3])) == [1, 4, 9]
    pool = shared_pool(2, 4, "ray")
    pids = pool.pids

    async def cancel_it() -> None:
        task = asyncio.ensure_future(executor.amap(nap, [30.0, 30.0]))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(cancel_it())
    assert time.monotonic() - started < 25  # cancelled, not waited out
    assert pool.closed and wait_gone(pids) == []  # the actors running the cancelled items were stopped
    assert executor.map(square, [3]) == [9]  # a new pool starts lazily


@pytest.mark.ray
def test_run_many_on_ray(ray_up: Any, tmp_path: Path) -> None:
    inputs = [{"topic": f"topic {i}"} for i in range(3)]
    source = tmp_path / "inputs.jsonl"
    source.write_text("".join(json.dumps(x) + "\n" for x in inputs), encoding="utf-8")
    out = tmp_path / "results.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "crewai_rust", "run-many", FACTORY, str(source), "--out", str(out),
               "--backend", "ray", "--workers", "1", "--max-concurrency", "2"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = {r["index"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    want = stock(inputs)[0]
    assert sorted(records) == [0, 1, 2]
    for index, record in records.items():
        assert record["output"] == want[index][-1] and record["error"] is None


@pytest.mark.ray
def test_actors_that_cannot_start_fail_the_pool_once(ray_up: Any) -> None:
    from _fanout_crews import square

    from crewai_rust.tasks import PoolStartError
    from crewai_rust.tasks._ray import RayPool

    pool = RayPool(2, 1, {"NO_SUCH_COMPONENT": {}})  # every actor's patch() raises in __init__
    try:
        with pytest.raises(PoolStartError, match="Ray actor could not start"):
            pool.start()
        with pytest.raises(PoolStartError):
            pool.submit(square, 2)
        assert pool.replaced == 0 and pool.pids == []
    finally:
        pool.shutdown(kill=True)
