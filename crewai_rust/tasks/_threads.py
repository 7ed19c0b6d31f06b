"""A process-wide pool of reusable daemon threads for the python twin.

Why not ``ThreadPoolExecutor``: its threads are joined at interpreter exit,
so a callable still running after Ctrl-C would hold the process open. These
threads are daemons, are reused while work keeps coming, and exit after
``IDLE_SECONDS`` without work, so an idle process keeps none of them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

IDLE_SECONDS = 10.0


class DaemonThreadPool:
    """Runs zero-argument callables on reused daemon threads, never more threads than concurrent calls."""

    def __init__(self, name: str = "crewai_rust-task", idle_seconds: float = IDLE_SECONDS) -> None:
        self._name = name
        self._idle_seconds = idle_seconds
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._unclaimed_idle = 0  # idle threads not yet promised to a queued callable
        self._threads = 0
        self._counter = 0

    @property
    def threads(self) -> int:
        """Threads alive right now (busy or idle)."""
        return self._threads

    def spawn(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on an idle thread, or on a new one when none is idle."""
        with self._lock:
            reuse = self._unclaimed_idle > 0
            if reuse:
                self._unclaimed_idle -= 1
            else:
                self._threads += 1
                self._counter += 1
                number = self._counter
        self._work.put(fn)
        if not reuse:
            threading.Thread(target=self._loop, name=f"{self._name}-{number}", daemon=True).start()

    def _loop(self) -> None:
        try:
            while True:
                try:
                    fn = self._work.get(timeout=self._idle_seconds)
                except queue.Empty:
                    with self._lock:
                        # Exit only if some idle thread is unclaimed; otherwise a
                        # callable was promised to the waiting threads, so wait on.
                        if self._unclaimed_idle > 0:
                            self._unclaimed_idle -= 1
                            self._threads -= 1
                            return
                    continue
                fn()
                del fn
                with self._lock:
                    self._unclaimed_idle += 1
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise


_shared: DaemonThreadPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> DaemonThreadPool:
    """The one pool every python-twin executor schedules its workers on."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = DaemonThreadPool()
    return _shared
