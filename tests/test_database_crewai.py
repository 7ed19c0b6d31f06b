"""The CrewAI drop-ins: task outputs, flow persistence, activation, replay of an offline crew."""

from __future__ import annotations

import gc
import json
import sqlite3
import uuid
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from crewai.memory.storage.kickoff_task_outputs_storage import KickoffTaskOutputsSQLiteStorage as StockStorage
from crewai.utilities.crew_json_encoder import CrewJSONEncoder
from crewai.utilities.errors import DatabaseOperationError
from pydantic import BaseModel

import crewai_rust
from crewai_rust.database import _shared
from crewai_rust.database._task_outputs import PooledTaskOutputsStorage


class Verdict(BaseModel):
    ok: bool
    score: float


def _task(description: str = "Summarise the data") -> Any:
    from crewai import Task

    return Task(description=description, expected_output="a summary")


def _output(task: Any, raw: str) -> dict[str, Any]:
    return {
        "description": task.description,
        "summary": raw[:10],
        "raw": raw,
        "pydantic": Verdict(ok=True, score=0.5),
        "json_dict": {"when": datetime(2024, 5, 1, 12, 0), "id": uuid.UUID(int=7), "raw": b"\x00\xff"},
        "output_format": "raw",
        "agent": "Analyst",
        "messages": [{"role": "assistant", "content": "ünïcode ✓"}],
    }


@pytest.fixture(autouse=True)
def _fresh_pools() -> Any:
    yield
    _shared.close_all()


def _ours(path: Path, use_rust: bool) -> PooledTaskOutputsStorage:
    return PooledTaskOutputsStorage(str(path), use_rust=use_rust)


def test_ours_writes_stock_reads(tmp_path: Path, use_rust: bool) -> None:
    path = tmp_path / "latest_kickoff_task_outputs.db"
    ours = _ours(path, use_rust)
    assert ours.implementation == ("rust" if use_rust else "python")
    tasks = [_task(f"task {i}") for i in range(3)]
    for i, task in enumerate(tasks):
        ours.add(task, _output(task, f"result {i}"), i, inputs={"topic": "ai"})
    ours.update(1, output={"raw": "replayed"}, was_replayed=True)
    expected = ours.load()
    _shared.close_all()  # (overlap with stock is covered in test_database_library)

    stock_rows = StockStorage(str(path)).load()
    assert stock_rows == expected
    assert [r["task_id"] for r in stock_rows] == [str(t.id) for t in tasks]
    assert stock_rows[1]["output"] == {"raw": "replayed"} and stock_rows[1]["was_replayed"] == 1
    # Values are encoded as CrewJSONEncoder encodes them.
    stock_encoded = json.loads(json.dumps(_output(tasks[0], "result 0"), cls=CrewJSONEncoder))
    assert stock_rows[0]["output"] == stock_encoded
    # The crewai CLI's reader sees the same rows.
    from crewai_cli.task_outputs import load_task_outputs

    with warnings.catch_warnings():
        # The CLI reader leaves its connection to the garbage collector (`with sqlite3.connect()`
        # does not close); Python 3.13 warns about that. CrewAI's defect, not ours.
        warnings.simplefilter("ignore", ResourceWarning)
        cli_rows = load_task_outputs(str(path))
        gc.collect()
    assert [r["output"] for r in cli_rows] == [r["output"] for r in expected]


def test_stock_writes_ours_reads(tmp_path: Path, use_rust: bool) -> None:
    path = tmp_path / "latest_kickoff_task_outputs.db"
    stock = StockStorage(str(path))
    tasks = [_task(f"task {i}") for i in range(3)]
    for i, task in enumerate(tasks):
        stock.add(task, _output(task, f"result {i}"), i, inputs={"n": i})
    stock.update(2, output={"raw": "again"}, was_replayed=True)
    expected = stock.load()

    ours = _ours(path, use_rust)
    assert ours.load() == expected
    ours.delete_all()
    assert ours.load() == []


def test_old_schema_without_task_key_is_migrated(tmp_path: Path, use_rust: bool) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE latest_kickoff_task_outputs (task_id TEXT PRIMARY KEY, expected_output TEXT, "
            "output JSON, task_index INTEGER, inputs JSON, was_replayed BOOLEAN, "
            "timestamp DATETIME DEFAULT CURRENT_TIMESTAMP)"
        )
    conn.close()
    ours = _ours(path, use_rust)
    task = _task()
    ours.add(task, {"raw": "x"}, 0)
    assert ours.load()[0]["task_key"] == task.key


def test_bad_update_is_refused_and_changes_nothing(tmp_path: Path, use_rust: bool) -> None:
    ours = _ours(tmp_path / "t.db", use_rust)
    task = _task()
    ours.add(task, {"raw": "x"}, 0)
    before = ours.load()
    with pytest.raises(DatabaseOperationError, match="no such column"):
        ours.update(0, raw="x; DROP TABLE latest_kickoff_task_outputs")
    with pytest.raises(DatabaseOperationError, match="no such column"):
        ours.update(0, **{"output = 'x' --": "y"})
    assert ours.load() == before


