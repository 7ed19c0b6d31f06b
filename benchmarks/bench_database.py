"""DATABASE benchmarks: task outputs, per-task update vs table size, pooled point queries, locks.

Stock CrewAI, the python twin and the rust twin run side by side in one process,
each on its own file (two SQLite libraries must not share a file in one process).

    python benchmarks/bench_database.py [--quick] [--json out.json]
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
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


def _impls() -> list[tuple[str, bool]]:
    from crewai_rust import speedups_enabled

    return [("python", False)] + ([("rust", True)] if speedups_enabled() else [])


def _log(task: Any, i: int) -> dict[str, Any]:
    return {
        "task": task,
        "output": {
            "description": task.description,
            "summary": "summary",
            "raw": f"result {i} " + "lorem ipsum " * 40,
            "pydantic": None,
            "json_dict": {"score": i, "tags": ["a", "b"]},
            "output_format": "raw",
            "agent": "Analyst",
            "messages": [{"role": "assistant", "content": "done"}],
        },
        "task_index": i,
        "inputs": {"topic": "databases"},
        "was_replayed": False,
    }


def _task_output_cases(root: Path, quick: bool) -> list[dict[str, Any]]:
    from crewai import Task
    from crewai.memory.storage.kickoff_task_outputs_storage import KickoffTaskOutputsSQLiteStorage
    from crewai.utilities.task_output_storage_handler import TaskOutputStorageHandler

    from crewai_rust.database import _shared
    from crewai_rust.database._task_outputs import PooledTaskOutputsStorage, handler_update

    rows: list[dict[str, Any]] = []
    repeat = 5 if quick else 9
    tasks = [Task(description=f"Task {i}: analyse", expected_output="analysis") for i in range(1000)]
    stores: dict[str, Any] = {"stock": KickoffTaskOutputsSQLiteStorage(str(root / "stock_outputs.db"))}
    for impl, rust in _impls():
        stores[impl] = PooledTaskOutputsStorage(str(root / f"{impl}_outputs.db"), use_rust=rust)

    # add: one task output, as the crew stores it after every task.
    for impl, store in stores.items():
        log = _log(tasks[0], 0)
        args = (log["task"], log["output"], 0, False, log["inputs"])
        rows.append(measure("outputs", "task-output add", impl, lambda s=store, a=args: s.add(*a), repeat=repeat, number=20))

    # load: 100 stored outputs (what replay and the CLI read).
    for store in stores.values():
        store.delete_all()
        for i in range(100):
            log = _log(tasks[i], i)
            store.add(log["task"], log["output"], i, False, log["inputs"])
    for impl, store in stores.items():
        rows.append(measure("outputs", "load 100 outputs", impl, store.load, repeat=repeat, number=5))

    # per-task update (TaskOutputStorageHandler.update) against a table of n rows.
    sizes = (10, 100, 1000)
    for n in sizes:
        for impl, store in stores.items():
            store.delete_all()
            for i in range(n):
                log = _log(tasks[i], i)
                store.add(log["task"], log["output"], i, False, log["inputs"])
            handler = TaskOutputStorageHandler.__new__(TaskOutputStorageHandler)
            handler.storage = store
            update = TaskOutputStorageHandler.update if impl == "stock" else handler_update
            log = _log(tasks[n // 2], n // 2)
            number = 3 if (impl == "stock" and n == 1000) else 10
            rows.append(
                measure(
                    "update",
                    f"per-task update, {n} rows",
                    impl,
                    lambda h=handler, u=update, lg=log: u(h, lg["task_index"], lg),
                    repeat=repeat,
                    number=number,
                )
            )
    _shared.close_all()
    return rows


def _point_query_cases(root: Path, quick: bool) -> list[dict[str, Any]]:
    from crewai_rust.database import RustSQLiteWrapper

    rows: list[dict[str, Any]] = []
    per_thread = 500 if quick else 2000
    keys = [f"key-{i}" for i in range(1000)]

    def fill(path: Path) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
            conn.executemany("INSERT INTO kv VALUES (?, ?)", [(k, k * 3) for k in keys])
        conn.close()

    def two_threads(worker: Any) -> None:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # Plain sqlite3: a connection per thread (the fastest stdlib pattern).
    plain_path = root / "kv_plain.db"
    fill(plain_path)
    local = threading.local()

    def plain_worker(t: int) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = sqlite3.connect(plain_path, check_same_thread=False)
        for i in range(per_thread):
            conn.execute("SELECT v FROM kv WHERE k = ?", (keys[(i * 7 + t) % 1000],)).fetchone()

    rows.append(measure("pooled", "2 threads x point query", "sqlite3", lambda: two_threads(plain_worker), repeat=5, number=1))
    plain = sqlite3.connect(plain_path)
    rows.append(
        measure("pooled", "1 thread point query", "sqlite3", lambda: plain.execute("SELECT v FROM kv WHERE k = ?", ("key-17",)).fetchone(), repeat=5, number=2000)
    )
    rows.append(measure("pooled", "query 1000 rows", "sqlite3", lambda: plain.execute("SELECT k, v FROM kv").fetchall(), repeat=5, number=5))
    plain.close()
    for impl, rust in _impls():
        path = root / f"kv_{impl}.db"
        fill(path)
        db = RustSQLiteWrapper(path, pool_size=2, use_rust=rust)

        def worker(t: int, db: Any = db) -> None:
            for i in range(per_thread):
                db.query_one("SELECT v FROM kv WHERE k = ?", (keys[(i * 7 + t) % 1000],))

        rows.append(measure("pooled", "2 threads x point query", impl, lambda w=worker: two_threads(w), repeat=5, number=1))
        single = measure(
            "pooled",
            "1 thread point query",
            impl,
            lambda db=db: db.query_one("SELECT v FROM kv WHERE k = ?", ("key-17",)),
            repeat=5,
            number=2000,
        )
        rows.append(single)
        rows.append(measure("pooled", "query 1000 rows", impl, lambda db=db: db.query("SELECT k, v FROM kv"), repeat=5, number=5))
        db.close()
    return rows


def _lock_cases(root: Path, quick: bool) -> list[dict[str, Any]]:
    import crewai_core.lock_store as lock_store
    from crewai.memory.storage.lancedb_storage import LanceDBStorage
    from crewai.memory.types import MemoryRecord

    from crewai_rust.database._filelock import FileLockBackend

    path = root / "memory"
    store = LanceDBStorage(path=str(path), vector_dim=8)
    store.save([MemoryRecord(content="seed", embedding=[0.1] * 8)])
    del store
    rows: list[dict[str, Any]] = []
    repeat = 6 if quick else 12
    previous = lock_store._backend
    try:
        lock_store.set_lock_backend(None)
        rows.append(measure("locks", "LanceDBStorage() on existing table", "stock", lambda: LanceDBStorage(path=str(path)), repeat=repeat))
        lock_store.set_lock_backend(FileLockBackend())
        rows.append(measure("locks", "LanceDBStorage() on existing table", "python", lambda: LanceDBStorage(path=str(path)), repeat=repeat))
    finally:
        lock_store.set_lock_backend(previous)
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench_database_") as tmp:
        root = Path(tmp)
        os.environ["CREWAI_STORAGE_DIR"] = str(root)
        rows = _task_output_cases(root, quick)
        rows += _point_query_cases(root, quick)
        rows += _lock_cases(root, quick)
    return rows


if __name__ == "__main__":
    main(run)
