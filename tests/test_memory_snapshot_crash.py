"""The vector snapshot under SIGKILL and interpreter exit, in real processes.

A writer process updates, deletes and inserts records while snapshots are written
(in the background after every change, and synchronously; every other writer keeps the
float16 shadow, so its files hold one too); it is killed at random
moments, many times. After each kill the store reopens with nothing lost and no
stale vector: every row of the index is the database's current row.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _subprocess_env import child_env
from test_memory_snapshot import assert_index_is_the_database

from crewai_rust.memory import RustMemoryStorage
from crewai_rust.memory import _snapshot

pytestmark = pytest.mark.slow

#: One process imports crewai once and forks a writer per round (a fresh interpreter per round
#: spent ~3-6 s of each round importing). A writer is a real process, killed with SIGKILL.
ZYGOTE = textwrap.dedent(
    """
    import os, random, sys, threading
    import numpy as np
    from crewai_rust.testing import configure_offline
    configure_offline(None)
    from crewai.memory.types import MemoryRecord
    from crewai_rust.memory import RustMemoryStorage

    def write(path, impl, seed, shadow):
        rng = np.random.default_rng(seed)
        pick = random.Random(seed)
        store = RustMemoryStorage(path, use_rust=(impl == "rust"), snapshot_after=1, shadow=shadow or None)
        print("ready", flush=True)
        step = 0
        while True:
            step += 1
            ids = pick.sample(range(600), 40)
            store.save([MemoryRecord(id=f"rec-{k}", content=f"v{seed}-{step}", scope=f"/s/{k % 4}",
                                     embedding=rng.normal(size=512).astype(np.float32).tolist()) for k in ids])
            store.delete(record_ids=[f"rec-{k}" for k in pick.sample(range(600), 8)])
            if step % 3 == 0:
                store.save_snapshot()
            print("step", step, flush=True)

    # fork copies only the calling thread: no other Python thread may hold a lock the writer needs
    assert threading.active_count() == 1, threading.enumerate()
    print("zygote", flush=True)
    for line in sys.stdin:
        path, impl, seed, shadow = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                write(path, impl, int(seed), shadow == "shadow")
            finally:
                os._exit(70)
        print("pid", pid, flush=True)
        print("reaped", os.waitpid(pid, 0)[1], flush=True)
    """
)

EXITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from crewai_rust.testing import configure_offline
    configure_offline(None)
    from crewai.memory.types import MemoryRecord
    from crewai_rust.memory import RustMemoryStorage

    path, impl = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(3)
    store = RustMemoryStorage(path, use_rust=(impl == "rust"), snapshot_after=1)
    store.save([MemoryRecord(id=f"x-{i}", content="x", embedding=rng.normal(size=1024).astype(np.float32).tolist())
                for i in range(3000)])
    assert store._snapshots.busy  # a background write of 12 MB has started: exit now, without close()
    print("leaving", flush=True)
    """
)


_env = child_env


def test_sigkill_while_snapshots_are_written_loses_nothing(tmp_path: Path, use_rust: bool) -> None:
    impl = "rust" if use_rust else "python"
    pick = random.Random(1234)
    restored = restored_shadow = 0
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env=_env(), text=True)
    assert zygote.stdin is not None and zygote.stdout is not None
    try:
        assert zygote.stdout.readline().strip() == "zygote"
        for round_no in range(16):
            shadow = round_no % 2 == 1
            zygote.stdin.write(f"{tmp_path} {impl} {round_no} {'shadow' if shadow else 'plain'}\n")
            zygote.stdin.flush()
            pid, steps, reaped = None, -1, None
            deadline = time.monotonic() + 60
            while (pid is None or steps != 0) and time.monotonic() < deadline:
                words = zygote.stdout.readline().split()
                if not words or words[0] == "reaped":  # the writer (or the zygote) died by itself
                    reaped = words
                    break
                if words[0] == "pid":
                    pid = int(words[1])
                elif words[0] == "ready":
                    steps = pick.randint(1, 6)
                elif words[0] == "step" and steps > 0:
                    steps -= 1
            time.sleep(pick.random() * 0.05)  # land anywhere: inside a save, a write, a rename
            assert pid is not None, f"writer {round_no} was not forked"
            if reaped is None:
                os.kill(pid, signal.SIGKILL)
                while (reaped := zygote.stdout.readline().split()) and reaped[0] != "reaped":
                    pass  # steps the writer printed before the kill landed
            assert reaped == ["reaped", str(signal.SIGKILL)], f"writer {round_no} ended by itself: {reaped}"
            assert steps == 0, f"writer {round_no} stopped early"

            store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot_after=10**6, shadow=shadow or None)
            stats = store.snapshot_stats
            assert stats["restored"] + stats["full_loads"] == 1
            assert not stats["rejected"], stats  # a killed writer never leaves a damaged file in place
            restored += stats["restored"]
            restored_shadow += stats["restored_shadow"]
            assert_index_is_the_database(store)
            store.close()
    finally:  # the zygote (and a writer it still waits on) never outlives the test
        zygote.stdin.close()
        try:
            zygote.wait(timeout=10)
        except subprocess.TimeoutExpired:
            zygote.kill()
            zygote.wait()
        zygote.stdout.close()
    assert restored >= 8  # the snapshot path did run after most kills (a kill before the first write cannot)
    assert restored_shadow >= 3  # and with the shadow after several of the shadow writers' kills
    # the next writer sweeps the killed writers' temp files
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert store.save_snapshot()
    store.close()
    assert not list(tmp_path.glob(f".{_snapshot.SQLITE_NAME}.*.tmp"))


def test_exit_during_a_background_write_neither_hangs_nor_corrupts(tmp_path: Path, use_rust: bool) -> None:
    impl = "rust" if use_rust else "python"
    done = subprocess.run([sys.executable, "-c", EXITER, str(tmp_path), impl], env=_env(), text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "leaving"
    store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot_after=10**6)
    stats = store.snapshot_stats
    assert not stats["rejected"], stats  # either no file (the write was cut short) or a whole one
    assert store.count() == 3000
    assert_index_is_the_database(store)
    store.close()
