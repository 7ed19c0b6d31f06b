"""Several processes on one PostgreSQL memory store: concurrent writers, deleters and searchers;
a SIGKILLed writer and a server restart mid-run lose nothing acknowledged and nobody restarts.

Two of the four sharing workers, and the writers of the out-of-order commit test, run in
network namespaces of their own and reach the server over veth pairs, as workers on other
machines would (``pg_net``; where the machine cannot make namespaces, loopback, said in
the test summary).

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

from _subprocess_env import child_env

pytestmark = pytest.mark.slow


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
    import psycopg
    with psycopg.connect(url) as conn:  # the address the server sees us at: the veth end in a namespace
        print("client", conn.execute("SELECT host(inet_client_addr())").fetchone()[0], flush=True)
    """
)

# Commands on stdin, one answer line each: "save ID", "hold-save ID" (answers "inside" once its
# write holds the store's head lock, then waits for "release" before it commits), "ids".
CONTROLLED = PRELUDE + textwrap.dedent(
    """
    def held_save(rid):
        real = store._store._send_upsert

        def held_send(*args):  # the save's statements ran: its transaction holds the head row
            result = real(*args)
            print("inside", flush=True)
            assert sys.stdin.readline().split() == ["release"]
            return result

        store._store._send_upsert = held_send
        try:
            store.save([record(rid)])
        finally:
            store._store._send_upsert = real

    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "save":
            store.save([record(arg[0])])
            print("saved", arg[0], flush=True)
        elif cmd == "hold-save":
            held_save(arg[0])
            print("saved", arg[0], flush=True)
        elif cmd == "ids":
            print("ids", *sorted(everything()), flush=True)
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


def _stored_ids(url: str, namespace: str = "crewai_memory") -> set[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return {row[0] for row in conn.execute(f'SELECT id FROM "{namespace}".records')}


def test_four_processes_write_delete_and_search_one_store(pg_net: Any, tmp_path: Path, use_rust: bool) -> None:
    """Two workers on the host, two in namespaces of their own (other machines, as far as the network goes)."""
    impl = "rust" if use_rust else "python"
    database = pg_net.create_database()
    sites = [pg_net.host, pg_net.host, *pg_net.remote]
    tags = [f"p{i}" for i in range(4)]
    count = 45
    procs = [
        subprocess.Popen(
            site.command([sys.executable, "-c", SHARER, pg_net.url(site, database), impl, str(tmp_path), tag,
                          str(count), ",".join(tags)]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True,
        )
        for site, tag in zip(sites, tags)
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
    lines = [out.splitlines() for out, _ in outputs]
    assert all(out[0].split() == ["ok", str(expected)] for out in lines), outputs
    for site, out in zip(sites, lines):
        client = out[1].split()
        assert client[0] == "client"
        if site.isolated:  # it really came over its veth link
            assert client[1:] == [site.client_addr], (site, out)
    assert len(_stored_ids(pg_net.url(pg_net.host, database))) == expected


def _waiting_on_lock(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crewai_rust-memory'"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


class _Controlled:
    """A CONTROLLED worker: one command line in, one answer line out."""

    def __init__(self, site: Any, url: str, impl: str, workdir: Path) -> None:
        self.proc = subprocess.Popen(
            site.command([sys.executable, "-c", CONTROLLED, url, impl, str(workdir)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True,
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self) -> list[str]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(30)
            raise AssertionError(self.proc.stderr.read() if self.proc.stderr else "worker ended")
        return line.split()

    def ask(self, line: str) -> list[str]:
        self.send(line)
        return self.answer()

    def close(self) -> None:
        try:
            _, err = self.proc.communicate(timeout=30)  # end of stdin: the worker's loop ends
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.communicate()
        assert self.proc.returncode == 0, err[-3000:]


def test_a_commit_out_of_number_order_across_processes_is_never_missed(
    pg_net: Any, tmp_path: Path, use_rust: bool
) -> None:
    """Writer A (one namespace) starts its write first and is held open inside it; writer B (the
    other namespace) starts later; a reader process on the host syncs while A is still open. With
    a change log numbered by a plain sequence B commits a higher number first, the reader moves
    past it, and A's lower number, committed afterwards, is never applied. Here B must queue
    behind A (or land after it), and the reader's next search sees both."""
    impl = "rust" if use_rust else "python"
    database = pg_net.create_database()
    host_url = pg_net.url(pg_net.host, database)
    a = _Controlled(pg_net.remote[0], pg_net.url(pg_net.remote[0], database), impl, tmp_path)
    b = _Controlled(pg_net.remote[1], pg_net.url(pg_net.remote[1], database), impl, tmp_path)
    reader = _Controlled(pg_net.host, host_url, impl, tmp_path)
    workers = [a, b, reader]
    try:
        assert a.ask("save seed") == ["saved", "seed"]
        assert reader.ask("ids") == ["ids", "seed"]
        assert b.ask("ids") == ["ids", "seed"]  # B is open and in step before A's write begins
        assert a.ask("hold-save from-a") == ["inside"]
        b.send("save from-b")
        deadline = time.monotonic() + 30
        while not _waiting_on_lock(host_url):  # B queues behind A's head lock
            assert time.monotonic() < deadline, "B neither queued nor finished"
            time.sleep(0.01)
        assert reader.ask("ids") == ["ids", "seed"]  # neither has committed; the reader has synced
        a.send("release")
        assert a.answer() == ["saved", "from-a"]
        assert b.answer() == ["saved", "from-b"]
        assert reader.ask("ids") == ["ids", "from-a", "from-b", "seed"]
        for worker in (a, b):
            assert worker.ask("ids") == ["ids", "from-a", "from-b", "seed"]
    finally:
        for worker in workers:
            worker.close()


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
    pg_net: Any, tmp_path: Path, use_rust: bool
) -> None:
    """The reader in one namespace, the writers in the other (``ip netns exec`` execs: the pid is python's)."""
    impl = "rust" if use_rust else "python"
    database = pg_net.create_database()
    pg_url = pg_net.url(pg_net.host, database)
    reader_site, writer_site = pg_net.remote
    reader = subprocess.Popen(
        reader_site.command([sys.executable, "-c", READER, pg_net.url(reader_site, database), impl, str(tmp_path)]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True,
    )
    acknowledged: set[str] = set()
    try:
        for round_no in range(4):
            writer = subprocess.Popen(
                writer_site.command([sys.executable, "-c", KILL_WRITER, pg_net.url(writer_site, database), impl,
                                     str(tmp_path), f"k{round_no}"]),
                stdout=subprocess.PIPE, env=child_env(), text=True,
            )
            target = 15 + 10 * round_no
            assert _read_acks(writer, acknowledged, target) == target, f"writer {round_no} stopped early"
            if round_no in (1, 2):
                pg_net.server.restart()  # every connection of the writer and the reader drops
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
