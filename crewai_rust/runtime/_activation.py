"""``patch()`` for RUNTIME: Flow state classes, event loop, listener lookup, method signatures, event bus, file store, tool text, memory saves, private attributes, heap freeze."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from .._patcher import Patcher
from . import _config, _events, _listeners, _private, _state, _tool_schema
from ._file_store import make_run_sync
from ._gc import HeapFreeze
from ._loop import FlowAsyncio, Predicate, make_inline, make_skip
from ._loop import _never as _loop_never
from ._signature import FlowInspect

FLOW_MODULE = "crewai.flow.runtime"
FILE_STORE = "crewai.utilities.file_store"
EVENT_BUS = "crewai.events.event_bus"
AGENT_UTILS = "crewai.utilities.agent_utils"
FLOW_WRAPPERS = "crewai.flow.flow_wrappers"

_consumer: _events.Consumer | None = None

#: CrewAI's Flow base and the Flows CrewAI itself runs per kickoff (agent executor, memory recall/encoding).
PRIVATE_ATTR_CLASSES = (f"{FLOW_MODULE}:Flow", "crewai.agents.agent_executor:AgentExecutor",
                        "crewai.memory.recall_flow:RecallFlow", "crewai.memory.encoding_flow:EncodingFlow")


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


def _patch_loop(patcher: Patcher, inline_steps: bool) -> None:
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
    inline: Predicate = _loop_never
    if inline_steps:
        inline, missing = make_inline()
        for target in missing:
            patcher.report_missing(target, "a step RUNTIME runs inline is not there: it keeps CrewAI's thread hop")
    patcher.replace(FLOW_MODULE, "asyncio", FlowAsyncio(make_skip(flow_cls, bus), inline))


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


def _patch_signatures(patcher: Patcher) -> None:
    module = patcher.resolve(FLOW_WRAPPERS)
    if module is None:
        return
    if getattr(module, "inspect", None) is not inspect or not hasattr(module, "FlowMethod"):
        patcher.report_missing(f"{FLOW_WRAPPERS}:inspect", "FlowMethod does not reach the inspect module here")
        return
    patcher.replace(FLOW_WRAPPERS, "inspect", FlowInspect())


def _patch_file_store(patcher: Patcher) -> None:
    module = patcher.resolve(FILE_STORE)
    if module is None:
        return
    original = getattr(module, "_run_sync", None)
    if original is None or not hasattr(module, "_file_store"):
        patcher.report_missing(f"{FILE_STORE}:_run_sync", "not in this CrewAI version")
        return
    patcher.replace(FILE_STORE, "_run_sync", make_run_sync(module, original))


def _patch_state_dump(patcher: Patcher) -> None:
    flow_cls = _flow_class(patcher, "_copy_and_serialize_state")
    if flow_cls is None:
        return
    original = vars(flow_cls)["_copy_and_serialize_state"]
    patcher.replace(f"{FLOW_MODULE}:Flow", "_copy_and_serialize_state", _state.make_copy_and_serialize_state(original))


def _patch_event_bus(patcher: Patcher) -> None:
    global _consumer
    bus_cls = patcher.resolve(f"{EVENT_BUS}:CrewAIEventsBus")
    if bus_cls is None:
        return
    needed = ("emit", "_prepare_event", "_call_handlers", "_track_future", "_ensure_executor_initialized")
    missing = [n for n in needed if n not in vars(bus_cls)]
    bus = patcher.resolve(f"{EVENT_BUS}:crewai_event_bus")
    if bus is None:
        return
    missing += [n for n in ("_rwlock", "_sync_handlers", "_async_handlers", "_handler_dependencies", "_shutting_down")
                if not hasattr(bus, n)]
    if missing:
        for name in missing:
            patcher.report_missing(f"{EVENT_BUS}:CrewAIEventsBus.{name}", "not on CrewAI's event bus")
        return
    if _events._legacy_trace_code() is None:
        patcher.report_missing("crewai.events.listeners.tracing.trace_listener:TraceCollectionListener._on",
                               "no legacy_handler wrapper: its idle handlers are handed off as in stock")
    consumer = _events.Consumer()
    if patcher.replace(f"{EVENT_BUS}:CrewAIEventsBus", "emit", _events.make_emit(bus_cls, vars(bus_cls)["emit"], consumer)):
        _consumer = consumer


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
    schema_source = patcher.resolve("crewai.utilities.pydantic_schema_utils:generate_model_description")
    if schema_source is None:
        return
    if patcher.resolve(f"{AGENT_UTILS}:generate_model_description") is schema_source:
        patcher.replace(AGENT_UTILS, "generate_model_description", _tool_schema.make_generate_model_description(schema_source))
    else:
        patcher.report_missing(f"{AGENT_UTILS}:generate_model_description", "does not bind CrewAI's function")


def _patch_private_attrs(patcher: Patcher) -> None:
    for path in PRIVATE_ATTR_CLASSES:
        cls = patcher.resolve(path)
        if cls is None:
            continue
        if not isinstance(getattr(cls, "__private_attributes__", None), dict):
            patcher.report_missing(f"{path}.__private_attributes__", "not a pydantic model with private attributes")
            continue
        names = _private.install(cls)
        if names:
            patcher.add_undo(f"{path}.<private attributes>", functools.partial(_private.uninstall, cls, names))


def _patch_gc(patcher: Patcher) -> None:
    freeze = HeapFreeze()
    reason = freeze.freeze()
    if reason is not None:
        patcher.keep("gc.freeze", reason)
        return
    patcher.add_undo("gc.freeze", freeze.unfreeze)


def activate(patcher: Patcher, options: dict[str, Any]) -> str:
    """Install the enabled fast paths; RUNTIME has no Rust twin (it removes work, it computes nothing)."""
    settings = _config.resolve(options)
    if settings.state_cache:
        _patch_state_cache(patcher)
    if settings.loop_reuse:
        _patch_loop(patcher, settings.inline_steps)
    if settings.listener_index:
        _patch_listener_index(patcher)
    if settings.signatures:
        _patch_signatures(patcher)
    if settings.state_dump:
        _patch_state_dump(patcher)
    if settings.event_bus:
        _patch_event_bus(patcher)
    if settings.file_store:
        _patch_file_store(patcher)
    if settings.tool_schema:
        _patch_tool_schema(patcher)
    if settings.memory_pool:
        from ._memory import patch_memory

        patch_memory(patcher, settings.save_workers)
    if settings.private_attrs:
        _patch_private_attrs(patcher)
    if settings.gc_freeze:
        _patch_gc(patcher)  # last: what the patches above imported is frozen too
    return "python"


def deactivate() -> None:
    global _consumer
    consumer, _consumer = _consumer, None
    if consumer is not None:
        consumer.stop()  # queued events are still delivered
        try:
            from crewai.events.event_bus import crewai_event_bus
        except ImportError:
            pass
        else:
            _events.unwrap_executor(crewai_event_bus)
    _state.clear()
    _listeners.clear()
    _tool_schema.clear()
    from ._memory import shutdown

    shutdown()
