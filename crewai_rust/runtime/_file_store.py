"""``crewai.utilities.file_store._run_sync`` without an event loop when there is no file store.

Without aiocache (the default install) every file-store coroutine returns at
its first line, yet ``_run_sync`` runs each in a fresh event loop (or a fresh
thread plus loop, under a running loop) 5-17 times per kickoff. A coroutine
that cannot suspend is run to its end by one ``send(None)``: same value, same
exception. Any other coroutine, or a configured store, keeps CrewAI's path.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any

#: The file-store coroutines that return before their first ``await`` when no store exists.
NO_STORE_COROUTINES = (
    "astore_files", "aget_files", "aclear_files", "astore_task_files", "aget_task_files",
    "aclear_task_files", "aget_all_files",
)


def make_run_sync(module: ModuleType, original: Callable[[Coroutine[Any, Any, Any]], Any]) -> Callable[..., Any]:
    """A ``_run_sync`` that skips the loop for ``module``'s no-op coroutines while its store is None."""
    codes = {getattr(module, name).__code__ for name in NO_STORE_COROUTINES if hasattr(module, name)}

    def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
        if module._file_store is not None or getattr(coro, "cr_code", None) not in codes:
            return original(coro)
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value
        coro.close()
        raise RuntimeError("crewai_rust RUNTIME: a file-store coroutine suspended although no store is configured")

    _run_sync.__doc__ = original.__doc__
    _run_sync.__wrapped__ = original  # type: ignore[attr-defined]
    return _run_sync
