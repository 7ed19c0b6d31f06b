"""The cyclic garbage collector stops rescanning the objects CrewAI's import built.

After ``import crewai`` the heap holds ~280k GC-tracked objects (modules,
classes, pydantic schemas) that live as long as the process. Every full
collection walks all of them: ~100 ms with the GIL held, which stalls every
thread. Concurrent kickoffs promote their in-flight objects quickly, so a
``kickoff_for_each`` of 20 runs triggered a full collection of 130-200 ms per
fan-out (measured with ``gc.callbacks``): a pause on every run's critical path.

``patch()`` ``gc.freeze()``s what is alive (after one collection, the first
time in a process, so import-time garbage is not kept): those objects
move to the permanent generation, so later full collections only walk what was
created after ``patch()``. Nothing else changes (objects created later are
collected as before). The price: an object alive at ``patch()`` time that is or
later becomes unreachable *inside a reference cycle* is freed only after
``unpatch()`` (which unfreezes them), so call ``patch()`` before building crews,
as ``import crewai_rust.shim`` does. If the application froze the heap itself, or turned the
collector off, RUNTIME leaves the collector alone; so it does on CPython 3.12, which starts with
some objects frozen.
"""

from __future__ import annotations

import gc

_collected_once = False


class HeapFreeze:
    """One ``gc.freeze()`` made by RUNTIME, and how to take it back."""

    def __init__(self) -> None:
        self.frozen = 0

    def freeze(self) -> str | None:
        """Freeze the heap; returns why not when the collector is not ours to tune."""
        if not gc.isenabled():
            return "the cyclic collector is disabled"
        if gc.get_freeze_count():
            # the application froze it, or the interpreter did (CPython 3.12 starts with ~375 objects
            # frozen): gc.unfreeze() is all or nothing, so a freeze on top could not be undone exactly
            return "the heap was already frozen (by the application or the interpreter)"
        global _collected_once
        if not _collected_once:  # ~0.1 s; later patch() calls (tests) skip it
            gc.collect()
            _collected_once = True
        gc.freeze()
        self.frozen = gc.get_freeze_count()
        return None

    def unfreeze(self) -> None:
        """Give the frozen objects back to the collector, unless someone froze more on top of ours.

        The count only shrinks while nobody else freezes (frozen objects freed by
        reference counting leave the permanent generation); a larger count means
        the application froze after us, and its freeze is kept.
        """
        if self.frozen and 0 < gc.get_freeze_count() <= self.frozen:
            gc.unfreeze()
        self.frozen = 0


__all__ = ["HeapFreeze"]