def test_unwritable_location_raises_crewai_error(tmp_path: Path, use_rust: bool) -> None:
    with pytest.raises(DatabaseOperationError, match="initialization"):
        _ours(tmp_path / "missing-dir" / "t.db", use_rust)


def test_handler_update_does_not_reload_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_rust: bool
) -> None:
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    crewai_rust.patch("database", database={"use_rust": use_rust})
    from crewai.utilities.task_output_storage_handler import TaskOutputStorageHandler

    handler = TaskOutputStorageHandler()
    assert isinstance(handler.storage, PooledTaskOutputsStorage)
    assert handler.storage.implementation == ("rust" if use_rust else "python")

    def no_reload() -> None:
        raise AssertionError("update() reloaded the whole table")

    monkeypatch.setattr(handler.storage, "load", no_reload)
    task = _task()
    log = {"task": task, "output": _output(task, "r"), "task_index": 0, "inputs": {}, "was_replayed": False}
    handler.update(0, log)
    handler.update(0, {**log, "output": {"raw": "second"}, "was_replayed": True})
    monkeypatch.undo()
    rows = handler.load()
    assert len(rows) == 1 and rows[0]["output"] == {"raw": "second"} and rows[0]["was_replayed"] == 1


def test_patch_installs_and_unpatch_restores_by_identity(use_rust: bool) -> None:
    import crewai.memory.storage.kickoff_task_outputs_storage as storage_module
    import crewai.utilities.task_output_storage_handler as handler_module
    import crewai_core.lock_store as lock_store
    from crewai.flow.persistence import factory

    before = (
        storage_module.KickoffTaskOutputsSQLiteStorage,
        handler_module.KickoffTaskOutputsSQLiteStorage,
        handler_module.TaskOutputStorageHandler.update,
        factory._factory,
        lock_store._backend,
    )
    state = crewai_rust.patch("database", database={"use_rust": use_rust})["components"]["DATABASE"]
    assert state["enabled"] and state["missing"] == [], state
    assert state["implementation"] == ("rust" if use_rust else "python")
    assert handler_module.KickoffTaskOutputsSQLiteStorage is PooledTaskOutputsStorage
    assert type(factory.default_flow_persistence()).__name__ == "PooledFlowPersistence"
    assert lock_store._backend is not None
    crewai_rust.unpatch()
    after = (
        storage_module.KickoffTaskOutputsSQLiteStorage,
        handler_module.KickoffTaskOutputsSQLiteStorage,
        handler_module.TaskOutputStorageHandler.update,
        factory._factory,
        lock_store._backend,
    )
    assert all(a is b for a, b in zip(before, after))


def test_parts_can_be_left_out() -> None:
    import crewai.utilities.task_output_storage_handler as handler_module
    import crewai_core.lock_store as lock_store
    from crewai.flow.persistence import factory

    stock_storage, stock_factory = handler_module.KickoffTaskOutputsSQLiteStorage, factory._factory
    state = crewai_rust.patch("database", database={"task_outputs": False, "flows": False})
    assert state["components"]["DATABASE"]["enabled"]
    assert handler_module.KickoffTaskOutputsSQLiteStorage is stock_storage and factory._factory is stock_factory
    assert lock_store._backend is not None


def test_patch_options_are_validated() -> None:
    state = crewai_rust.patch("database", database={"pool_size": 0})["components"]["DATABASE"]
    assert not state["enabled"] and "pool_size" in state["error"]
    crewai_rust.unpatch()
    state = crewai_rust.patch("database", database={"bogus": 1})["components"]["DATABASE"]
    assert not state["enabled"] and "bogus" in state["error"]


# -- flow persistence ---------------------------------------------------------


class CounterState(BaseModel):
    id: str = ""
    count: int = 0
    notes: list[str] = []


def _flow_class(persistence: Any) -> Any:
    from crewai.flow.flow import Flow, listen, start
    from crewai.flow.persistence import persist

    @persist(persistence)
    class CounterFlow(Flow[CounterState]):
        @start()
        def one(self) -> None:
            self.state.count += 1
            self.state.notes.append(f"one@{self.state.count}")

        @listen(one)
        def two(self) -> int:
            self.state.count += 10
            return self.state.count

    return CounterFlow


def _stock_flows(path: Path) -> Any:
    from crewai.flow.persistence.sqlite import SQLiteFlowPersistence

    return SQLiteFlowPersistence(str(path))


def _our_flows(path: Path) -> Any:
    from crewai_rust.database._flow_persistence import PooledFlowPersistence

    return PooledFlowPersistence(str(path))


