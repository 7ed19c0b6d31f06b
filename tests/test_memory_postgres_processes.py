"""Several processes on one PostgreSQL memory store: concurrent writers, deleters and searchers;
a SIGKILLed writer and a server restart mid-run lose nothing acknowledged and nobody restarts.

Like ``test_memory_processes.py``, the workers skip importing CrewAI and save light record
objects; the storage code path (seam, PostgreSQL store, index, kernels) is the real one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import crewai_rust

pytestmark = pytest.mark.slow

ROOT = Path(crewai_rust.__file__).resolve().parent.parent

PRELUDE = textwrap.dedent(
    """
    import os, sys, types, random, time
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

    url, impl, workdir = sys.argv[1], sys.argv[2], sys.argv[3]
    store = RustMemoryStorage(url, use_rust=impl == "rust")

    def everything():
        return {r.id for r, _ in store.search(vector("probe"), limit=1_000_000)}
    """
)

# Each worker logs "+id" after a save returned (acknowledged) and "-id" before it deletes.
# Every third step it reads the other workers' logs, searches once, and checks that every
# record they had acknowledged by then (and not deleted since) is in what it can search.
SHARER = PRELUDE + textwrap.dedent(
    """
    tag, count, tags = sys.argv[4], int(sys.argv[5]), sys.argv[6].split(",")
    others = [t for t in tags if t != tag]
    log = open(os.path.join(workdir, f"log-{tag}"), "a")

    def read_logs(names):
        adds, dels = set(), set()
        for t in names:
            try:
                with open(os.path.join(workdir, f"log-{t}")) as fh:
                    for line in fh.read().splitlines():
                        (adds if line[:1] == "+" else dels).add(line[1:])
            except FileNotFoundError:
                pass
        return adds, dels

    def work():
        mine = []
        for i in range(count):
            rid = f"{tag}-{i}"
            store.save([record(rid, scope=f"/w/{tag}")])
            mine.append(rid)
            log.write("+" + rid + "\\n"); log.flush()
            if i % 10 == 9:
                victim = mine.pop(0)
                log.write("-" + victim + "\\n"); log.flush()  # before the delete: it may commit any time now
                assert store.delete(record_ids=[victim]) == 1
            if i % 3 == 0:
                acked, _ = read_logs(others)
                visible = everything()                      # the next search after their commits
                _, deleted = read_logs(others)
                missing = (acked - deleted) - visible
                assert not missing, ("not visible", sorted(missing)[:5])
                hit = store.search(vector(rid), scope_prefix=f"/w/{tag}", limit=1)
                assert hit[0][0].id == rid, (hit, rid)
                assert not any(r.scope.startswith(f"/w/{tag}0") for r, _ in hit)

    try:
        work()
    finally:  # the others stop waiting for a worker that failed
        log.close()
        open(os.path.join(workdir, f"done-{tag}"), "w").close()
    deadline = time.monotonic() + 120
    while not all(os.path.exists(os.path.join(workdir, f"done-{t}")) for t in tags):
        assert time.monotonic() < deadline, "the other workers never finished"
        store.search(vector("probe"), limit=3)
        time.sleep(0.01)
    adds, dels = read_logs(tags)
    got = everything()
    assert got == adds - dels, (len(got), len(adds - dels))
    assert store.count() == len(got)
    print("ok", len(got), flush=True)
    """
)

KILL_WRITER = PRELUDE + textwrap.dedent(
    """
    tag = sys.argv[4]
    i = 0
    while True:
        batch = [record(f"{tag}-{i + j}") for j in range(random.randint(1, 4))]
        store.save(batch)
        print(" ".join(r.id for r in batch), flush=True)  # acknowledged
        i += len(batch)
    """
)

# Searches and counts until told to stop, right through restarts; then reports what it sees.
READER = PRELUDE + textwrap.dedent(
    """
    stop = os.path.join(workdir, "stop-reader")
    rounds = 0
    while not os.path.exists(stop):
        store.search(vector("probe"), limit=5)
        store.count()
        rounds += 1
        time.sleep(0.005)
    print(rounds, " ".join(sorted(everything())), flush=True)
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _stored_ids(url: str, namespace: str = "crewai_memory") -> set[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return {row[0] for row in conn.execute(f'SELECT id FROM "{namespace}".records')}


def test_four_processes_write_delete_and_search_one_store(pg_url: str, tmp_path: Path, use_rust: bool) -> None:
    impl = "rust" if use_rust else "python"
    tags = [f"p{i}" for i in range(4)]
    count = 45
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SHARER, pg_url, impl, str(tmp_path), tag, str(count), ",".join(tags)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True,
        )
        for tag in tags
    ]
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    expected = len(tags) * (count - count // 10)
    assert all(out.split() == ["ok", str(expected)] for out, _ in outputs), outputs
    assert len(_stored_ids(pg_url)) == expected


def _read_acks(proc: subprocess.Popen[str], acknowledged: set[str], lines: int) -> int:
    assert proc.stdout is not None
    got = 0
    deadline = time.monotonic() + 120
    while got < lines and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acknowledged.update(line.split())
        got += 1
    return got


def test_sigkilled_writers_and_a_server_restart_lose_nothing_acknowledged(
    pg_server: Any, pg_url: str, tmp_path: Path, use_rust: bool
) -> None:
    impl = "rust" if use_rust else "python"
    reader = subprocess.Popen([sys.executable, "-c", READER, pg_url, impl, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
    acknowledged: set[str] = set()
    try:
        for round_no in range(4):
            writer = subprocess.Popen(
                [sys.executable, "-c", KILL_WRITER, pg_url, impl, str(tmp_path), f"k{round_no}"],
                stdout=subprocess.PIPE, env=_env(), text=True,
            )
            target = 15 + 10 * round_no
            assert _read_acks(writer, acknowledged, target) == target, f"writer {round_no} stopped early"
            if round_no in (1, 2):
                pg_server.restart()  # every connection of the writer and the reader drops
                more = _read_acks(writer, acknowledged, 10)
                assert more == 10, f"writer {round_no} did not recover from the restart"
            os.kill(writer.pid, signal.SIGKILL)  # mid-batch: it saves in a tight loop
            assert writer.stdout is not None
            acknowledged.update(writer.stdout.read().split())  # printed after a commit: acknowledged too
            writer.stdout.close()
            writer.wait()
        assert reader.poll() is None, "the reader died"
        (tmp_path / "stop-reader").touch()
        out, err = reader.communicate(timeout=120)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert reader.returncode == 0, err[-3000:]
    stored = _stored_ids(pg_url)
    assert acknowledged <= stored, sorted(acknowledged - stored)[:5]
    rounds, *seen = out.split()
    assert int(rounds) > 0 and set(seen) == stored  # the reader recovered and caught up without a restart

    from crewai_rust.memory import RustMemoryStorage

    store = RustMemoryStorage(pg_url, use_rust=use_rust)
    try:
        assert store.count() == len(stored) and store._index.n == len(stored)
    finally:
        store.close()
