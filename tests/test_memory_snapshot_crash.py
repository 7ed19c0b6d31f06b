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

WRITER = textwrap.dedent(
    """
    import random, sys
    import numpy as np
    from crewai_rust.testing import configure_offline
    configure_offline(None)
    from crewai.memory.types import MemoryRecord
    from crewai_rust.memory import RustMemoryStorage

    path, impl, seed, shadow = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "shadow"
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
    for round_no in range(16):
        shadow = round_no % 2 == 1
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), impl, str(round_no),
                                 "shadow" if shadow else "plain"],
                                stdout=subprocess.PIPE, env=_env(), text=True)
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 60
            steps = pick.randint(1, 6)
            while steps and time.monotonic() < deadline:
                if not proc.stdout.readline():
                    break
                steps -= 1
            time.sleep(pick.random() * 0.05)  # land anywhere: inside a save, a write, a rename
        finally:  # killed and reaped even when the writer failed to start (no leak into later tests)
            os.kill(proc.pid, signal.SIGKILL)
            proc.stdout.close()
            proc.wait()
        assert steps == 0, f"writer {round_no} stopped early"

        store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot_after=10**6, shadow=shadow or None)
        stats = store.snapshot_stats
        assert stats["restored"] + stats["full_loads"] == 1
        assert not stats["rejected"], stats  # a killed writer never leaves a damaged file in place
        restored += stats["restored"]
        restored_shadow += stats["restored_shadow"]
        assert_index_is_the_database(store)
        store.close()
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
