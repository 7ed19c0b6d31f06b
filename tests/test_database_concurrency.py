"""Many threads and processes on one database; a killed writer; the blocking file lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from _subprocess_env import child_env

from crewai_rust.database import RustSQLiteWrapper
from crewai_rust.database._filelock import FileLockBackend, LockTimeoutError, lock_path

WORKER = textwrap.dedent(
    """
    import sys
    from crewai_rust.database import RustSQLiteWrapper
    path, worker, rows, rust = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    db = RustSQLiteWrapper(path, use_rust=rust, busy_timeout=60)
    for i in range(rows):
        if i % 4 == 0:
            with db.transaction():
                db.execute("INSERT INTO log (worker, n) VALUES (?, ?)", (worker, i))
                db.query_one("SELECT count(*) FROM log WHERE worker = ?", (worker,))
        else:
            db.execute("INSERT INTO log (worker, n) VALUES (?, ?)", (worker, i))
        db.query("SELECT n FROM log WHERE worker = ? ORDER BY n DESC LIMIT 3", (worker,))
    db.close()
    """
)


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_four_processes_write_and_read_one_database(tmp_path: Path, use_rust: bool) -> None:
    path = str(tmp_path / "shared.db")
    setup = RustSQLiteWrapper(path, use_rust=use_rust)
    setup.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, worker INTEGER, n INTEGER)")
    setup.close()
    rows = 120
    procs = [_python(WORKER, path, str(w), str(rows), "1" if use_rust else "0") for w in range(4)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outcomes):
        assert proc.returncode == 0, err
        assert "locked" not in err
    check = RustSQLiteWrapper(path, use_rust=use_rust)
    assert check.query("SELECT worker, count(*), count(DISTINCT n) FROM log GROUP BY worker ORDER BY worker") == [
        (w, rows, rows) for w in range(4)
    ]
    assert check.query_one("PRAGMA integrity_check") == ("ok",)
    check.close()


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from crewai_rust.database import RustSQLiteWrapper
    db = RustSQLiteWrapper(sys.argv[1], use_rust=sys.argv[2] == "1")
    db.executemany("INSERT INTO log (n) VALUES (?)", [(i,) for i in range(50)])
    with db.transaction():
        db.executemany("INSERT INTO log (n) VALUES (?)", [(1000 + i,) for i in range(500)])
        print("in-transaction", flush=True)
        time.sleep(60)
    """
)


@pytest.mark.slow
def test_writer_killed_mid_transaction_loses_only_uncommitted_rows(tmp_path: Path, use_rust: bool) -> None:
    path = str(tmp_path / "killed.db")
    setup = RustSQLiteWrapper(path, use_rust=use_rust)
    setup.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, n INTEGER)")
    setup.close()
    proc = _python(KILLED_WRITER, path, "1" if use_rust else "0")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "in-transaction", proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    db = RustSQLiteWrapper(path, use_rust=use_rust, busy_timeout=5)
    assert db.query_one("SELECT count(*), min(n), max(n) FROM log") == (50, 0, 49)
    assert db.query_one("PRAGMA integrity_check") == ("ok",)
    db.execute("INSERT INTO log (n) VALUES (-1)")  # the killed writer's lock is gone
    db.close()


# -- the lock backend (pure Python: no twin) --------------------------------------


def test_lock_excludes_threads_and_wakes_waiters(tmp_path: Path) -> None:
    backend = FileLockBackend(str(tmp_path))
    inside = 0
    overlaps: list[int] = []
    order: list[int] = []

    def work(n: int) -> None:
        nonlocal inside
        for _ in range(5):
            with backend("sqlite:/some/db", timeout=30):
                inside += 1
                if inside != 1:
                    overlaps.append(inside)
                order.append(n)
                time.sleep(0.002)
                inside -= 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    assert sorted(order) == sorted(n for n in range(6) for _ in range(5))


def test_lock_timeout_names_the_lock(tmp_path: Path) -> None:
    import portalocker.exceptions

    backend = FileLockBackend(str(tmp_path))
    with backend("lancedb:/data/memory", timeout=5):
        errors: list[BaseException] = []

        def contender() -> None:
            try:
                with backend("lancedb:/data/memory", timeout=0.05):
                    pass
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=contender)
        t.start()
        t.join()
    assert len(errors) == 1
    error = errors[0]
    assert isinstance(error, LockTimeoutError)
    assert isinstance(error, portalocker.exceptions.LockException) and isinstance(error, TimeoutError)
    assert "lancedb:/data/memory" in str(error) and error.name == "lancedb:/data/memory"
    with backend("lancedb:/data/memory", timeout=0.05):  # free again
        pass


STOCK_HOLDER = textwrap.dedent(
    """
    import sys, time, tempfile
    tempfile.tempdir = sys.argv[1]
    from crewai_core.lock_store import lock
    with lock(sys.argv[2], timeout=10):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
        print(repr(time.time()), flush=True)
    """
)


@pytest.mark.slow
def test_lock_excludes_a_stock_process_and_honours_timeout(tmp_path: Path) -> None:
    name = "sqlite:/shared/across/processes.db"
    backend = FileLockBackend(str(tmp_path))
    proc = _python(STOCK_HOLDER, str(tmp_path), name, "1.0")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    assert os.path.exists(lock_path(name, str(tmp_path)))  # the very file stock locks
    with pytest.raises(LockTimeoutError, match="processes.db"):
        with backend(name, timeout=0.1):
            pass
    with backend(name, timeout=20):  # blocks in flock until the stock holder lets go
        acquired = time.time()
    released = float(proc.stdout.readline())
    proc.communicate(timeout=20)
    assert acquired >= released


@pytest.mark.slow
def test_stock_process_waits_for_our_lock(tmp_path: Path) -> None:
    name = "file:/tmp/user.json"
    backend = FileLockBackend(str(tmp_path))
    with backend(name, timeout=5):
        proc = _python(STOCK_HOLDER.replace("timeout=10", "timeout=0.3"), str(tmp_path), name, "0")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Failed to acquire lock" in err
