"""Exact, persistent, multi-process memory storage for CrewAI's unified ``Memory``."""

from __future__ import annotations

from ._persistence import StoreDamagedError, StoreFileGoneError, StoreUnreadableError
from ._storage import MemoryStoreClosedError, RustMemoryStorage

__all__ = [
    "MemoryStoreClosedError", "RustMemoryStorage", "StoreDamagedError", "StoreFileGoneError", "StoreUnreadableError",
]
