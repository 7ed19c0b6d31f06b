"""Several processes on one store: killed writers lose nothing acknowledged; concurrent writers never fail.

The worker processes skip importing CrewAI (seconds per process): they save
light record objects with the same attributes and read results through a
stand-in for ``MemoryRecord``; the storage code path is the real one.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _subprocess_env import child_env

from crewai_rust.memory._persistence import DB_FILENAME

pytestmark = pytest.mark.slow

# Where the crewai_rust under test was imported from (the source tree in a
# checkout, site-packages under tox): child processes must import the same one.

WORKER_PRELUDE = textwrap.dedent(
    """
    import os, sys, types, random
    from datetime import datetime
    import numpy as np
    import crewai_rust.memory._records as records
    from crewai_rust.memory import RustMemoryStorage

    class Rec(types.SimpleNamespace):
        @classmethod
        def model_construct(cls, **kw):
            return cls(**kw)

    records.memory_types = lambda: types.SimpleNamespace(MemoryRecord=Rec)
    DIM = 16

    def vector(name):
        return np.random.default_rng(abs(hash(name)) % 2**32).normal(size=DIM).tolist()

    def record(name, scope="/"):
        now = datetime(2025, 1, 1)
        return Rec(id=name, content="memory " + name, scope=scope, categories=["w"], metadata={},
                   importance=0.5, created_at=now, last_accessed=now, source=None, private=False,
                   embedding=vector(name))

    store = RustMemoryStorage(sys.argv[1], use_rust=sys.argv[2] == "rust")
    """
)

KILL_WRITER = WORKER_PRELUDE + textwrap.dedent(
    """
    tag = sys.argv[3]
    i = 0
    while True:
        batch = [record(f"{tag}-{i + j}") for j in range(random.randint(1, 4))]
        store.save(batch)
        print(" ".join(r.id for r in batch), flush=True)  # acknowledged
        i += len(batch)
    """
)

CONCURRENT = WORKER_PRELUDE + textwrap.dedent(
    """
    tag, count, workers = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    mine = []
    for i in range(count):
        batch = [record(f"{tag}-{i}", scope=f"/w/{tag}")]
        store.save(batch)
        mine.append(batch[0].id)
        if i % 3 == 0:
            hits = store.search(vector(mine[-1]), scope_prefix=f"/w/{tag}", limit=1)
            assert hits[0][0].id == mine[-1], (hits, mine[-1])
        if i % 10 == 0:
            store.delete(record_ids=[mine.pop(0)])
            store.count(); store.list_records(limit=5)
    with open(os.path.join(sys.argv[1], f"tmp-{tag}"), "w") as fh:
        fh.write(" ".join(mine))
    os.replace(os.path.join(sys.argv[1], f"tmp-{tag}"), os.path.join(sys.argv[1], f"done-{tag}"))
    while len([f for f in os.listdir(sys.argv[1]) if f.startswith("done-")]) < workers:
        store.search(vector("probe"), limit=3)
    expected = set()
    for name in os.listdir(sys.argv[1]):
        if name.startswith("done-"):
            with open(os.path.join(sys.argv[1], name)) as fh:
                expected.update(fh.read().split())
    hits = store.search(vector("probe"), limit=10_000)
    got = {r.id for r, _ in hits}
    assert got == expected, (len(got), len(expected))
    print("ok", len(got), flush=True)
    """
)


def _stored_ids(directory: Path) -> set[str]:
    conn = sqlite3.connect(str(directory / DB_FILENAME))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in conn.execute("SELECT id FROM records")}
    finally:
        conn.close()


def test_sigkilled_writer_loses_nothing_acknowledged(tmp_path: Path, use_rust: bool) -> None:
    impl = "rust" if use_rust else "python"
    acknowledged: set[str] = set()
    for round_no in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_WRITER, str(tmp_path), impl, f"k{round_no}"],
            stdout=subprocess.PIPE, env=child_env(), text=True,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        target = 20 + 15 * round_no
        lines = 0
        while lines < target and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged.update(line.split())
            lines += 1
        os.kill(proc.pid, signal.SIGKILL)
        # Acknowledgements already in the pipe count too: they were printed after a commit.
        acknowledged.update(proc.stdout.read().split())
        proc.stdout.close()
        proc.wait()
        assert lines == target, f"writer {round_no} stopped early"
    stored = _stored_ids(tmp_path)
    assert acknowledged <= stored, sorted(acknowledged - stored)[:5]
    from crewai_rust.memory import RustMemoryStorage

    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert store.count() == len(stored) and store._index.n == len(stored)
    store.close()


def test_four_processes_write_and_read_one_store(tmp_path: Path, use_rust: bool) -> None:
    impl = "rust" if use_rust else "python"
    workers, count = 4, 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(tmp_path), impl, f"p{i}", str(count), str(workers)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True,
        )
        for i in range(workers)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert "locked" not in err
    expected_each = count - len(range(0, count, 10))
    assert all(out.split() == ["ok", str(workers * expected_each)] for out, _ in outputs), outputs
    assert len(_stored_ids(tmp_path)) == workers * expected_each
