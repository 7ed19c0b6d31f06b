"""Issue 17, DATABASE, across processes: what one CrewAI process writes to PostgreSQL another uses.

Every child is a separate CrewAI process with a private storage dir and lock dir, so
the only thing the processes share is the server: as two machines would. The ``pg_net``
tests put the children in network namespaces of their own, reaching the server over veth
pairs (loopback where the machine cannot, said in the test summary).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from _subprocess_env import child_env

pytest.importorskip("psycopg")

from crewai_rust.database import _pg  # noqa: E402
from crewai_rust.database._filelock import LockTimeoutError  # noqa: E402
from crewai_rust.database._pg_lock import PostgresLockBackend  # noqa: E402

SCENARIOS = str(Path(__file__).with_name("_pg_db_scenarios.py"))

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _close_pools() -> Any:
    yield
    _pg.close_all()


def _child(url: str, *args: str, site: Any = None) -> subprocess.Popen[str]:
    env = {**child_env(), "CREWAI_RUST_DATABASE_URL": url}
    env.pop("CREWAI_STORAGE_DIR", None)  # each child makes its own
    argv = [sys.executable, SCENARIOS, *args]
    return subprocess.Popen(
        site.command(argv) if site is not None else argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _lines(proc: subprocess.Popen[str], timeout: float = 240) -> list[dict[str, Any]]:
    if proc.stdout is not None and proc.stdout.closed is False and _read_some.get(proc.pid):
        # Lines already read through the buffered pipe: finish through the same buffer.
        out, err = proc.stdout.read(), proc.stderr.read() if proc.stderr else ""
        proc.wait(timeout=timeout)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    else:
        out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-4000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


_read_some: dict[int, bool] = {}


def _read(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    _read_some[proc.pid] = True
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(proc.stderr.read() if proc.stderr else "child ended")
        if line.startswith("{"):
            return json.loads(line)


@pytest.mark.crew
def test_replay_data_written_in_one_process_is_replayed_in_another(pg_url: str, use_rust: bool) -> None:
    (a,) = _lines(_child(pg_url, "crew_kickoff"))
    assert a["storage"] == "PostgresTaskOutputsStorage" and a["raw"]
    b = _lines(_child(pg_url, "crew_replay", a["task_ids"][1]))[0]
    assert b["storage"] == "PostgresTaskOutputsStorage"
    assert not b["local_file"]  # B has no task-output file of its own: the rows came from the server
    assert [row[0] for row in b["before"]] == a["task_ids"]
    assert [row[2] for row in b["before"]] == [{"topic": "postgres"}] * 3
    assert b["raw"] and b["llm_calls"] >= 2  # tasks 1 and 2 ran again in B
    assert b["after"] == [[0, 0], [1, 1], [2, 1]]


def test_a_flow_persisted_in_one_process_resumes_in_another(pg_url: str) -> None:
    first = _lines(_child(pg_url, "flow_start"))
    counter = next(x for x in first if "counter" in x)
    paused = next(x for x in first if "paused_id" in x)
    assert counter["counter"] == 11 and counter["persistence"] == "PostgresFlowPersistence"
    (b,) = _lines(_child(pg_url, "flow_resume", counter["counter_id"], paused["paused_id"]))
    assert b["counter"] == 22
    assert len(b["hosts"]) == 2 and b["hosts"][0] != b["hosts"][1]  # one step in A, one in B
    assert b["resumed"].startswith("published after 'ship it' on ") and not b["pending_left"]


def test_a_flow_paused_in_one_namespace_resumes_in_another(pg_net: Any) -> None:
    """A and B each in a network namespace of its own: the flow's state crossed only the server."""
    database = pg_net.create_database()
    a, b = pg_net.remote
    first = _lines(_child(pg_net.url(a, database), "flow_start", site=a))
    counter = next(x for x in first if "counter" in x)
    paused = next(x for x in first if "paused_id" in x)
    assert counter["counter"] == 11 and counter["persistence"] == "PostgresFlowPersistence"
    (resumed,) = _lines(_child(pg_net.url(b, database), "flow_resume", counter["counter_id"], paused["paused_id"],
                               site=b))
    assert resumed["counter"] == 22 and resumed["hosts"][0] != resumed["hosts"][1]
    assert resumed["resumed"].startswith("published after 'ship it' on ") and not resumed["pending_left"]


