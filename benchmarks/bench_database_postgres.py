"""DATABASE on PostgreSQL vs SQLite, side by side in one run: task outputs, flow state, locks.

Stock CrewAI (SQLite file), our pooled SQLite twins and the PostgreSQL backend run
the same calls in one process. The server is ``CREWAI_RUST_BENCH_PG_URL`` when set,
else a throwaway local cluster (``tests/_pg_cluster.py``) switched to PostgreSQL's
default durability (``fsync``, ``synchronous_commit`` on) so a commit is on disk, as in
production; the SQLite files use their defaults (WAL, ``synchronous=NORMAL``). The
server is on this machine: over a network add a round trip per call.

    python benchmarks/bench_database_postgres.py [--quick] [--json out.json]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # _pg_cluster
for _key, _value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "OPENAI_API_KEY": "sk-offline-bench",
}.items():
    os.environ.setdefault(_key, _value)

from benchmarks._harness import main, measure  # noqa: E402
from benchmarks.bench_database import _impls, _log  # noqa: E402


def _server() -> tuple[str, Any]:
    url = os.environ.get("CREWAI_RUST_BENCH_PG_URL", "").strip()
    if url:
        return url, None
    from _pg_cluster import start_cluster

    cluster = start_cluster()
    cluster.psql("ALTER SYSTEM SET fsync = on")
    cluster.psql("ALTER SYSTEM SET synchronous_commit = on")
    cluster.psql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while cluster.psql("SELECT current_setting('fsync') || current_setting('synchronous_commit')") != "onon":
        if time.monotonic() > deadline:
            raise RuntimeError("the bench cluster did not switch to fsync/synchronous_commit on")
        time.sleep(0.05)
    return cluster.create_database("bench"), cluster


def _stores(root: Path, url: str) -> dict[str, Any]:
    from crewai.memory.storage.kickoff_task_outputs_storage import KickoffTaskOutputsSQLiteStorage

    from crewai_rust.database._pg_task_outputs import PostgresTaskOutputsStorage
    from crewai_rust.database._task_outputs import PooledTaskOutputsStorage

    stores: dict[str, Any] = {"stock": KickoffTaskOutputsSQLiteStorage(str(root / "stock_outputs.db"))}
    for impl, rust in _impls():
        stores[impl] = PooledTaskOutputsStorage(str(root / f"{impl}_outputs.db"), use_rust=rust)
    stores["postgresql"] = PostgresTaskOutputsStorage(url=url)
    return stores


def _task_output_cases(root: Path, url: str, quick: bool) -> list[dict[str, Any]]:
    from crewai import Task

    from crewai_rust.database._task_outputs import handler_update

    rows: list[dict[str, Any]] = []
    repeat = 5 if quick else 9
    tasks = [Task(description=f"Task {i}: analyse", expected_output="analysis") for i in range(100)]
    stores = _stores(root, url)
    for impl, store in stores.items():
        log = _log(tasks[0], 0)
        args = (log["task"], log["output"], 0, False, log["inputs"])
        rows.append(measure("pg-outputs", "task-output add", impl, lambda s=store, a=args: s.add(*a), repeat=repeat, number=20))
    for store in stores.values():
        store.delete_all()
        for i in range(100):
            log = _log(tasks[i], i)
            store.add(log["task"], log["output"], i, False, log["inputs"])
    for impl, store in stores.items():
        rows.append(measure("pg-outputs", "load 100 outputs", impl, store.load, repeat=repeat, number=5))
    from crewai.utilities.task_output_storage_handler import TaskOutputStorageHandler

    for impl, store in stores.items():
        handler = TaskOutputStorageHandler.__new__(TaskOutputStorageHandler)
        handler.storage = store
        update = TaskOutputStorageHandler.update if impl == "stock" else handler_update
        log = _log(tasks[50], 50)
        rows.append(
            measure("pg-outputs", "per-task update, 100 rows", impl, lambda h=handler, u=update, lg=log: u(h, 50, lg),
                    repeat=repeat, number=10)
        )
    return rows


def _flow_cases(root: Path, url: str, quick: bool) -> list[dict[str, Any]]:
    from crewai.flow.persistence.sqlite import SQLiteFlowPersistence

    from crewai_rust.database import _shared
    from crewai_rust.database._flow_persistence import PooledFlowPersistence
    from crewai_rust.database._pg_flow_persistence import PostgresFlowPersistence

    rows: list[dict[str, Any]] = []
    repeat = 5 if quick else 9
    state = {"id": "bench-flow", "step": 3, "notes": ["x" * 40] * 10}
    flows: dict[str, Any] = {"stock": SQLiteFlowPersistence(str(root / "stock_flows.db"))}
    for impl, rust in _impls():
        _shared.configure(use_rust=rust)
        flows[impl] = PooledFlowPersistence(str(root / f"{impl}_flows.db"))
        flows[impl]._db()  # opened now, with this twin
    _shared.configure(use_rust=None)
    flows["postgresql"] = PostgresFlowPersistence(url)
    for impl, persistence in flows.items():
        rows.append(measure("pg-flows", "flow save_state", impl, lambda p=persistence: p.save_state("bench-flow", "step", state),
                            repeat=repeat, number=20))
    for impl, persistence in flows.items():
        rows.append(measure("pg-flows", "flow load_state", impl, lambda p=persistence: p.load_state("bench-flow"),
                            repeat=repeat, number=20))
    return rows


def _lock_cases(root: Path, url: str, quick: bool) -> list[dict[str, Any]]:
    from crewai_core import lock_store

    from crewai_rust.database._filelock import FileLockBackend
    from crewai_rust.database._pg_lock import PostgresLockBackend

    rows: list[dict[str, Any]] = []
    repeat = 5 if quick else 9
    backends: dict[str, Any] = {"stock": None, "python": FileLockBackend(str(root)),
                                "postgresql": PostgresLockBackend(url, directory=str(root))}
    previous = lock_store._backend
    try:
        for impl, backend in backends.items():
            lock_store.set_lock_backend(backend)

            def cycle() -> None:
                with lock_store.lock("sqlite:/bench/lock", timeout=10):
                    pass

            rows.append(measure("pg-locks", "lock acquire+release", impl, cycle, repeat=repeat, number=50))
    finally:
        lock_store.set_lock_backend(previous)
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    from crewai_rust.database import _pg, _shared

    url, cluster = _server()
    try:
        with tempfile.TemporaryDirectory(prefix="bench_database_pg_") as tmp:
            root = Path(tmp)
            os.environ["CREWAI_STORAGE_DIR"] = str(root)
            rows = _task_output_cases(root, url, quick)
            rows += _flow_cases(root, url, quick)
            rows += _lock_cases(root, url, quick)
            _shared.close_all()
            _pg.close_all()
    finally:
        if cluster is not None:
            cluster.destroy()
    return rows


if __name__ == "__main__":
    main(run)
