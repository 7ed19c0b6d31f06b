"""Options of the RUNTIME component: ``patch(runtime={...})`` over environment variables over defaults.

Environment variables (read when ``patch()`` runs), each a 1/0 switch, all on by default:

- ``CREWAI_RUST_RUNTIME_STATE_CACHE``: build a Flow's ``StateWithId`` class once per state type
- ``CREWAI_RUST_RUNTIME_LOOP_REUSE``: one event loop per thread across Flow runs, no thread hop
  for the engine's own no-op steps (persistence off, no memory, nothing to flush)
- ``CREWAI_RUST_RUNTIME_INLINE_STEPS``: the agent executor's routing steps (counters, no LLM/tool
  call) run on the loop instead of a worker thread (with ``loop_reuse``)
- ``CREWAI_RUST_RUNTIME_LISTENER_INDEX``: listener lookup after each step from a per-definition index
- ``CREWAI_RUST_RUNTIME_FILE_STORE``: no event loop for the file store's no-op coroutines
- ``CREWAI_RUST_RUNTIME_TOOL_SCHEMA``: a tool's prompt text (argument schema) built once per tool,
  and a model's function-calling schema once per model class
- ``CREWAI_RUST_RUNTIME_EVENT_BUS``: sync event handlers run on one persistent consumer thread, and
  no hand-off for handlers that would return at once
- ``CREWAI_RUST_RUNTIME_STATE_DUMP``: flow state dumped for events without a deep copy first
- ``CREWAI_RUST_RUNTIME_MEMORY_POOL``: memory saves serial per run, runs in parallel; a recall
  waits only for its own run's saves
- ``CREWAI_RUST_RUNTIME_SAVE_WORKERS``: threads of that save pool (default 16)
"""

from __future__ import annotations

from typing import Any

from .._env import env_flag, env_int

_FLAG_ENV = {
    "state_cache": "CREWAI_RUST_RUNTIME_STATE_CACHE",
    "loop_reuse": "CREWAI_RUST_RUNTIME_LOOP_REUSE",
    "inline_steps": "CREWAI_RUST_RUNTIME_INLINE_STEPS",
    "listener_index": "CREWAI_RUST_RUNTIME_LISTENER_INDEX",
    "file_store": "CREWAI_RUST_RUNTIME_FILE_STORE",
    "tool_schema": "CREWAI_RUST_RUNTIME_TOOL_SCHEMA",
    "memory_pool": "CREWAI_RUST_RUNTIME_MEMORY_POOL",
    "event_bus": "CREWAI_RUST_RUNTIME_EVENT_BUS",
    "state_dump": "CREWAI_RUST_RUNTIME_STATE_DUMP",
}
DEFAULT_SAVE_WORKERS = 16
KNOWN = set(_FLAG_ENV) | {"save_workers"}


def resolve(options: dict[str, Any]) -> dict[str, Any]:
    """Merged settings; unknown option names raise so a typo is never ignored."""
    unknown = sorted(set(options) - KNOWN)
    if unknown:
        raise TypeError(f"unknown runtime option(s) {unknown}; known: {sorted(KNOWN)}")
    settings: dict[str, Any] = {}
    for name, env in _FLAG_ENV.items():
        settings[name] = bool(options[name]) if name in options else env_flag(env, True)
    if "save_workers" in options:
        workers = int(options["save_workers"])
        if workers < 1:
            raise ValueError("runtime save_workers must be at least 1")
        settings["save_workers"] = workers
    else:
        settings["save_workers"] = env_int("CREWAI_RUST_RUNTIME_SAVE_WORKERS", DEFAULT_SAVE_WORKERS)
    return settings
