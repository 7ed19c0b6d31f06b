"""Faulting in the index's spare rows ahead of the saves that will fill them, on a background thread.

Why: the matrix grows by doubling into fresh anonymous memory, and the kernel zeroes each
page (a 2 MB huge page under THP) on its first write. A save of 100 x 3072 appends 1.2 MB,
so about half of its index update (0.45 of 0.87 ms, Intel Xeon) was those first-touch
faults. ``madvise(MADV_POPULATE_WRITE)`` (Linux 5.14+) takes the same faults on a daemon
thread right after a save (ctypes releases the GIL), so the next save writes into pages
that are already there. The contents never change: populating only maps zeroed (or, for a
private file mapping, copied) pages in, so a save racing with it writes what it would
have written anyway. Elsewhere, or when the kernel refuses, this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import sys
import threading
from typing import Any

import numpy as np

logger = logging.getLogger("crewai_rust.memory")

_MADV_POPULATE_WRITE = 23
_PAGE = 4096
#: Bytes populated ahead of the last row: at least this, or twice the last save's bytes.
MIN_AHEAD_BYTES = 4 * 1024 * 1024
#: Never more than this ahead (a huge save does not commit twice its size in spare RAM).
MAX_AHEAD_BYTES = 32 * 1024 * 1024
#: Bytes per ``madvise`` call (one huge page): the kernel holds the page-table locks for one call.
_STEP = 2 * 1024 * 1024
#: Arrays smaller than this grow on the save path (the copy takes a few ms at most).
REGROW_MIN_BYTES = 8 * 1024 * 1024
#: The doubled array is prepared once fewer rows than 1/REGROW_LEAD of the capacity (or two saves) are spare.
REGROW_LEAD = 16

_lock = threading.Lock()
_jobs: "queue.SimpleQueue[tuple[np.ndarray, int, int]]" = queue.SimpleQueue()
_thread: threading.Thread | None = None
_madvise: Any = None
_enabled = sys.platform.startswith("linux")
_settled = threading.Condition()
_submitted = 0
_finished = 0
#: bytes the kernel populated for the index so far (tests read it)
populated_bytes = 0
#: grows that copied into an array prepared ahead (:class:`NextArrays`; tests read it)
prepared_grows = 0


def _libc_madvise() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.madvise
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


def _worker() -> None:
    global _enabled, _finished, populated_bytes
    while True:
        array, start, length = _jobs.get()
        try:
            base = array.ctypes.data + start
            for offset in range(0, length, _STEP):  # short calls: a save's own faults never wait long
                if not _enabled:
                    break
                step = min(_STEP, length - offset)
                if _madvise(base + offset, step, _MADV_POPULATE_WRITE) == 0:
                    populated_bytes += step
                else:
                    _enabled = False  # an older kernel (EINVAL) or no memory to spare: stop trying
                    logger.debug("memory index prefault off: madvise errno %d", ctypes.get_errno())
        finally:
            del array  # the job held the array alive while the kernel walked it
            with _settled:
                _finished += 1
                _settled.notify_all()


def settle(timeout: float = 10.0) -> bool:
    """Wait until every requested range was populated (tests); False on timeout."""
    with _settled:
        return _settled.wait_for(lambda: _finished >= _submitted, timeout)


def enabled() -> bool:
    """Whether pages are populated ahead (Linux, and the kernel has not refused)."""
    return _enabled


def _submit(array: np.ndarray, start: int, length: int) -> None:
    global _thread, _madvise, _enabled, _submitted
    with _lock:
        if _thread is None:
            try:
                _madvise = _libc_madvise()
            except (OSError, AttributeError):
                _enabled = False
                return
            _thread = threading.Thread(target=_worker, name="crewai_rust-memory-prefault", daemon=True)
            _thread.start()
    with _settled:
        _submitted += 1
    _jobs.put((array, start, length))


def _after_fork() -> None:
    """A forked child has no worker thread: it starts its own on its first request."""
    global _thread, _jobs, _settled, _submitted, _finished
    _thread, _jobs, _settled, _submitted, _finished = None, queue.SimpleQueue(), threading.Condition(), 0, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _ahead_bytes(last_batch: int, row_bytes: int) -> int:
    """How far past the rows in use to populate: about two more saves, within the bounds above."""
    return min(max(2 * last_batch * row_bytes, MIN_AHEAD_BYTES), MAX_AHEAD_BYTES)


def _submit_pages(array: np.ndarray, begin: int, end: int) -> bool:
    """Queue bytes ``begin``..``end`` of ``array`` (whole pages inside it only); False when none."""
    base = array.ctypes.data
    first = -(-(base + begin) // _PAGE) * _PAGE - base
    last = (base + end) // _PAGE * _PAGE - base
    if last - first < _PAGE:
        return False
    _submit(array, first, last - first)
    return True


class Prefault:
    """Per index: how far its current arrays were populated, so each page is asked for once."""

    def __init__(self) -> None:
        #: slot -> (address, size, bytes populated from its start) of the array last asked for
        self._done: dict[int, tuple[int, int, int]] = {}

    def ahead(self, slot: int, array: np.ndarray, rows: int, last_batch: int) -> None:
        """Populate ``array`` (rows of equal size, C order) past row ``rows`` by about two more saves."""
        if not _enabled or array.ndim != 2 or not array.flags.c_contiguous or not array.flags.writeable:
            return
        row_bytes = array.shape[1] * array.itemsize
        if row_bytes == 0:
            return
        total = array.shape[0] * row_bytes
        want = _ahead_bytes(last_batch, row_bytes)
        base = array.ctypes.data
        done = self._done.get(slot)
        begin = rows * row_bytes
        if done is not None and done[:2] == (base, total):
            begin = max(begin, done[2])
        end = min(total, rows * row_bytes + want)
        if _submit_pages(array, begin, end):
            self._done[slot] = (base, total, (base + end) // _PAGE * _PAGE - base)


class NextArrays:
    """Per index: the doubled array the next grow copies into, allocated and populated before it is needed.

    Why: the save that outgrew the matrix copied every row into fresh memory, taking each
    page's first-touch fault on the save path. On the Intel Xeon VM (2 vCPUs) a save of
    1000 x 3072 that doubled 8k rows to 16k spent 255 ms in the grow alone (fresh memory
    faulted in at 0.4-1.5 GB/s; a copy into populated pages runs at 7 GB/s), which made
    back-to-back saves of 1000 records swing from 33 to 350 ms. Once the spare rows run
    low, the doubled array is allocated here and the worker populates the part the grow
    will copy into (the rows in use and about two saves more: what the copy itself would
    fault in, so resident memory is the same, only sooner). The grow then copies into
    it, racing the worker harmlessly if it is not done (both only map zeroed pages in).
    """

    def __init__(self) -> None:
        self._ready: dict[int, np.ndarray] = {}

    def prepare(self, slot: int, array: np.ndarray, rows: int, last_batch: int) -> None:
        """After a save that left ``rows`` of ``array`` in use: prepare its doubled successor when due."""
        if not _enabled or array.ndim != 2 or not array.flags.c_contiguous:
            return
        cap, width = array.shape
        row_bytes = width * array.itemsize
        if cap * row_bytes < REGROW_MIN_BYTES or cap - rows >= max(2 * last_batch, cap // REGROW_LEAD):
            return
        shape = (2 * cap, width)
        ready = self._ready.get(slot)
        if ready is not None and ready.shape == shape and ready.dtype == array.dtype:
            return
        successor = np.zeros(shape, dtype=array.dtype)  # only reserved: nothing is touched here
        self._ready[slot] = successor
        _submit_pages(successor, 0, min(successor.nbytes, rows * row_bytes + _ahead_bytes(last_batch, row_bytes)))

    def take(self, slot: int, shape: tuple[int, int], dtype: Any) -> np.ndarray | None:
        """The prepared array for ``slot`` when it has this shape and dtype (all zeros); else None."""
        global prepared_grows
        ready = self._ready.pop(slot, None)
        if ready is None or ready.shape != shape or ready.dtype != np.dtype(dtype):
            return None
        prepared_grows += 1
        return ready

    def zeros(self, slot: int, shape: tuple[int, int], dtype: Any) -> np.ndarray:
        """A zeroed array of this shape and dtype for ``slot``'s grow: the prepared one when it fits."""
        ready = self.take(slot, shape, dtype)
        return ready if ready is not None else np.zeros(shape, dtype=dtype)

    def drop(self) -> None:
        """Forget every prepared array (the index was cleared or replaced)."""
        self._ready.clear()
