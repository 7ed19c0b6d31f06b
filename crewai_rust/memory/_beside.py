"""Running a save's index update on a helper thread while the caller sits in the COMMIT.

Why: SQLite's COMMIT of a bulk save (writing its WAL frames, about 1 ms for 100 x 3072) runs
with the GIL released, while the index update that follows it (copying the vectors into the
matrix, norms, filter codes: about 0.8 ms) holds the GIL. A helper thread that is already
waiting for the GIL takes it the moment the COMMIT releases it, so the two run at once
instead of one after the other. The caller holds the store's lock throughout and waits for
the helper before it returns, so no reader sees the index between the two; a failed COMMIT
is undone by the caller (see ``RustMemoryStorage.save``).

One helper per process, one job at a time: a second store committing at the same moment
runs its job itself after its COMMIT, as before. A forked child starts its own helper.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["beside", "jobs_run"]

_claim = threading.Lock()
_go = threading.Semaphore(0)
_done = threading.Event()
_job: Callable[[], object] | None = None
_error: BaseException | None = None
_thread: threading.Thread | None = None
#: jobs the helper ran in this process (tests read it)
jobs_run = 0


def _worker() -> None:
    global _error, jobs_run
    while True:
        _go.acquire()
        job = _job
        try:
            if job is not None:
                job()
                jobs_run += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            _error = exc
        finally:
            _done.set()


def _ensure_thread() -> bool:
    global _thread
    if _thread is None:
        try:
            thread = threading.Thread(target=_worker, name="crewai_rust-memory-beside", daemon=True)
            thread.start()
        except RuntimeError:  # interpreter shutting down, or no thread to spare
            return False
        _thread = thread
    return True


def beside(job: Callable[[], object], call: Callable[[], T]) -> T:
    """``call()`` here while ``job()`` runs on the helper; returns ``call()``'s result once both ended.

    ``job``'s error is raised after ``call()`` returned (``call()``'s own error wins). When the
    helper is taken (another store's commit) or cannot start, ``job()`` runs here after a
    successful ``call()``; a ``job`` that must know where it ran records it itself.
    """
    global _job, _error
    if not _claim.acquire(blocking=False):
        result = call()
        job()
        return result
    try:
        if not _ensure_thread():
            result = call()
            job()
            return result
        _job, _error = job, None
        _done.clear()
        _go.release()
        try:
            result = call()
        finally:
            _done.wait()
        if _error is not None:
            raise _error
        return result
    finally:
        _job = _error = None
        _claim.release()


def _after_fork() -> None:
    """The child has no helper thread (and maybe a copy of a claimed lock): start afresh."""
    global _claim, _go, _done, _job, _error, _thread
    _claim, _go, _done = threading.Lock(), threading.Semaphore(0), threading.Event()
    _job = _error = _thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
