"""What CrewAI's own test suite found (issue 13): each cause, against a real patched CrewAI.

Every test here failed on the code before the fix; together with the ``crewai-suite``
tox env (CrewAI's own tests stock vs patched) they keep crewai_rust a drop-in.
"""

from __future__ import annotations

import asyncio
import copy
import pickle
from pathlib import Path
from typing import Any

import pytest

import crewai_rust
from crewai_rust.testing import ScriptedLLM

pytestmark = pytest.mark.crew


def _crew(cls: Any = None) -> Any:
    from crewai import Agent, Crew, Task

    agent = Agent(role="Researcher", goal="Answer about {topic}", backstory="Terse.", llm=ScriptedLLM(), max_retry_limit=0)
    task = Task(description="Research {topic}", expected_output="facts", agent=agent)
    return (cls or Crew)(agents=[agent], tasks=[task])


# -- cause 2: kickoff_for_each_async goes through each copy's kickoff_async --------


def test_kickoff_for_each_async_goes_through_a_wrapped_kickoff_async(use_rust: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Instrumentation wraps ``Crew.kickoff_async`` (``crew.copy()`` builds a plain ``Crew``, so a
    wrapper on the class is how it is done); the wrapped call must run once per input."""
    from crewai import Crew

    inputs = [{"topic": f"t{i}"} for i in range(4)]
    expected = [[t.raw for t in r.tasks_output] for r in _crew().kickoff_for_each(inputs)]
    seen: list[str] = []
    original = Crew.kickoff_async

    async def traced(self: Any, inputs: Any = None, input_files: Any = None, from_checkpoint: Any = None) -> Any:
        seen.append(inputs["topic"])
        return await original(self, inputs=inputs, input_files=input_files, from_checkpoint=from_checkpoint)

    crewai_rust.patch("tasks", tasks={"use_rust": use_rust, "max_concurrency": 2})
    monkeypatch.setattr(Crew, "kickoff_async", traced)
    got = asyncio.run(_crew().kickoff_for_each_async(inputs))
    assert [[t.raw for t in r.tasks_output] for r in got] == expected
    assert sorted(seen) == [i["topic"] for i in inputs]


def test_kickoff_for_each_async_honours_a_mocked_kickoff_async(use_rust: bool) -> None:
    from unittest.mock import patch

    from crewai import Crew

    async def fake(**kwargs: Any) -> str:
        return "mocked " + kwargs["inputs"]["topic"]

    crewai_rust.patch("tasks", tasks={"use_rust": use_rust, "max_concurrency": 2})
    with patch.object(Crew, "kickoff_async", side_effect=fake) as mocked:
        got = asyncio.run(_crew().kickoff_for_each_async([{"topic": "a"}, {"topic": "b"}, {"topic": "c"}]))
    assert got == ["mocked a", "mocked b", "mocked c"]
    assert mocked.call_count == 3


# -- cause 3: what the patch installs deep-copies and pickles like stock ------------


def _roundtrips(obj: Any) -> list[Any]:
    return [copy.deepcopy(obj), pickle.loads(pickle.dumps(obj)), copy.copy(obj)]


def test_flow_persistence_deepcopies_and_pickles(use_rust: bool, tmp_path: Path) -> None:
    crewai_rust.patch("database", database={"use_rust": use_rust})
    from crewai.flow.persistence.factory import default_flow_persistence

    persistence = default_flow_persistence()
    assert type(persistence).__name__ == "PooledFlowPersistence"
    persistence.save_state("flow-1", "begin", {"n": 1})
    for n, clone in enumerate(_roundtrips(persistence), start=1):
        assert type(clone) is type(persistence) and clone.db_path == persistence.db_path
        assert clone.load_state("flow-1") == {"n": n}
        clone.save_state("flow-1", "next", {"n": n + 1})
    assert persistence.load_state("flow-1") == {"n": 4}


def test_task_output_storage_and_handler_deepcopy_and_pickle(use_rust: bool, tmp_path: Path) -> None:
    crewai_rust.patch("database", database={"use_rust": use_rust})
    from crewai import Task
    from crewai.utilities.task_output_storage_handler import TaskOutputStorageHandler

    handler = TaskOutputStorageHandler()
    assert type(handler.storage).__name__ == "PooledTaskOutputsStorage"
    task = Task(description="d", expected_output="e")
    handler.storage.delete_all()
    handler.storage.add(task, {"raw": "x"}, task_index=0)
    for clone in _roundtrips(handler):
        assert clone.load() == handler.load()
    for clone in _roundtrips(handler.storage):
        assert [row["output"] for row in clone.load()] == [{"raw": "x"}]


def test_flow_with_persisted_method_named_like_a_config_field_builds() -> None:
    """CrewAI's test_flow_definition_detects_persist_metadata, reduced: a @persist method called
    ``checkpoint`` makes Flow deep-copy the persistence while the class is defined."""
    crewai_rust.patch("database")
    from crewai.flow.flow import Flow, listen, start
    from crewai.flow.persistence import persist

    @persist(verbose=False)
    class PersistedFlow(Flow[dict]):  # type: ignore[type-arg]
        initial_state: dict = {}  # type: ignore[type-arg]

        @start()
        def begin(self) -> str:
            return "started"

        @persist(verbose=False)
        @listen(begin)
        def checkpoint(self) -> str:
            return "saved"

    assert PersistedFlow.flow_definition().methods["checkpoint"].persist is not None


def test_lock_backend_deepcopies_and_pickles(tmp_path: Path) -> None:
    crewai_rust.patch("database", database={"lock_dir": str(tmp_path)})
    import crewai_core.lock_store as lock_store

    for clone in _roundtrips(lock_store._backend):
        with clone("compat-lock", timeout=5):
            pass
        assert clone.directory == str(tmp_path)


# -- cause 4: the pooled file is closed when its last user is gone -----------------


def test_pooled_task_output_file_closes_with_its_last_storage(use_rust: bool, tmp_path: Path) -> None:
    crewai_rust.patch("database", database={"use_rust": use_rust})
    import gc

    from crewai import Task
    from crewai.memory.storage.kickoff_task_outputs_storage import KickoffTaskOutputsSQLiteStorage

    from crewai_rust.database import _shared

    path = str(tmp_path / "outputs.db")
    first = KickoffTaskOutputsSQLiteStorage(db_path=path)
    second = KickoffTaskOutputsSQLiteStorage(db_path=path)
    first.add(Task(description="d", expected_output="e"), {"raw": "x"}, task_index=0)
    db = _shared.shared_database(path)
    del first
    gc.collect()
    assert not db.closed, "another storage still uses the pool"
    assert [r["output"] for r in second.load()] == [{"raw": "x"}]
    del second
    assert db.closed, "the last storage is gone: the file must not stay open"
    assert not _shared.open_paths()


# -- the Redis case: CrewAI's distributed lock is kept, and status() says so ---------


@pytest.fixture
def crewai_redis_mode(monkeypatch: pytest.MonkeyPatch) -> Any:
    """CrewAI's ``REDIS_URL`` lock mode against an in-process fakeredis server."""
    fakeredis = pytest.importorskip("fakeredis")
    import crewai_core.lock_store as lock_store

    server = fakeredis.FakeServer()
    monkeypatch.setenv("REDIS_URL", "redis://crewai-rust-test:6379/0")
    monkeypatch.setattr(lock_store, "_REDIS_URL", "redis://crewai-rust-test:6379/0")  # read at import
    monkeypatch.setattr(lock_store, "_redis_connection", lambda: fakeredis.FakeRedis(server=server))
    return server


def test_redis_lock_mode_is_kept_and_reported(crewai_redis_mode: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import crewai_core.lock_store as lock_store
    import portalocker

    used: list[str] = []
    real = portalocker.RedisLock

    class SpyRedisLock(real):  # type: ignore[misc,valid-type]
        def __init__(self, channel: str, *args: Any, **kwargs: Any) -> None:
            used.append(channel)
            super().__init__(channel, *args, **kwargs)

    monkeypatch.setattr(portalocker, "RedisLock", SpyRedisLock)
    state = crewai_rust.patch("database")["components"]["DATABASE"]
    assert state["enabled"], state
    assert lock_store._backend is None, "CrewAI's Redis/file selection must stay in charge"
    assert not any("set_lock_backend" in label for label in state["patched"])
    kept = [k for k in state["kept"] if k["target"] == "crewai_core.lock_store:set_lock_backend"]
    assert kept and "REDIS_URL" in kept[0]["reason"], state["kept"]

    held, release, outcome = threading.Event(), threading.Event(), []

    def holder() -> None:
        with lock_store.lock("compat-redis", timeout=5):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(5)
    try:
        with lock_store.lock("compat-redis", timeout=0.3):
            outcome.append("acquired while held")
    except portalocker.exceptions.BaseLockException:
        outcome.append("excluded")
    release.set()
    thread.join(5)
    assert outcome == ["excluded"], "the Redis lock must exclude"
    assert len(used) >= 2 and len(set(used)) == 1, used


def test_a_lock_backend_set_by_the_user_is_kept() -> None:
    import contextlib

    import crewai_core.lock_store as lock_store

    @contextlib.contextmanager
    def mine(name: str, *, timeout: float = 120) -> Any:
        yield

    lock_store.set_lock_backend(mine)
    try:
        state = crewai_rust.patch("database")["components"]["DATABASE"]
        assert lock_store._backend is mine
        assert [k["target"] for k in state["kept"]] == ["crewai_core.lock_store:set_lock_backend"]
        crewai_rust.unpatch()
        assert lock_store._backend is mine
    finally:
        lock_store.set_lock_backend(None)


def test_file_lock_mode_still_installs_ours() -> None:
    import crewai_core.lock_store as lock_store

    from crewai_rust.database._filelock import FileLockBackend

    assert not lock_store._redis_available()
    state = crewai_rust.patch("database")["components"]["DATABASE"]
    assert isinstance(lock_store._backend, FileLockBackend)
    assert state["kept"] == []
