"""A snapshot's float16 shadow taken over after the open, once a background thread has checked it.

Checking a snapshot is reading every byte of it once: at 100k x 1536 the float16 shadow is a
third of the file (307 of 921 MB) and of the open. A store that picks its kernels on its
own (``shadow=None``) scans float32 first anyway (the shadow pays only after a few
searches), so the open checks the float32 side only, maps the shadow and checks it on a
thread beside the first searches. The index takes it over when that check is done (or
when it needs the shadow and waits for the check); the rows written in between are
rebuilt from their float32 rows, and a damaged shadow is never scanned: the index builds
its own from the rows, as when the file holds none, and the file is rewritten.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)

#: (halves [cap, dim] float16, mapped; inv_scale, norm, err [n] float32)
ShadowArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class DeferredShadow:
    """The file's shadow of the first ``n`` rows, mapped, its check running on a daemon thread."""

    def __init__(self, arrays: ShadowArrays, n: int, check: Callable[[], bool],
                 taken: Callable[[bool], None]) -> None:
        self.arrays = arrays
        self.n = n
        #: rows written since the open: their shadow rows in the file are stale
        self.touched = np.zeros(n, dtype=bool)
        self._check = check
        self._taken = taken
        self._ok = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crewai_rust-memory-shadow-check", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._ok = bool(self._check())
        except (OSError, ValueError, BufferError) as exc:  # the mapping could not be read: as damaged
            logger.warning("crewai_rust memory: the snapshot's float16 shadow could not be checked: %s", exc)
            self._ok = False
        finally:
            self._done.set()

    @property
    def checked(self) -> bool:
        """The check has finished (either way)."""
        return self._done.is_set()

    def verdict(self) -> bool:
        """Whether the file's shadow holds what it was written with (waits for the check)."""
        if not self._done.is_set() and not self._thread.is_alive():
            self._run()  # never started, or a child of fork(), which has no copy of the thread
        self._done.wait()
        return self._ok

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def touch(self, rows: int | slice | np.ndarray) -> None:
        """Rows about to be written: the file's shadow rows there no longer match them."""
        if isinstance(rows, (int, np.integer)):
            if 0 <= rows < self.n:
                self.touched[rows] = True
        elif isinstance(rows, slice):
            self.touched[rows] = True  # a slice past n selects nothing
        else:
            self.touched[rows[rows < self.n]] = True

    def report(self, ok: bool) -> None:
        """The index took the shadow over (``ok``) or built its own instead (damaged)."""
        self._taken(ok)
