"""Issue 17, DATABASE: task outputs, flow state and locks on PostgreSQL behave as their SQLite twins.

Every parity test runs the same calls on the SQLite backend (under both SQLite twins,
via ``use_rust``) and on the PostgreSQL backend and compares the results. Faults: bad
URLs and servers, NUL bytes, dropped connections and a server restart mid-run.
"""

from __future__ import annotations

import threading
from datetime import datetime
import time
from pathlib import Path
from typing import Any

import pytest
from crewai.utilities.errors import DatabaseOperationError
from pydantic import BaseModel

import crewai_rust
from crewai_rust._postgres import PostgresError, PostgresUnavailableError
from crewai_rust.database import _pg, _shared
from crewai_rust.database._filelock import FileLockBackend, LockTimeoutError
from crewai_rust.database._task_outputs import PooledTaskOutputsStorage

pytest.importorskip("psycopg")

from crewai_rust.database._pg_flow_persistence import PostgresFlowPersistence  # noqa: E402
from crewai_rust.database._pg_lock import PostgresLockBackend  # noqa: E402
from crewai_rust.database._pg_task_outputs import PostgresTaskOutputsStorage  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_pools() -> Any:
    yield
    _shared.close_all()
    _pg.close_all()


class Verdict(BaseModel):
    ok: bool
    score: float


def _task(description: str) -> Any:
    from crewai import Task

    return Task(description=description, expected_output=f"expected for {description}")


def _output(task: Any, raw: str) -> dict[str, Any]:
    return {
        "description": task.description,
        "raw": raw,
        "pydantic": Verdict(ok=True, score=0.5),
        "json_dict": {"nul": "a\x00b", "nan": float("nan"), "big": 2**70},
        "messages": [{"role": "assistant", "content": "ünïcode ✓"}],
    }


def _script(storage: Any, tasks: list[Any]) -> list[Any]:
    """The same calls on either backend; returns what each observable step gave back."""
    seen: list[Any] = []
    for i, task in enumerate(tasks[:3]):
        storage.add(task, _output(task, f"result {i}"), i, inputs={"topic": "pg", "i": i})
    storage.add(tasks[3], {"raw": "same index as task 1"}, 1)  # a tie on task_index
    storage.add(tasks[1], _output(tasks[1], "replaced"), 1, was_replayed=True)  # replace: goes after the tie
    seen.append(storage.load())
    storage.update(2, output={"raw": "updated"}, was_replayed=True, expected_output="changed")
    storage.update(7, output={"raw": "no such row"})
    for bad in ({"raw": "x; DROP TABLE latest_kickoff_task_outputs"}, {"output = 'x' --": "y"}):
        with pytest.raises(DatabaseOperationError, match="no such column") as info:
            storage.update(0, **bad)
        seen.append(type(info.value).__name__)
    seen.append(storage.load())
    storage.delete_all()
    seen.append(storage.load())
    return seen


def _without_timestamps(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_timestamps(v) for v in value]
    if isinstance(value, dict) and "timestamp" in value:
        stamp = value["timestamp"]
        assert isinstance(stamp, str) and time.strptime(stamp, "%Y-%m-%d %H:%M:%S")  # SQLite's format
        return {k: v for k, v in value.items() if k != "timestamp"}
    return value


def test_task_outputs_give_the_same_results_as_the_sqlite_twin(tmp_path: Path, pg_url: str, use_rust: bool) -> None:
    tasks = [_task(f"task {i}") for i in range(4)]
    sqlite_seen = _script(PooledTaskOutputsStorage(str(tmp_path / "t.db"), use_rust=use_rust), tasks)
    pg = PostgresTaskOutputsStorage(url=pg_url)
    assert pg.implementation == "postgresql"
    pg_seen = _script(pg, tasks)
    assert _without_timestamps(pg_seen) == _without_timestamps(sqlite_seen)
    first = pg_seen[0]
    assert [r["task_id"] for r in first] == [str(tasks[0].id), str(tasks[3].id), str(tasks[1].id), str(tasks[2].id)]
    assert first[2]["was_replayed"] == 1 and first[0]["output"]["json_dict"]["nul"] == "a\x00b"


