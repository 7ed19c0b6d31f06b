"""A ``crewai_core.lock_store`` backend that blocks on the OS lock instead of polling.

Stock locks with ``portalocker.Lock``, which retries a non-blocking ``flock``
every 0.25 s: a waiter sleeps on average 125 ms after the holder is done. This
backend uses the same lock file (``<tmp>/crewai:<md5(name)>.lock``) and the
same ``flock``, so it still excludes other processes, patched or not, but:

* threads of one process queue on a per-name ``threading.Lock`` (woken the
  moment the holder releases, exact timeout);
* against another process it tries ``LOCK_NB`` once, then blocks in the
  kernel (``flock`` releases the GIL). With a finite timeout the blocking call
  runs in a helper thread the caller waits on, so the timeout is honoured; a
  helper that outlives its timeout drops the lock the moment it gets it.
"""

from __future__ import annotations

import fcntl
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from hashlib import md5
from typing import Any

try:  # callers of crewai_core.lock_store catch portalocker's LockException
    from portalocker.exceptions import LockException as _LockBase
except ImportError:  # pragma: no cover - portalocker ships with crewai_core
    _LockBase = RuntimeError  # type: ignore[assignment,misc]

DEFAULT_TIMEOUT = 120.0


class LockTimeoutError(_LockBase, TimeoutError):  # type: ignore[misc,valid-type]
    """The named lock was not acquired within the timeout (also a ``portalocker.LockException``)."""

    def __init__(self, message: str, *, name: str = "", path: str = "", timeout: float | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.path = path
        self.timeout = timeout


def lock_path(name: str, directory: str | None = None) -> str:
    """The file stock ``crewai_core.lock_store`` locks for ``name`` (so the two exclude each other)."""
    channel = f"crewai:{md5(name.encode(), usedforsecurity=False).hexdigest()}"
    return os.path.join(directory or tempfile.gettempdir(), f"{channel}.lock")


class _Waiter:
    """A blocking ``flock`` in a helper thread, abandoned cleanly on timeout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.done = threading.Event()
        self.error: OSError | None = None
        self.abandoned = False
        self._state = threading.Lock()
        threading.Thread(target=self._run, name="crewai-rust-flock-wait", daemon=True).start()

    def _run(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            self.error = exc
        with self._state:
            if self.abandoned:
                os.close(self.fd)  # closing drops the lock we got too late
                return
            self.done.set()

    def wait(self, timeout: float) -> bool:
        """True when the lock was taken within ``timeout``; False hands the fd to the helper."""
        if self.done.wait(timeout):
            return True
        with self._state:
            if self.done.is_set():
                return True
            self.abandoned = True
            return False


class FileLockBackend:
    """Callable for ``crewai_core.lock_store.set_lock_backend``: ``backend(name, timeout=...)``."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory
        self._guard = threading.Lock()
        self._thread_locks: dict[str, threading.Lock] = {}

    # Copies and pickles carry the directory only: the per-name thread locks belong to
    # this process, and the flock on the lock file is what excludes across copies.
    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["directory"])  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, Any]) -> FileLockBackend:
        return type(self)(self.directory)

    def _thread_lock(self, name: str) -> threading.Lock:
        lock = self._thread_locks.get(name)
        if lock is None:
            with self._guard:
                lock = self._thread_locks.setdefault(name, threading.Lock())
        return lock

    def __call__(self, name: str, *, timeout: float | None = DEFAULT_TIMEOUT, **_: Any) -> Any:
        return self._held(name, timeout)

    @contextmanager
    def _held(self, name: str, timeout: float | None) -> Iterator[None]:
        path = lock_path(name, self.directory)
        forever = timeout is None or math.isinf(timeout) or timeout < 0
        deadline = math.inf if forever else time.monotonic() + float(timeout)  # type: ignore[arg-type]

        def fail(holder: str) -> LockTimeoutError:
            return LockTimeoutError(
                f"Failed to acquire lock '{name}' at {path} (timeout={timeout}s): held by another {holder}. "
                "This commonly occurs when several workers share one CrewAI storage.",
                name=name,
                path=path,
                timeout=timeout,
            )

        thread_lock = self._thread_lock(name)
        if not thread_lock.acquire(timeout=-1 if forever else max(0.0, deadline - time.monotonic())):
            raise fail("thread of this process")
        fd = -1
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if forever:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    waiter = _Waiter(fd)
                    if not waiter.wait(max(0.0, deadline - time.monotonic())):
                        fd = -1  # now owned by the abandoned helper
                        raise fail("process") from None
                    if waiter.error is not None:
                        raise waiter.error
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            if fd >= 0:
                os.close(fd)
            thread_lock.release()