def test_an_advisory_lock_held_in_a_namespace_blocks_the_host(pg_net: Any, tmp_path: Path) -> None:
    database = pg_net.create_database()
    name = "sqlite:/shared/task-outputs.db"
    holder = _child(pg_net.url(pg_net.remote[0], database), "hold_lock", name, "1.5", site=pg_net.remote[0])
    assert _read(holder) == {"held": True}
    ours = PostgresLockBackend(pg_net.url(pg_net.host, database), directory=str(tmp_path))
    with pytest.raises(LockTimeoutError, match="another process or machine"):
        with ours(name, timeout=0.2):
            pass
    with ours(name, timeout=60):
        acquired = time.time()
    released = _read(holder)["released"]
    _lines(holder)
    assert acquired >= released


def test_an_advisory_lock_held_in_one_process_blocks_another(pg_url: str, tmp_path: Path) -> None:
    name = "sqlite:/shared/task-outputs.db"
    holder = _child(pg_url, "hold_lock", name, "1.5")
    assert _read(holder) == {"held": True}
    ours = PostgresLockBackend(pg_url, directory=str(tmp_path))  # another lock dir: only the server is shared
    with pytest.raises(LockTimeoutError, match="another process or machine"):
        with ours(name, timeout=0.2):
            pass
    with ours(name, timeout=60):  # blocks on the server until the holder lets go
        acquired = time.time()
    released = _read(holder)["released"]
    _lines(holder)
    assert acquired >= released


def test_concurrent_writers_first_use_and_a_lock_across_processes(pg_server: Any, pg_url: str) -> None:
    workers, rows = 4, 15
    procs = [_child(pg_url, "writer", str(w), str(rows)) for w in range(workers)]  # all create the tables at once
    for proc in procs:
        assert _lines(proc)[-1] == {"done": True, "same_server_run": True}
    db = _pg.database(pg_url)
    with db.pool().connection() as conn:
        outputs = conn.execute("SELECT output FROM latest_kickoff_task_outputs").fetchall()
        per_worker = conn.execute(
            "SELECT flow_uuid, count(*) FROM flow_states WHERE flow_uuid LIKE 'worker-%' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert sorted(json.loads(o[0])["raw"] for o in outputs) == sorted(f"{w}:{i}" for w in range(workers) for i in range(rows))
    assert per_worker == [(f"worker-{w}", rows) for w in range(workers)]
    # Each increment was a read-modify-write under the advisory lock: none lost.
    from crewai_rust.database._pg_flow_persistence import PostgresFlowPersistence

    assert PostgresFlowPersistence(pg_url).load_state("counter") == {"id": "counter", "n": workers * rows}


def test_writers_survive_a_server_restart_mid_run(pg_server: Any, pg_url: str) -> None:
    if not hasattr(pg_server, "restart"):
        pytest.skip("external server")
    rows = 60
    procs = [_child(pg_url, "writer", str(w), str(rows), "0.05") for w in range(2)]
    acked = [0, 0]
    while min(acked) < 10:
        for w, proc in enumerate(procs):
            line = _read(proc)
            if "ack" in line:
                acked[w] = line["ack"] + 1
    pg_server.restart()
    for proc in procs:
        # The server restarted while the writer ran; it recovered without a restart of its own.
        assert _lines(proc)[-1] == {"done": True, "same_server_run": False}
    from crewai_rust.database._pg_flow_persistence import PostgresFlowPersistence

    flows = PostgresFlowPersistence(pg_url)
    assert flows.load_state("counter") == {"id": "counter", "n": 2 * rows}
    db = _pg.database(pg_url)
    with db.pool().connection() as conn:
        assert conn.execute("SELECT count(*) FROM latest_kickoff_task_outputs").fetchone() == (2 * rows,)
        assert conn.execute("SELECT count(*) FROM flow_states WHERE flow_uuid LIKE 'worker-%'").fetchone() == (2 * rows,)
