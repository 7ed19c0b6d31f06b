"""``patch()`` for RUNTIME: Flow state classes, event loop, listener lookup, file store, tool text, memory saves."""

from __future__ import annotations

from typing import Any

from .._patcher import Patcher
from . import _config, _listeners, _state, _tool_schema
from ._file_store import make_run_sync
from ._loop import FlowAsyncio, make_skip

FLOW_MODULE = "crewai.flow.runtime"
FILE_STORE = "crewai.utilities.file_store"


def _flow_class(patcher: Patcher, attr: str) -> Any:
    flow_cls = patcher.resolve(f"{FLOW_MODULE}:Flow")
    if flow_cls is not None and attr not in vars(flow_cls):
        patcher.report_missing(f"{FLOW_MODULE}:Flow.{attr}", "not defined on Flow in this CrewAI version")
        return None
    return flow_cls


def _patch_state_cache(patcher: Patcher) -> None:
    flow_cls = _flow_class(patcher, "_create_initial_state")
    if flow_cls is None or patcher.resolve(f"{FLOW_MODULE}:FlowState") is None:
        return
    if "_create_default_extension_state" not in vars(flow_cls):
        patcher.report_missing(f"{FLOW_MODULE}:Flow._create_default_extension_state", "not defined on Flow")
        return
    runtime = patcher.resolve(FLOW_MODULE)
    names = ("_build_definition_state_model", "resolve_ref", "logger")
    if all(hasattr(runtime, n) for n in names):
        patcher.replace(FLOW_MODULE, "_build_definition_state_model", _state.make_build_definition_state_model(runtime))
    else:
        patcher.report_missing(f"{FLOW_MODULE}:_build_definition_state_model", "not in this CrewAI version")
    original = vars(flow_cls)["_create_initial_state"]
    patcher.replace(f"{FLOW_MODULE}:Flow", "_create_initial_state", _state.make_create_initial_state(flow_cls, original))


def _patch_loop(patcher: Patcher) -> None:
    flow_cls = _flow_class(patcher, "kickoff")
    bus = patcher.resolve("crewai.events.event_bus:crewai_event_bus")
    if flow_cls is None or bus is None:
        return
    for attr in ("_persist_method_completion", "_drain_memory_writes"):
        if attr not in vars(flow_cls):
            patcher.report_missing(f"{FLOW_MODULE}:Flow.{attr}", "not defined on Flow")
            return
    for attr in ("_has_pending_events", "_futures_lock", "_pending_futures"):
        if not hasattr(bus, attr):
            patcher.report_missing(f"crewai.events.event_bus:crewai_event_bus.{attr}", "not on the event bus")
            return
    patcher.replace(FLOW_MODULE, "asyncio", FlowAsyncio(make_skip(flow_cls, bus)))


def _patch_listener_index(patcher: Patcher) -> None:
    flow_cls = _flow_class(patcher, "_find_triggered_methods")
    if flow_cls is None:
        return
    for name in ("_condition_satisfied", "_is_multi_event_or", "FlowMethodName", "PendingListenerKey"):
        if patcher.resolve(f"{FLOW_MODULE}:{name}") is None:
            return
    original = vars(flow_cls)["_find_triggered_methods"]
    patcher.replace(f"{FLOW_MODULE}:Flow", "_find_triggered_methods",
                    _listeners.make_find_triggered_methods(flow_cls, original))


def _patch_file_store(patcher: Patcher) -> None:
    module = patcher.resolve(FILE_STORE)
    if module is None:
        return
    original = getattr(module, "_run_sync", None)
    if original is None or not hasattr(module, "_file_store"):
        patcher.report_missing(f"{FILE_STORE}:_run_sync", "not in this CrewAI version")
        return
    patcher.replace(FILE_STORE, "_run_sync", make_run_sync(module, original))


TOOL_TEXT_MODULES = ("crewai.tools.structured_tool", "crewai.tools.base_tool")


def _patch_tool_schema(patcher: Patcher) -> None:
    source = patcher.resolve(f"{TOOL_TEXT_MODULES[0]}:format_description_for_llm")
    if source is None:
        return
    fast = _tool_schema.make_format_description(source)
    for module in TOOL_TEXT_MODULES:
        if patcher.resolve(f"{module}:format_description_for_llm") is source:
            patcher.replace(module, "format_description_for_llm", fast)
        else:
            patcher.report_missing(f"{module}:format_description_for_llm", "does not bind CrewAI's function")


def activate(patcher: Patcher, options: dict[str, Any]) -> str:
    """Install the enabled fast paths; RUNTIME has no Rust twin (it removes work, it computes nothing)."""
    settings = _config.resolve(options)
    if settings["state_cache"]:
        _patch_state_cache(patcher)
    if settings["loop_reuse"]:
        _patch_loop(patcher)
    if settings["listener_index"]:
        _patch_listener_index(patcher)
    if settings["file_store"]:
        _patch_file_store(patcher)
    if settings["tool_schema"]:
        _patch_tool_schema(patcher)
    if settings["memory_pool"]:
        from ._memory import patch_memory

        patch_memory(patcher, settings["save_workers"])
    return "python"


def deactivate() -> None:
    _state.clear()
    _listeners.clear()
    _tool_schema.clear()
    from ._memory import shutdown

    shutdown()
