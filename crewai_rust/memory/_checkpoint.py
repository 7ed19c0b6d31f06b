"""WAL checkpoints of a memory store's SQLite file, run beside the writer instead of inside its COMMIT.

Why: with SQLite's default, the commit that pushes the WAL past 1000 pages (4 MB) copies the
WAL into the database file and syncs it before it returns; a save of 100 x 3072 records
writes 1.2 MB, so every third bulk save paid 10-20 ms for it. Here the writer's connection
checkpoints on its own only past a high mark (a safety net), and a daemon thread with its
own connection runs a PASSIVE checkpoint (it never blocks readers or writers) once the
saves since the last one wrote about as much as SQLite's default threshold.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from pathlib import Path

#: Bytes written by saves after which the background checkpoint runs (SQLite's default: 1000 pages).
CHECKPOINT_BYTES = 4 * 1024 * 1024
#: The writer connection's own autocheckpoint, as WAL bytes (turned into pages of the file's page
#: size): only when the background one falls behind.
WRITER_AUTOCHECKPOINT_BYTES = 64 * 1024 * 1024


class Checkpointer:
    """Started on the first :meth:`wrote`; :meth:`close` stops the thread (it also ends with the process)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pending = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wrote(self, nbytes: int) -> None:
        """A committed write of about ``nbytes``: wake the thread when enough has piled up."""
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
            keeper = owner()
            if keeper is None or keeper.stopping:
                return
            del keeper
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                pass  # busy or gone: the next wake-up (or the writer's autocheckpoint) catches up
    finally:
        conn.close()