@pytest.mark.parametrize("first", ["ours", "stock"])
def test_flow_persisted_by_one_resumes_under_the_other(tmp_path: Path, use_rust: bool, first: str) -> None:
    _shared.configure(use_rust=use_rust)
    try:
        path = tmp_path / "flow_states.db"
        makers = {"ours": _our_flows, "stock": _stock_flows}
        second = "stock" if first == "ours" else "ours"

        flow = _flow_class(makers[first](path))(suppress_flow_events=True)
        assert flow.kickoff() == 11
        flow_id = flow.state.id
        _shared.close_all()  # each side opens the file afresh, as a resumed run would

        resumed = _flow_class(makers[second](path))(suppress_flow_events=True)
        assert resumed.kickoff(inputs={"id": flow_id}) == 22
        assert resumed.state.notes == ["one@1", "one@12"]
        _shared.close_all()

        with sqlite3.connect(path) as conn:
            methods = [r[0] for r in conn.execute("SELECT method_name FROM flow_states ORDER BY id")]
        conn.close()
        assert methods == ["one", "two", "one", "two"]
    finally:
        _shared.configure(use_rust=_shared.Settings().use_rust)


def test_pending_feedback_round_trips_between_ours_and_stock(tmp_path: Path, use_rust: bool) -> None:
    from crewai.flow.async_feedback.types import PendingFeedbackContext

    _shared.configure(use_rust=use_rust)
    try:
        path = tmp_path / "flow_states.db"
        context = PendingFeedbackContext(
            flow_id="f-1", flow_class="tests.Flow", method_name="review", method_output={"draft": "v1"}, message="ok?"
        )
        ours = _our_flows(path)
        ours.save_pending_feedback("f-1", context, {"id": "f-1", "step": 2})
        assert ours.load_state("f-1") == {"id": "f-1", "step": 2}
        _shared.close_all()
        stock = _stock_flows(path)
        state, loaded = stock.load_pending_feedback("f-1")
        assert state == {"id": "f-1", "step": 2} and loaded.method_output == {"draft": "v1"}
        stock.clear_pending_feedback("f-1")
        stock.save_pending_feedback("f-2", context, {"id": "f-2"})
        ours = _our_flows(path)
        assert ours.load_pending_feedback("f-1") is None
        state, loaded = ours.load_pending_feedback("f-2")
        assert state == {"id": "f-2"} and loaded.message == "ok?"
    finally:
        _shared.configure(use_rust=_shared.Settings().use_rust)


# -- a real offline crew --------------------------------------------------------


@pytest.mark.crew
def test_offline_crew_kickoff_then_replay_runs_on_our_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_rust: bool
) -> None:
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    crewai_rust.patch("database", database={"use_rust": use_rust})
    calls: list[int] = []
    original_add = PooledTaskOutputsStorage.add

    def counting_add(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        original_add(self, *args, **kwargs)

    monkeypatch.setattr(PooledTaskOutputsStorage, "add", counting_add)
    llm = ScriptedLLM()
    agent = Agent(role="Analyst", goal="Analyse", backstory="Careful.", llm=llm)
    tasks = [
        Task(description=f"Step {i}: describe topic {{topic}}", expected_output=f"answer {i}", agent=agent)
        for i in range(3)
    ]
    crew = Crew(agents=[agent], tasks=tasks)
    assert isinstance(crew._task_output_handler.storage, PooledTaskOutputsStorage)
    assert crew._task_output_handler.storage.implementation == ("rust" if use_rust else "python")
    result = crew.kickoff(inputs={"topic": "sqlite"})
    assert result.raw
    assert len(calls) == 3
    stored = crew._task_output_handler.load()
    assert [r["task_index"] for r in stored] == [0, 1, 2]
    assert stored[0]["inputs"] == {"topic": "sqlite"}

    llm_calls = llm.calls
    replayed = crew.replay(str(tasks[1].id))
    assert replayed.raw
    assert llm.calls > llm_calls  # tasks 1 and 2 ran again
    rows = crew._task_output_handler.load()
    assert [r["was_replayed"] for r in rows] == [0, 1, 1]
    # Stock reads what the patched crew wrote (pools closed first: one SQLite per file per process).
    crewai_rust.unpatch()
    assert [r["task_id"] for r in StockStorage(str(tmp_path / "latest_kickoff_task_outputs.db")).load()] == [
        str(t.id) for t in tasks
    ]


def test_patched_lock_store_blocks_on_our_file_lock(tmp_path: Path) -> None:
    import threading

    import crewai_core.lock_store as lock_store

    from crewai_rust.database._filelock import LockTimeoutError

    crewai_rust.patch("database", database={"lock_dir": str(tmp_path)})
    name = f"sqlite:{tmp_path / 'x.db'}"
    errors: list[BaseException] = []
    with lock_store.lock(name, timeout=5):
        assert list(tmp_path.glob("crewai:*.lock"))  # our backend made the lock file here

        def contender() -> None:
            try:
                with lock_store.lock(name, timeout=0.05):
                    pass
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=contender)
        thread.start()
        thread.join()
    assert len(errors) == 1 and isinstance(errors[0], LockTimeoutError) and name in str(errors[0])
    with lock_store.lock(name, timeout=0.05):
        pass
