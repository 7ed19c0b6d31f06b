"""WAL checkpoints of a memory store's SQLite file, run beside the writer instead of inside its COMMIT.

Why: with SQLite's default, the commit that pushes the WAL past 1000 pages (4 MB) copies the
WAL into the database file and syncs it before it returns; a save of 100 x 3072 records
writes 1.2 MB, so every third bulk save paid 10-20 ms for it. Here the writer's connection
checkpoints on its own only past a high mark (a safety net), and a daemon thread with its
own connection runs a PASSIVE checkpoint (it never blocks readers or writers) once the
saves since the last one wrote about as much as SQLite's default threshold, and the saves
have paused for :data:`QUIET_S`: on a 2-vCPU machine a checkpoint (copying 4 MB and two
fsyncs) running beside the next save of a burst made that save 1.5-2x slower (saves of
100 x 3072 back to back: every third one); a crew saves between LLM calls, so the pause comes.
A burst that never pauses still checkpoints once :data:`FORCE_BYTES` are unchecked.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from pathlib import Path

#: Bytes written by saves after which the background checkpoint runs (SQLite's default: 1000 pages).
CHECKPOINT_BYTES = 4 * 1024 * 1024
#: The writer connection's own autocheckpoint, as WAL bytes (turned into pages of the file's page
#: size): only when the background one falls behind.
WRITER_AUTOCHECKPOINT_BYTES = 64 * 1024 * 1024
#: The checkpoint waits until no save came for this long...
QUIET_S = 0.05
#: ...unless this much was written since the last checkpoint (well under the writer's own mark).
FORCE_BYTES = 24 * 1024 * 1024


class Checkpointer:
    """Started on the first :meth:`wrote`; :meth:`close` stops the thread (it also ends with the process)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pending = 0
        #: bytes written since the last checkpoint ran, and when the last save committed
        self.unchecked = 0
        self.last_write = time.monotonic()
        #: checkpoints run (tests read it)
        self.runs = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wrote(self, nbytes: int) -> None:
        """A committed write of about ``nbytes``: wake the thread when enough has piled up."""
        self.last_write = time.monotonic()
        self.unchecked += nbytes
        self._pending += nbytes
        if self._pending < CHECKPOINT_BYTES or self._stopping:
            return
        self._pending = 0
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=_run, args=(self._path, self._wake, weakref.ref(self)),
                                                name="crewai_rust-memory-checkpoint", daemon=True)
                self._thread.start()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


def _run(path: Path, wake: threading.Event, owner: "weakref.ref[Checkpointer]") -> None:
    try:
        conn = sqlite3.connect(str(path), timeout=5, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return  # the writer's own autocheckpoint still bounds the WAL
    try:
        while True:
            wake.wait()
            wake.clear()
            while True:  # wait for a pause in the saves (or a WAL grown past FORCE_BYTES)
                keeper = owner()
                if keeper is None or keeper.stopping:
                    return
                quiet = QUIET_S - (time.monotonic() - keeper.last_write)
                urgent = keeper.unchecked >= FORCE_BYTES
                del keeper
                if quiet <= 0 or urgent:
                    break
                time.sleep(quiet)
            keeper = owner()
            if keeper is None or keeper.stopping:
                return
            keeper.unchecked = 0
            del keeper  # a store dropped meanwhile can be collected
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                continue  # busy or gone: the next wake-up (or the writer's autocheckpoint) catches up
            keeper = owner()
            if keeper is not None:
                keeper.runs += 1
            del keeper
    finally:
        conn.close()