def test_patched_handler_uses_postgres_and_reads_another_instance(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CREWAI_RUST_DATABASE_URL", pg_url)
    state = crewai_rust.patch("database")["components"]["DATABASE"]
    assert state["enabled"] and state["missing"] == [], state
    assert state["stats"]["backend"] == "postgresql"
    from crewai.utilities.task_output_storage_handler import TaskOutputStorageHandler

    writer, reader = TaskOutputStorageHandler(), TaskOutputStorageHandler()
    assert isinstance(writer.storage, PostgresTaskOutputsStorage)
    task = _task("handler")
    writer.update(0, {"task": task, "output": {"raw": "r"}, "task_index": 0, "inputs": {}, "was_replayed": False})
    assert [r["output"] for r in reader.load()] == [{"raw": "r"}]
    # An explicit file path still means that SQLite file, as stock.
    from crewai.memory.storage import kickoff_task_outputs_storage as module

    assert isinstance(module.KickoffTaskOutputsSQLiteStorage(str(tmp_path / "explicit.db")), PooledTaskOutputsStorage)
    crewai_rust.unpatch()
    assert module.KickoffTaskOutputsSQLiteStorage.__module__ == "crewai.memory.storage.kickoff_task_outputs_storage"


def test_schema_separates_tenants(pg_url: str) -> None:
    a = PostgresTaskOutputsStorage(url=pg_url, schema="tenant_a")
    b = PostgresTaskOutputsStorage(url=pg_url, schema="tenant_b")
    a.add(_task("a"), {"raw": "a"}, 0)
    assert [r["output"] for r in a.load()] == [{"raw": "a"}] and b.load() == []
    with pytest.raises(ValueError, match="plain identifier"):
        PostgresTaskOutputsStorage(url=pg_url, schema='x"; DROP SCHEMA public; --')


def test_nul_in_a_text_column_is_a_clear_error_and_stores_nothing(pg_url: str) -> None:
    from crewai import Task

    storage = PostgresTaskOutputsStorage(url=pg_url)
    task = Task(description="d", expected_output="bad\x00value")
    with pytest.raises(DatabaseOperationError, match="NUL") as info:
        storage.add(task, {"raw": "x"}, 0)
    assert "saving task outputs" in str(info.value)
    assert storage.load() == []
    flows = PostgresFlowPersistence(pg_url)
    with pytest.raises(PostgresError, match="NUL"):
        flows.save_state("id\x00x", "m", {"id": "x"})
    with pytest.raises(ValueError, match="state_data must be"):
        flows.save_state("f", "m", ["not", "a", "dict"])  # type: ignore[arg-type]


# -- faults: bad servers, secret-free messages -----------------------------------


def test_wrong_password_missing_database_unreachable_are_clear(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    cases = [(pg_url.rsplit("/", 1)[0] + "/no_such_db", "does not exist"), ("postgresql://u:pw-secret@127.0.0.1:1/db", "127.0.0.1:1")]
    if hasattr(pg_server, "password"):
        cases.append((pg_url.replace(pg_server.password, "wrong-secret-value"), "password authentication failed"))
    for url, reason in cases:
        _pg.close_all()
        with pytest.raises(DatabaseOperationError, match=reason) as info:
            PostgresTaskOutputsStorage(url=url)
        with pytest.raises(PostgresUnavailableError, match=reason) as flow_info:
            PostgresFlowPersistence(url)
        with pytest.raises(PostgresUnavailableError, match=reason) as lock_info:
            with PostgresLockBackend(url, retry_timeout=0)("x", timeout=1):
                pass
        for text in (str(info.value), str(flow_info.value), str(lock_info.value)):
            assert "wrong-secret-value" not in text and "pw-secret" not in text
            if hasattr(pg_server, "password"):
                assert pg_server.password not in text


def test_patch_validates_url_schema_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [
        ({"url": "postgresql://u:topsecret@h:notaport/db"}, "malformed"),
        ({"url": "postgresql://u@h/db", "schema": "no-dashes"}, "plain identifier"),
        ({"url": "postgresql://u@h/db", "retry_timeout": -1}, "retry_timeout"),
        ({"url": "postgresql://u@h/db", "bogus": 1}, "bogus"),
    ]
    for options, reason in cases:
        state = crewai_rust.patch("database", database=options)["components"]["DATABASE"]
        assert not state["enabled"] and reason in state["error"], state
        assert "topsecret" not in state["error"]
        crewai_rust.unpatch()
    state = crewai_rust.patch("database", database={"url": "postgresql://u:topsecret@h/d\x00b"})["components"]
    assert not state["DATABASE"]["enabled"] and "NUL" in state["DATABASE"]["error"]
    crewai_rust.unpatch()
    monkeypatch.setenv("CREWAI_RUST_DATABASE_URL", "postgresql://u:topsecret@h:99999999/db")
    state = crewai_rust.patch("database")["components"]
    assert not state["DATABASE"]["enabled"] and "malformed" in state["DATABASE"]["error"]
    assert "topsecret" not in state["DATABASE"]["error"]
    crewai_rust.unpatch()
    monkeypatch.setenv("CREWAI_RUST_DATABASE_URL", "postgresql://u@h/db")
    for env, value, reason in [("CREWAI_RUST_DB_RETRY_TIMEOUT", "soon", "expected a number"),
                               ("CREWAI_RUST_DATABASE_SCHEMA", "a.b", "plain identifier")]:
        monkeypatch.setenv(env, value)
        state = crewai_rust.patch("database")["components"]["DATABASE"]
        assert not state["enabled"] and reason in state["error"], state
        crewai_rust.unpatch()
        monkeypatch.delenv(env)
    monkeypatch.setenv("CREWAI_RUST_DATABASE_SCHEMA", "from_env")
    state = crewai_rust.patch("database")["components"]["DATABASE"]
    assert state["enabled"] and state["stats"]["schema"] == "from_env"  # valid: nothing connects yet
    monkeypatch.delenv("CREWAI_RUST_DATABASE_SCHEMA")
    # Nothing leaked into the settings of a later, SQLite-only patch.
    monkeypatch.delenv("CREWAI_RUST_DATABASE_URL")
    crewai_rust.unpatch()
    assert crewai_rust.patch("database")["components"]["DATABASE"]["stats"] == {"backend": "sqlite"}


def test_flow_persistence_dump_holds_no_url(pg_server, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    flows = PostgresFlowPersistence(pg_url)
    dumped = flows.model_dump(mode="json")
    assert dumped == {"persistence_type": "PostgresFlowPersistence", "db_schema": "public"}
    assert "url" not in repr(flows)
    # CrewAI restores persistence from such a dump by name; the URL comes from the configuration.
    from crewai.flow.persistence.base import _persistence_registry

    monkeypatch.setenv("CREWAI_RUST_DATABASE_URL", pg_url)
    restored = _persistence_registry["PostgresFlowPersistence"].model_validate(dumped)
    flows.save_state("f-1", "m", {"id": "f-1", "n": 1})
    assert restored.load_state("f-1") == {"id": "f-1", "n": 1}


# -- flows: parity ------------------------------------------------------------------


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


def _flow_script(make: Any) -> list[Any]:
    from crewai.flow.async_feedback.types import PendingFeedbackContext

    seen: list[Any] = []
    flow = _flow_class(make())(suppress_flow_events=True)
    seen.append(flow.kickoff())
    flow_id = flow.state.id
    resumed = _flow_class(make())(suppress_flow_events=True)
    seen.append(resumed.kickoff(inputs={"id": flow_id}))
    persistence = make()
    seen.append({k: v for k, v in persistence.load_state(flow_id).items() if k != "id"})
    seen.append(persistence.load_state("missing"))
    context = PendingFeedbackContext(
        flow_id="f-1", flow_class="tests.Flow", method_name="review", method_output={"draft": "v1"}, message="ok?",
        requested_at=datetime(2024, 5, 1, 12, 0),
    )
    persistence.save_pending_feedback("f-1", context, {"id": "f-1", "step": 2})
    persistence.save_pending_feedback("f-1", context, {"id": "f-1", "step": 3})  # replaces the marker
    state, loaded = persistence.load_pending_feedback("f-1")
    seen.append((state, loaded.to_dict()))
    seen.append(persistence.load_state("f-1"))
    persistence.clear_pending_feedback("f-1")
    seen.append(persistence.load_pending_feedback("f-1"))
    return seen


def test_flows_give_the_same_results_as_the_sqlite_twin(tmp_path: Path, pg_url: str, use_rust: bool) -> None:
    from crewai_rust.database._flow_persistence import PooledFlowPersistence

    _shared.configure(use_rust=use_rust)
    try:
        sqlite_seen = _flow_script(lambda: PooledFlowPersistence(str(tmp_path / "flows.db")))
    finally:
        _shared.configure(use_rust=_shared.Settings().use_rust)
    pg_seen = _flow_script(lambda: PostgresFlowPersistence(pg_url))
    assert pg_seen == sqlite_seen
    assert pg_seen[:2] == [11, 22]


def test_patched_default_flow_persistence_is_postgres(pg_url: str) -> None:
    crewai_rust.patch("database", database={"url": pg_url, "schema": "flows_here"})
    from crewai.flow.persistence.factory import default_flow_persistence

    persistence = default_flow_persistence()
    assert isinstance(persistence, PostgresFlowPersistence) and persistence.db_schema == "flows_here"
    flow = _flow_class(None)(suppress_flow_events=True)  # @persist() takes the default: ours
    assert flow.kickoff() == 11
    assert PostgresFlowPersistence(pg_url, db_schema="flows_here").load_state(flow.state.id)["count"] == 11


# -- locks: parity --------------------------------------------------------------------


@pytest.fixture(params=["file", "postgresql"])
def lock_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "file":
        return FileLockBackend(str(tmp_path))
    url = request.getfixturevalue("pg_url")
    return PostgresLockBackend(url, directory=str(tmp_path))


def test_lock_excludes_threads(lock_backend: Any) -> None:
    inside = 0
    overlaps: list[int] = []
    done: list[int] = []

    def work(n: int) -> None:
        nonlocal inside
        for _ in range(5):
            with lock_backend("sqlite:/some/db", timeout=30):
                inside += 1
                if inside != 1:
                    overlaps.append(inside)
                time.sleep(0.002)
                inside -= 1
                done.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [] and sorted(done) == sorted(n for n in range(4) for _ in range(5))


@pytest.mark.parametrize("timeout", [0, 0.05])
def test_lock_timeout_matches_the_file_lock(lock_backend: Any, timeout: float) -> None:
    import portalocker.exceptions

    errors: list[BaseException] = []
    with lock_backend("lancedb:/data/memory", timeout=5):

        def contender() -> None:
            try:
                with lock_backend("lancedb:/data/memory", timeout=timeout):
                    pass
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=contender)
        t.start()
        t.join()
        with lock_backend("another name", timeout=timeout):  # other names are free
            pass
    assert len(errors) == 1 and isinstance(errors[0], LockTimeoutError)
    assert isinstance(errors[0], portalocker.exceptions.LockException) and isinstance(errors[0], TimeoutError)
    assert "lancedb:/data/memory" in str(errors[0]) and errors[0].name == "lancedb:/data/memory"
    with lock_backend("lancedb:/data/memory", timeout=timeout):  # free again
        pass


def test_advisory_lock_excludes_another_session_without_the_lock_file(pg_url: str, tmp_path: Path) -> None:
    """Two backends with separate lock dirs stand for two machines: only the server excludes them."""
    here = PostgresLockBackend(pg_url, directory=str(tmp_path / "a"))
    there = PostgresLockBackend(pg_url, directory=str(tmp_path / "b"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with here("shared-name", timeout=5):
        with pytest.raises(LockTimeoutError, match="another process or machine"):
            with there("shared-name", timeout=0.1):
                pass
        other_tenant = PostgresLockBackend(pg_url, schema="other", directory=str(tmp_path / "b"))
        with other_tenant("shared-name", timeout=0.1):  # the schema is the lock namespace
            pass
    with there("shared-name", timeout=0.1):
        pass


def test_lock_keys_are_stable() -> None:
    # A lock must map to the same key in every process and on every machine (no salted hash()).
    assert _pg.lock_key("public", "sqlite:/x") == _pg.lock_key("public", "sqlite:/x")
    assert _pg.lock_key("public", "sqlite:/x") != _pg.lock_key("other", "sqlite:/x")
    assert _pg.lock_key("public", "crewai") == 6633026749964190176  # pinned: a change breaks mixed-version fleets
    assert -(2**63) <= _pg.lock_key("public", "") < 2**63


# -- dropped connections and a restart mid-run -----------------------------------


def _kill_our_connections(pg_server: Any, url: str) -> None:
    database = url.rsplit("/", 1)[1].split("?")[0]
    pg_server.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND application_name LIKE 'crewai_rust%'"
    )


def test_dropped_connections_are_retried(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    if not hasattr(pg_server, "psql"):
        pytest.skip("external server")
    storage = PostgresTaskOutputsStorage(url=pg_url)
    flows = PostgresFlowPersistence(pg_url)
    tasks = [_task(f"drop {i}") for i in range(4)]
    storage.add(tasks[0], {"raw": "before"}, 0)
    flows.save_state("f", "one", {"id": "f", "n": 1})
    _kill_our_connections(pg_server, pg_url)
    storage.add(tasks[1], {"raw": "after"}, 1)
    flows.save_state("f", "two", {"id": "f", "n": 2})
    _kill_our_connections(pg_server, pg_url)
    assert [r["output"]["raw"] for r in storage.load()] == ["before", "after"]
    assert flows.load_state("f") == {"id": "f", "n": 2}
    assert _pg.database(pg_url).retries >= 2  # our retry ran: each kill cut off the next call
    lock = PostgresLockBackend(pg_url)
    with lock("after-drop", timeout=5):
        pass
    _kill_our_connections(pg_server, pg_url)
    with lock("after-drop", timeout=5):
        pass


def test_a_call_cut_off_after_its_write_is_retried_and_writes_once(pg_url: str) -> None:
    """The in-doubt case: the insert ran, then the connection died before the reply came back."""
    flows = PostgresFlowPersistence(pg_url)
    db = _pg.database(pg_url)
    attempts: list[int] = []
    row = ("cut", "step", "2024-01-01T00:00:00+00:00", '{"id": "cut"}', __import__("uuid").uuid4())

    def work(conn: Any) -> None:
        flows._insert_state(conn, row)
        attempts.append(1)
        if len(attempts) == 1:
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    before = db.retries
    db.run(work)
    assert len(attempts) == 2 and db.retries == before + 1
    with db.pool().connection() as conn:
        assert conn.execute("SELECT count(*) FROM flow_states WHERE flow_uuid = 'cut'").fetchone() == (1,)
    assert flows.load_state("cut") == {"id": "cut"}


def test_errors_that_are_not_connection_losses_are_not_retried(pg_url: str) -> None:
    db = _pg.database(pg_url)
    attempts: list[int] = []

    def work(conn: Any) -> None:
        attempts.append(1)
        conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(PostgresError, match="no_such_table") as info:
        db.run(work)
    assert attempts == [1] and not isinstance(info.value, PostgresUnavailableError)


def test_lost_lock_is_reported_when_released(pg_server, pg_url: str, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    if not hasattr(pg_server, "psql"):
        pytest.skip("external server")
    lock = PostgresLockBackend(pg_url)
    with caplog.at_level("WARNING", logger="crewai_rust"):
        with lock("will-be-lost", timeout=5):
            _kill_our_connections(pg_server, pg_url)
    assert lock.lost == 1 and "was lost while held" in caplog.text
    assert "***" in caplog.text or getattr(pg_server, "password", "") not in caplog.text


def test_server_restart_mid_run_loses_no_acknowledged_write(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    if not hasattr(pg_server, "restart"):
        pytest.skip("external server")
    storage = PostgresTaskOutputsStorage(url=pg_url)
    flows = PostgresFlowPersistence(pg_url)
    acknowledged: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set() or i < 40:
            try:
                flows.save_state("restarted", "step", {"id": "restarted", "i": i})
                storage.add(_task(f"restart {i}"), {"raw": str(i)}, i)
            except BaseException as exc:  # a failure is reported, never swallowed
                errors.append(exc)
                return
            acknowledged.append(i)
            i += 1

    started = storage._db().run(lambda conn: conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0])
    thread = threading.Thread(target=writer)
    thread.start()
    while len(acknowledged) < 20 and thread.is_alive():
        time.sleep(0.01)
    pg_server.restart()
    stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive() and errors == []
    assert len(acknowledged) >= 40
    restarted = storage._db().run(lambda conn: conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0])
    assert restarted > started  # the server really went away mid-run
    assert _pg.database(pg_url).retries >= 1  # and a call met a dead connection and was re-run
    stored = {int(r["output"]["raw"]) for r in storage.load()}
    assert set(acknowledged) <= stored
    with _pg.database(pg_url).pool().connection() as conn:
        rows = conn.execute("SELECT state_json::json->>'i' FROM flow_states WHERE flow_uuid = 'restarted'").fetchall()
    written = [int(r[0]) for r in rows]
    assert set(acknowledged) <= set(written) and len(written) == len(set(written))  # none lost, none twice


def test_concurrent_first_use_creates_the_tables_once(pg_url: str) -> None:
    """Sessions racing on ``CREATE TABLE IF NOT EXISTS`` collide in the catalog unless serialised."""
    from crewai_rust.database._pg_flow_persistence import _TABLES
    from crewai_rust.database._pg_flow_persistence import _ddl as flow_ddl
    from crewai_rust.database._pg_task_outputs import _ddl as output_ddl

    for attempt in range(3):
        schema = f"race_{attempt}"
        dbs = [_pg.PgDatabase(pg_url, pool_size=1) for _ in range(6)]
        barrier = threading.Barrier(len(dbs))
        errors: list[BaseException] = []

        def first_use(db: _pg.PgDatabase, schema: str = schema) -> None:
            try:
                db.pool()
                barrier.wait()
                db.ensure("outputs", ["latest_kickoff_task_outputs"], output_ddl(schema), schema)
                db.ensure("flows", _TABLES, flow_ddl(schema), schema)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=first_use, args=(db,)) for db in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for db in dbs:
            db.close()
        assert errors == []
        storage = PostgresTaskOutputsStorage(url=pg_url, schema=schema)
        storage.add(_task("after the race"), {"raw": "ok"}, 0)
        assert [r["output"] for r in storage.load()] == [{"raw": "ok"}]


def test_parts_copy_and_pickle_without_their_pools(pg_url: str) -> None:
    import copy
    import pickle

    storage = PostgresTaskOutputsStorage(url=pg_url)
    flows = PostgresFlowPersistence(pg_url)
    lock = PostgresLockBackend(pg_url)
    storage.add(_task("copied"), {"raw": "c"}, 0)
    for clone in (copy.deepcopy(storage), pickle.loads(pickle.dumps(storage))):
        assert isinstance(clone, PostgresTaskOutputsStorage) and clone.load() == storage.load()
    flows.save_state("copied", "m", {"id": "copied"})
    for clone in (copy.deepcopy(flows), pickle.loads(pickle.dumps(flows))):
        assert clone.load_state("copied") == {"id": "copied"}
    for clone in (copy.deepcopy(lock), pickle.loads(pickle.dumps(lock))):
        with clone("copied", timeout=1):
            with pytest.raises(LockTimeoutError):
                with lock("copied", timeout=0):
                    pass


@pytest.mark.parametrize("timeout", [None, -1, float("inf")])
def test_lock_without_a_finite_timeout_waits_for_the_holder(lock_backend: Any, timeout: Any) -> None:
    order: list[str] = []
    held = threading.Event()

    def holder() -> None:
        with lock_backend("forever", timeout=5):
            held.set()
            time.sleep(0.2)
            order.append("holder out")

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    with lock_backend("forever", timeout=timeout):
        order.append("waiter in")
    t.join()
    assert order == ["holder out", "waiter in"]


@pytest.mark.crew
def test_offline_crew_kickoff_then_replay_on_postgres(pg_url: str, use_rust: bool, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    crewai_rust.patch("database", database={"url": pg_url, "use_rust": use_rust})
    llm = ScriptedLLM()
    agent = Agent(role="Analyst", goal="Analyse", backstory="Careful.", llm=llm)
    tasks = [Task(description=f"Step {i}: about {{topic}}", expected_output=f"answer {i}", agent=agent) for i in range(3)]
    crew = Crew(agents=[agent], tasks=tasks)
    assert isinstance(crew._task_output_handler.storage, PostgresTaskOutputsStorage)
    assert crew.kickoff(inputs={"topic": "pg"}).raw
    calls = llm.calls
    assert crew.replay(str(tasks[1].id)).raw and llm.calls > calls
    rows = PostgresTaskOutputsStorage(url=pg_url).load()
    assert [(r["task_id"], r["was_replayed"]) for r in rows] == [(str(t.id), int(i > 0)) for i, t in enumerate(tasks)]
    assert rows[0]["inputs"] == {"topic": "pg"}
    assert not (tmp_path / "latest_kickoff_task_outputs.db").exists()  # nothing went to a local file
