"""Issue 12, finding 3: a scoped delete never loses a move another process acknowledged.

One process moves records out of ``/doomed`` (save it there, then save it again
in ``/kept``; the second save returning is the acknowledgement); another keeps
deleting and resetting ``/doomed``. Every acknowledged move must survive.
Before the fix the ids were selected in one step and deleted in another, so a
record moved in between was deleted anyway.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


from _subprocess_env import child_env
from test_memory_processes import WORKER_PRELUDE

pytestmark = pytest.mark.slow

SECONDS = "3"

MOVER = WORKER_PRELUDE + textwrap.dedent(
    """
    import time
    end = time.monotonic() + float(sys.argv[3])
    i = 0
    while time.monotonic() < end:
        name = f"r{i}"
        store.save([record(name, scope="/doomed/x")])
        store.save([record(name, scope="/kept")])
        print(name, flush=True)  # acknowledged move
        i += 1
    """
)

DELETER = WORKER_PRELUDE + textwrap.dedent(
    """
    import time
    end = time.monotonic() + float(sys.argv[3]) + 0.2
    n = 0
    while time.monotonic() < end:
        if n % 2:
            store.reset(scope_prefix="/doomed")
        else:
            store.delete(scope_prefix="/doomed")
        n += 1
    print("deletes", n, flush=True)
    """
)


_env = child_env


def test_scoped_delete_loses_no_acknowledged_move(tmp_path: Path, use_rust: bool) -> None:
    twin = "rust" if use_rust else "python"
    from crewai_rust.memory import RustMemoryStorage

    RustMemoryStorage(tmp_path, use_rust=use_rust).close()  # create the schema before the race
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), twin, SECONDS],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        for script in (MOVER, DELETER)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
    acked = outs[0][0].split()
    assert len(acked) > 50, "the mover hardly ran"
    assert int(outs[1][0].split()[1]) > 50, "the deleter hardly ran"
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    try:
        kept = {r.id for r in store.list_records("/kept", limit=len(acked) + 10)}
        lost = [name for name in acked if name not in kept]
        assert lost == [], f"{len(lost)} of {len(acked)} acknowledged moves lost"
    finally:
        store.close()
