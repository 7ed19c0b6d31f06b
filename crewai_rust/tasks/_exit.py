"""Interpreter exit with fan-out jobs still running: wait for them, never abort.

Our jobs run on daemon threads (python twin) or on Rust threads (rust twin). A
Rust thread that re-takes the GIL once finalization has started is ended by
CPython with ``pthread_exit``, and its forced unwind aborts the process
(SIGABRT) as soon as it meets a Rust frame. So exit drains, in two steps:

1. a ``threading`` exit hook (it runs before the non-daemon threads are joined
   and before ``concurrent.futures`` refuses new work, which CrewAI's task
   bodies need) waits for every job: a pending ``Task.execute_async`` runs to
   the end, items of a batch interrupted by Ctrl-C that were running finish
   (the ones not started stay cancelled);
2. an ``atexit`` hook (after those threads were joined, before finalization)
   stops batch workers from claiming more items and waits for the last jobs,
   so no Rust thread touches Python once finalization starts.

Stock CrewAI 1.15.30 runs ``execute_async`` on a daemon thread and abandons it
at exit (it can abort too, when that thread sits in native code).

Ctrl-C must still stop the program at once: when the program ends with an
uncaught ``KeyboardInterrupt`` (its traceback is already printed) while jobs
are still running, or a second Ctrl-C arrives while draining, the process
ends there by SIGINT, as CPython does after a ``KeyboardInterrupt``, without
finalizing (which those jobs could abort).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from typing import Any

_POLL_SECONDS = 0.005

_lock = threading.Lock()
_idle = threading.Condition(_lock)
_pending = 0  # python-thread workers and nested jobs not finished yet
_registered = False
closing = False  # set at the final step: python-twin workers start no more batch items


def job_started() -> None:
    """A worker or job was scheduled on a python thread (it counts until :func:`job_finished`)."""
    global _pending
    with _lock:
        _pending += 1


def job_finished() -> None:
    global _pending
    with _lock:
        _pending -= 1
        if _pending <= 0:
            _idle.notify_all()


def register(module: Any | None) -> None:
    """Install the exit hook once (called when an executor is created)."""
    global _registered, _rust_module
    with _lock:
        if module is not None:
            _rust_module = module
        if _registered:
            return
        _registered = True
    import concurrent.futures.thread  # noqa: F401  (its exit hook registered first runs after ours)

    try:
        threading._register_atexit(drain)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # no such hook, or already shutting down
        pass
    atexit.register(drain, close=True)


_rust_module: Any | None = None


def _rust_active() -> int:
    module = _rust_module
    return int(module.fanout_active()) if module is not None else 0


def drain(close: bool = False) -> None:
    """Wait until no fan-out job can run Python code any more (see the module docstring)."""
    global closing
    module = _rust_module
    if close:
        closing = True
        if module is not None:
            module.fanout_close()
    if _interrupted() and (_pending > 0 or _rust_active() > 0):
        _die_by_sigint()
    try:
        with _lock:
            while _pending > 0:
                _idle.wait(0.05)
        while _rust_active() > 0:
            time.sleep(_POLL_SECONDS)  # releases the GIL so the jobs can finish
    except KeyboardInterrupt:
        if _pending > 0 or _rust_active() > 0:
            _die_by_sigint()
        raise


def _interrupted() -> bool:
    """True when the program is ending because of an uncaught ``KeyboardInterrupt``."""
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return isinstance(last, KeyboardInterrupt)


def _die_by_sigint() -> None:
    """End now, the way CPython ends after an unhandled Ctrl-C, without finalizing under running jobs."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    finally:
        os._exit(130)
