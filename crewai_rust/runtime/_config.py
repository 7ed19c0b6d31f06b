"""Options of the RUNTIME component: ``patch(runtime={...})`` over environment variables over defaults.

Environment variables (read when ``patch()`` runs), each a 1/0 switch, all on by default:

- ``CREWAI_RUST_RUNTIME_STATE_CACHE``: build a Flow's ``StateWithId`` class once per state type
- ``CREWAI_RUST_RUNTIME_LOOP_REUSE``: one event loop per thread across Flow runs, no thread hop
  for the engine's own no-op steps (persistence off, no memory, nothing to flush)
- ``CREWAI_RUST_RUNTIME_INLINE_STEPS``: the agent executor's routing steps (counters, no LLM/tool
  call) run on the loop instead of a worker thread (with ``loop_reuse``)
- ``CREWAI_RUST_RUNTIME_LISTENER_INDEX``: listener lookup after each step from a per-definition index
- ``CREWAI_RUST_RUNTIME_SIGNATURES``: a flow method's signature computed once per method function,
  not each time a Flow instance binds it
- ``CREWAI_RUST_RUNTIME_FILE_STORE``: no event loop for the file store's no-op coroutines
- ``CREWAI_RUST_RUNTIME_TOOL_SCHEMA``: a tool's prompt text (argument schema) built once per tool,
  and a model's function-calling schema once per model class
- ``CREWAI_RUST_RUNTIME_EVENT_BUS``: sync event handlers run on one persistent consumer thread, and
  no hand-off for handlers that would return at once
- ``CREWAI_RUST_RUNTIME_STATE_DUMP``: flow state dumped for events without a deep copy first
- ``CREWAI_RUST_RUNTIME_MEMORY_POOL``: memory saves serial per run, runs in parallel; a recall
  waits only for its own run's saves
- ``CREWAI_RUST_RUNTIME_PRIVATE_ATTRS``: a Flow's private attributes read with one dict lookup
  instead of pydantic's ``__getattr__``
- ``CREWAI_RUST_RUNTIME_GC_FREEZE``: ``gc.freeze()`` the heap at ``patch()`` so full collections
  stop rescanning CrewAI's import-time objects (``unpatch()`` unfreezes)
- ``CREWAI_RUST_RUNTIME_SAVE_WORKERS``: threads of that save pool (default 16)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._settings import resolve_settings, setting

DEFAULT_SAVE_WORKERS = 16


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """Which RUNTIME fast paths ``patch()`` installs (all on by default) and the save pool's size."""

    state_cache: bool = setting(True, "CREWAI_RUST_RUNTIME_STATE_CACHE", kind="flag")
    loop_reuse: bool = setting(True, "CREWAI_RUST_RUNTIME_LOOP_REUSE", kind="flag")
    inline_steps: bool = setting(True, "CREWAI_RUST_RUNTIME_INLINE_STEPS", kind="flag")
    listener_index: bool = setting(True, "CREWAI_RUST_RUNTIME_LISTENER_INDEX", kind="flag")
    signatures: bool = setting(True, "CREWAI_RUST_RUNTIME_SIGNATURES", kind="flag")
    file_store: bool = setting(True, "CREWAI_RUST_RUNTIME_FILE_STORE", kind="flag")
    tool_schema: bool = setting(True, "CREWAI_RUST_RUNTIME_TOOL_SCHEMA", kind="flag")
    memory_pool: bool = setting(True, "CREWAI_RUST_RUNTIME_MEMORY_POOL", kind="flag")
    event_bus: bool = setting(True, "CREWAI_RUST_RUNTIME_EVENT_BUS", kind="flag")
    state_dump: bool = setting(True, "CREWAI_RUST_RUNTIME_STATE_DUMP", kind="flag")
    private_attrs: bool = setting(True, "CREWAI_RUST_RUNTIME_PRIVATE_ATTRS", kind="flag")
    gc_freeze: bool = setting(True, "CREWAI_RUST_RUNTIME_GC_FREEZE", kind="flag")
    save_workers: int = setting(DEFAULT_SAVE_WORKERS, "CREWAI_RUST_RUNTIME_SAVE_WORKERS", kind="int")

    def __post_init__(self) -> None:
        workers = int(self.save_workers)
        if workers < 1:
            raise ValueError("runtime save_workers must be at least 1")
        object.__setattr__(self, "save_workers", workers)



def resolve(options: dict[str, Any]) -> RuntimeSettings:
    """Merged settings; unknown option names raise so a typo is never ignored."""
    return resolve_settings(RuntimeSettings, "runtime", options)
