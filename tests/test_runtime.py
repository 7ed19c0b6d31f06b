"""RUNTIME: same outputs and same events as stock CrewAI, and proof that its fast paths ran."""

from __future__ import annotations

import asyncio
import inspect
import sys
from pathlib import Path

import pytest

import crewai_rust

sys.path.insert(0, str(Path(__file__).parent))
import _runtime_scenarios as scenarios


def _stock_and_patched(fn, components="runtime"):  # type: ignore[no-untyped-def]
    fn()  # warm-up: one-off events (first flow class use) are not part of the comparison
    stock = scenarios.recorded(fn)
    crewai_rust.patch(components)
    try:
        patched = scenarios.recorded(fn)
    finally:
        crewai_rust.unpatch()
    return stock, patched


@pytest.mark.parametrize("name", sorted(scenarios.FLOW_SCENARIOS))
def test_flow_outputs_and_events_match_stock(name: str) -> None:
    (stock_value, stock_events), (value, events) = _stock_and_patched(scenarios.FLOW_SCENARIOS[name])
    assert value == stock_value
    assert scenarios.comparable(events) == scenarios.comparable(stock_events)
    assert any(e[0] == "MethodExecutionFinishedEvent" for e in events)


def test_demo_crew_outputs_and_events_match_stock(use_rust: bool) -> None:
    (stock_value, stock_events), (value, events) = _stock_and_patched(scenarios.run_demo_crew)
    assert value == stock_value
    assert scenarios.comparable(events) == scenarios.comparable(stock_events)


def test_kickoff_for_each_outputs_match_stock(use_rust: bool) -> None:
    stock = scenarios.run_for_each()
    crewai_rust.patch()
    assert scenarios.run_for_each() == stock


def test_status_reports_every_runtime_target() -> None:
    state = crewai_rust.patch("runtime")["components"]["RUNTIME"]
    assert state["enabled"] and state["implementation"] == "python"
    assert state["missing"] == []
    for target in ("Flow._create_initial_state", "_build_definition_state_model", "crewai.flow.runtime:asyncio", "Flow._find_triggered_methods",
                   "file_store:_run_sync", "Memory._submit_save", "Memory.drain_writes",
                   "structured_tool:format_description_for_llm", "base_tool:format_description_for_llm",
                   "CrewAIEventsBus.emit", "Flow._copy_and_serialize_state", "agent_utils:generate_model_description",
                   "flow_wrappers:inspect"):
        assert any(target in p for p in state["patched"]), (target, state["patched"])


def _runtime_targets() -> tuple[object, ...]:
    from crewai.events.event_bus import CrewAIEventsBus
    from crewai.flow import flow_wrappers, runtime
    from crewai.memory.unified_memory import Memory
    from crewai.tools import base_tool, structured_tool
    from crewai.utilities import agent_utils, file_store

    return (flow_wrappers.inspect, base_tool.format_description_for_llm, structured_tool.format_description_for_llm, runtime.asyncio,
            runtime._build_definition_state_model, vars(runtime.Flow)["_create_initial_state"],
            vars(runtime.Flow)["_find_triggered_methods"], vars(runtime.Flow)["_copy_and_serialize_state"],
            file_store._run_sync, vars(Memory)["_submit_save"], vars(Memory)["drain_writes"], vars(Memory)["close"],
            vars(CrewAIEventsBus)["emit"], agent_utils.generate_model_description)


def test_unpatch_restores_crewai_by_identity() -> None:
    from crewai.flow import runtime

    before = _runtime_targets()
    crewai_rust.patch("runtime")
    assert runtime.asyncio is not asyncio
    patched = _runtime_targets()
    assert all(a is not b for a, b in zip(before, patched))
    crewai_rust.unpatch()
    after = _runtime_targets()
    assert all(a is b for a, b in zip(before, after))
    assert runtime.asyncio is asyncio


def test_switch_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_RUST_RUNTIME", "0")
    assert crewai_rust.patch("runtime")["components"]["RUNTIME"]["disabled_reason"] == "CREWAI_RUST_RUNTIME=0"
    monkeypatch.delenv("CREWAI_RUST_RUNTIME")
    state = crewai_rust.patch("runtime", runtime={"loop_reuse": False, "memory_pool": False})["components"]["RUNTIME"]
    assert not any("asyncio" in p or "Memory" in p for p in state["patched"])
    crewai_rust.unpatch()
    state = crewai_rust.patch("runtime", runtime={"warp": 1})["components"]["RUNTIME"]
    assert state["enabled"] is False and "unknown runtime option" in state["error"]


def test_missing_target_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai.events.event_bus import CrewAIEventsBus
    from crewai.utilities import file_store

    monkeypatch.delattr(file_store, "_run_sync")
    monkeypatch.delattr(CrewAIEventsBus, "_track_future")
    state = crewai_rust.patch("runtime")["components"]["RUNTIME"]
    assert any("_run_sync" in m["target"] for m in state["missing"])
    assert any("CrewAIEventsBus._track_future" in m["target"] for m in state["missing"])
    assert not any("CrewAIEventsBus.emit" in p for p in state["patched"])


def test_fast_paths_ran_in_a_crew() -> None:
    from crewai_rust.runtime import _loop, _state

    crewai_rust.patch("runtime")
    runs = _loop.runs_on_this_thread()
    scenarios.run_router_flow()
    scenarios.run_router_flow()
    assert _loop.runs_on_this_thread() == runs + 2
    assert _state.cached_classes() >= 1
    first, second = scenarios.RouterFlow(), scenarios.RouterFlow()
    assert type(first.state) is type(second.state)


def test_flow_method_signatures_are_computed_once_and_match_stock() -> None:
    from crewai.flow import flow_wrappers

    def bound_facts(flow: object) -> list[tuple[str, str, bool]]:
        names = ("begin", "decide", "high_path", "low_path", "either", "side", "both")
        methods = [getattr(flow, n) for n in names]
        return [(m.__name__, str(m.__signature__), inspect.iscoroutinefunction(m)) for m in methods]

    stock = bound_facts(scenarios.RouterFlow())
    crewai_rust.patch("runtime")
    fast = flow_wrappers.inspect
    assert fast is not inspect
    before = fast.computed
    first = bound_facts(scenarios.RouterFlow())
    after_first = fast.computed
    again = [bound_facts(scenarios.RouterFlow()) for _ in range(3)]
    assert first == stock and all(a == stock for a in again)
    assert after_first - before <= 7  # at most once per method function
    assert fast.computed == after_first  # later instances reuse every signature
    run_router = scenarios.run_router_flow()  # the flow still runs with kept signatures
    crewai_rust.unpatch()
    assert scenarios.run_router_flow() == run_router


def test_kept_signature_follows_a_changed_function() -> None:
    from crewai_rust.runtime._signature import FlowInspect

    def step(self, value=1):  # type: ignore[no-untyped-def]
        return value

    fast = FlowInspect()
    assert fast.signature(step) == inspect.signature(step)
    step.__defaults__ = (2,)
    assert str(fast.signature(step)) == str(inspect.signature(step)) == "(self, value=2)"
    step.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
    assert str(fast.signature(step)) == "()"
    assert fast.signature(len) == inspect.signature(len)  # not a plain function: inspect's own answer
    assert fast.iscoroutinefunction(step) is False
    assert fast.computed == 3


def test_state_class_matches_stock_shape() -> None:
    stock = scenarios.RouterFlow().state
    crewai_rust.patch("runtime")
    patched = scenarios.RouterFlow().state
    assert type(patched).__name__ == type(stock).__name__ == "StateWithId"
    assert type(patched).__qualname__ == type(stock).__qualname__
    assert set(type(patched).model_fields) == set(type(stock).model_fields)
    assert patched.model_dump().keys() == stock.model_dump().keys()


def test_run_refuses_a_running_loop_like_asyncio_run() -> None:
    from crewai_rust.runtime import _loop

    async def outer() -> None:
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="running event loop"):
            _loop.run(coro)
        coro.close()  # asyncio.run leaves a refused coroutine unstarted, as here

    asyncio.run(outer())


def test_file_store_guard_returns_what_asyncio_run_returns() -> None:
    import uuid

    from crewai.utilities import file_store

    crewai_rust.patch("runtime")
    assert file_store._run_sync is not vars(file_store).get("__wrapped__")
    assert file_store.get_all_files(uuid.uuid4(), uuid.uuid4()) is None
    assert file_store._run_sync(asyncio.sleep(0, result=5)) == 5  # not a file-store coroutine: CrewAI's path


def test_memory_recall_waits_only_for_its_own_run() -> None:
    import threading

    from crewai.execution import clear_execution_uuid, set_execution_uuid
    from crewai.memory.unified_memory import Memory

    from crewai_rust.testing import HashEmbedder, ScriptedLLM

    crewai_rust.patch("runtime")
    memory = Memory(llm=ScriptedLLM(), embedder=HashEmbedder(16))
    release = threading.Event()
    order: list[str] = []
    token = set_execution_uuid("run-a")
    try:
        memory._submit_save(lambda: (release.wait(10), order.append("a-slow")))
        memory._submit_save(lambda: order.append("a-next"))
    finally:
        clear_execution_uuid(token)
    token = set_execution_uuid("run-b")
    try:
        memory._submit_save(lambda: order.append("b"))
        memory.drain_writes()  # must not wait for run-a's blocked save
        assert order == ["b"]
    finally:
        clear_execution_uuid(token)
    release.set()
    memory.close()  # waits for every run
    assert order == ["b", "a-slow", "a-next"]


def test_tool_text_is_cached_and_identical() -> None:
    from crewai.tools import base_tool, structured_tool

    from crewai_rust._demo.scenario import build_tools
    from crewai_rust.runtime import _tool_schema

    tools = list(build_tools().values())
    stock = [t.formatted_description for t in tools] + [t.to_structured_tool().formatted_description for t in tools]
    crewai_rust.patch("runtime")
    assert base_tool.format_description_for_llm is structured_tool.format_description_for_llm
    patched = [t.formatted_description for t in tools] + [t.to_structured_tool().formatted_description for t in tools]
    again = [t.formatted_description for t in tools]
    assert patched == stock and again == stock[: len(tools)]
    assert _tool_schema.cached_texts() == len(tools)


def test_listener_bookkeeping_matches_stock() -> None:
    """The index keeps CrewAI's pending-event sets and fired or-listeners exactly."""

    def run() -> tuple[dict[str, set[str]], set[str], list[str]]:
        flow = scenarios.RouterFlow()
        flow.kickoff()
        return dict(flow._pending_events), set(flow._fired_or_listeners), list(flow.state.trail)

    stock = run()
    crewai_rust.patch("runtime")
    assert run() == stock


def test_a_failing_flow_raises_as_stock_and_keeps_the_loop() -> None:
    from crewai.flow import Flow, start

    from crewai_rust.runtime import _loop

    class Boom(Flow[dict]):  # type: ignore[type-arg]
        @start()
        def explode(self) -> None:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        Boom().kickoff()
    crewai_rust.patch("runtime")
    with pytest.raises(ValueError, match="boom"):
        Boom().kickoff()
    runs = _loop.runs_on_this_thread()
    assert scenarios.run_nested_flow() == "outer got: inner saw tea"
    assert _loop.runs_on_this_thread() == runs + 1


EVERY_SCENARIO = {**scenarios.FLOW_SCENARIOS, "demo_crew": scenarios.run_demo_crew}


@pytest.mark.parametrize("name", sorted(EVERY_SCENARIO))
def test_same_events_are_emitted_with_no_listener_at_all(name: str) -> None:
    """With every handler (CrewAI's own too) off the bus, patched emits the same events and returns the same."""
    fn = EVERY_SCENARIO[name]
    fn()
    stock = scenarios.emitted_without_listeners(fn)
    crewai_rust.patch("runtime")
    patched = scenarios.emitted_without_listeners(fn)
    assert patched == stock
    assert patched[1], "the scenario emitted no events"


@pytest.mark.parametrize("name", sorted(scenarios.FLOW_SCENARIOS))
def test_listeners_get_every_event_on_one_consumer_in_emission_order(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai.events.event_bus import CrewAIEventsBus

    from crewai_rust.runtime import _activation

    fn = scenarios.FLOW_SCENARIOS[name]
    fn()
    crewai_rust.patch("runtime")
    consumer = _activation._consumer
    assert consumer is not None
    before = consumer.delivered
    prepared: list[str] = []
    prepare = CrewAIEventsBus._prepare_event

    def recording_prepare(self: object, source: object, event: object) -> None:
        prepare(self, source, event)  # type: ignore[arg-type]
        prepared.append(event.event_id)  # type: ignore[attr-defined]

    monkeypatch.setattr(CrewAIEventsBus, "_prepare_event", recording_prepare)
    scenarios.recorded(fn)
    delivered = list(scenarios.deliveries)
    assert delivered and {thread for thread, _, _ in delivered} == {"crewai-rust-events"}
    assert consumer.delivered - before >= len(delivered)
    assert [event_id for _, event_id, _ in delivered] == prepared  # every event, in the order it was emitted


def test_idle_trace_handlers_are_not_handed_off_and_behave_as_stock() -> None:
    """CrewAI's legacy trace wrapper does nothing under an execution uuid: no hand-off for it then."""
    from crewai.events.base_events import BaseEvent
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.listeners.tracing.trace_listener import TraceCollectionListener
    from crewai.execution import (
        clear_execution_uuid,
        get_execution_uuid,
        set_execution_uuid,
    )

    from crewai_rust.runtime import _activation

    class RuntimeProbeEvent(BaseEvent):
        type: str = "crewai_rust_runtime_probe"

    calls: list[object] = []
    wrapper = TraceCollectionListener._on(None, crewai_event_bus, RuntimeProbeEvent)(  # type: ignore[arg-type]
        lambda source, event: calls.append(get_execution_uuid()))

    def emit_outside_and_inside_a_run() -> list[object]:
        calls.clear()
        outside = crewai_event_bus.emit(None, RuntimeProbeEvent())
        token = set_execution_uuid("run-probe")
        try:
            inside = crewai_event_bus.emit(None, RuntimeProbeEvent())
        finally:
            clear_execution_uuid(token)
        assert outside is not None and inside is not None
        outside.result(10)
        inside.result(10)
        return list(calls)

    try:
        stock = emit_outside_and_inside_a_run()
        crewai_rust.patch("runtime")
        consumer = _activation._consumer
        assert consumer is not None
        before = consumer.delivered
        patched = emit_outside_and_inside_a_run()
        assert patched == stock == [None]
        assert consumer.delivered == before + 1  # only the emission outside a run was handed off
    finally:
        crewai_event_bus.off(RuntimeProbeEvent, wrapper)


def test_a_failing_handler_is_reported_and_the_rest_still_run(capsys: pytest.CaptureFixture[str]) -> None:
    from crewai.events.base_events import BaseEvent
    from crewai.events.event_bus import crewai_event_bus

    class RuntimeFailingProbeEvent(BaseEvent):
        type: str = "crewai_rust_runtime_failing_probe"

    seen: list[str] = []

    def broken(source: object, event: BaseEvent) -> None:
        raise ValueError("handler broke")

    def fine(source: object, event: BaseEvent) -> None:
        seen.append(event.type)

    crewai_event_bus.on(RuntimeFailingProbeEvent)(broken)
    crewai_event_bus.on(RuntimeFailingProbeEvent)(fine)
    try:
        crewai_rust.patch("runtime")
        future = crewai_event_bus.emit(None, RuntimeFailingProbeEvent())
        assert future is not None
        future.result(10)
        assert crewai_event_bus.flush(10)
        assert seen == ["crewai_rust_runtime_failing_probe"]
    finally:
        crewai_event_bus.off(RuntimeFailingProbeEvent, broken)
        crewai_event_bus.off(RuntimeFailingProbeEvent, fine)


def test_shutting_the_bus_pool_down_waits_for_handlers_on_the_consumer() -> None:
    """CrewAI's own test helper waits for sync handlers with ``_sync_executor.shutdown(wait=True)``."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from crewai.events.base_events import BaseEvent
    from crewai.events.event_bus import crewai_event_bus

    from crewai_rust.runtime import _events

    class RuntimeShutdownProbeEvent(BaseEvent):
        type: str = "crewai_rust_runtime_shutdown_probe"

    seen: list[str] = []

    def slow(source: object, event: BaseEvent) -> None:
        time.sleep(0.3)
        seen.append(threading.current_thread().name)

    def wait_like_crewai_tests() -> None:  # tests/utils.py:wait_for_event_handlers, its sync half
        crewai_event_bus._sync_executor.shutdown(wait=True)
        crewai_event_bus._sync_executor = ThreadPoolExecutor(max_workers=10, thread_name_prefix="CrewAISyncHandler")

    crewai_event_bus.on(RuntimeShutdownProbeEvent)(slow)
    try:
        crewai_rust.patch("runtime")
        crewai_event_bus.emit(None, RuntimeShutdownProbeEvent())
        wait_like_crewai_tests()
        assert seen == ["crewai-rust-events"]
        crewai_event_bus.emit(None, RuntimeShutdownProbeEvent())  # on the pool the helper put in
        wait_like_crewai_tests()
        assert seen == ["crewai-rust-events"] * 2
        crewai_event_bus.emit(None, RuntimeShutdownProbeEvent())
        crewai_rust.unpatch()
        assert seen == ["crewai-rust-events"] * 3
        assert type(crewai_event_bus._sync_executor) is not _events.SyncExecutor
    finally:
        crewai_event_bus.off(RuntimeShutdownProbeEvent, slow)


def test_unpatch_delivers_queued_events_and_stops_the_consumer() -> None:
    import threading

    from crewai.events.base_events import BaseEvent
    from crewai.events.event_bus import crewai_event_bus

    from crewai_rust.runtime import _activation

    class RuntimeSlowProbeEvent(BaseEvent):
        type: str = "crewai_rust_runtime_slow_probe"

    release = threading.Event()
    seen: list[int] = []

    def slow(source: object, event: BaseEvent) -> None:
        release.wait(10)
        seen.append(event.emission_sequence or 0)

    crewai_event_bus.on(RuntimeSlowProbeEvent)(slow)
    try:
        crewai_rust.patch("runtime")
        consumer = _activation._consumer
        assert consumer is not None
        futures = [crewai_event_bus.emit(None, RuntimeSlowProbeEvent()) for _ in range(3)]
        threading.Timer(0.2, release.set).start()
        crewai_rust.unpatch()
        assert all(f is not None and f.done() for f in futures)
        assert len(seen) == 3 and seen == sorted(seen)
        assert consumer.closed and not any(t.name == "crewai-rust-events" and t.is_alive() for t in threading.enumerate()
                                           if t is consumer._thread)
    finally:
        crewai_event_bus.off(RuntimeSlowProbeEvent, slow)


def test_state_dump_is_stock_without_the_copy() -> None:
    from crewai.flow import runtime

    flow = scenarios.RouterFlow()
    flow.kickoff()
    stock = flow._copy_and_serialize_state()
    crewai_rust.patch("runtime")
    assert vars(runtime.Flow)["_copy_and_serialize_state"].__wrapped__ is not None
    patched = flow._copy_and_serialize_state()
    assert patched == stock
    patched["trail"].append("mutated")
    assert "mutated" not in flow.state.trail  # the dump shares nothing with the live state
    dict_flow = scenarios.InnerFlow()
    dict_flow.kickoff(inputs={"topic": "tea"})
    assert dict_flow._copy_and_serialize_state() == dict_flow._copy_state()


def test_function_calling_schema_is_cached_fresh_and_identical() -> None:
    from crewai.utilities import agent_utils

    from crewai_rust._demo.scenario import build_tools
    from crewai_rust.runtime import _tool_schema

    tools = list(build_tools().values())
    stock = agent_utils.convert_tools_to_openai_schema(tools)[0]
    crewai_rust.patch("runtime")
    first = agent_utils.convert_tools_to_openai_schema(tools)[0]
    first[0]["function"]["parameters"]["properties"]["crewai_rust_mutated"] = {}
    second = agent_utils.convert_tools_to_openai_schema(tools)[0]
    assert second == stock and first != stock
    assert _tool_schema.cached_descriptions() == len({t.args_schema for t in tools})


def test_routing_and_scoring_steps_run_inline_with_same_outputs() -> None:
    from crewai.flow import runtime

    stock = scenarios.run_demo_crew()
    crewai_rust.patch("runtime")
    assert scenarios.run_demo_crew() == stock
    inlined = set(runtime.asyncio.inlined)
    for step in ("AgentExecutor.check_max_iterations", "RecallFlow.decide_depth", "RecallFlow.synthesize_results",
                 "EncodingFlow.intra_batch_dedup"):
        assert step in inlined, (step, inlined)
    crewai_rust.unpatch()
    crewai_rust.patch("runtime", runtime={"inline_steps": False})
    assert scenarios.run_demo_crew() == stock
    assert not runtime.asyncio.inlined


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_consumer() -> None:
    import os

    from crewai.events.base_events import BaseEvent
    from crewai.events.event_bus import crewai_event_bus

    class RuntimeForkProbeEvent(BaseEvent):
        type: str = "crewai_rust_runtime_fork_probe"

    seen: list[int] = []

    def handler(source: object, event: BaseEvent) -> None:
        seen.append(os.getpid())

    crewai_event_bus.on(RuntimeForkProbeEvent)(handler)
    try:
        crewai_rust.patch("runtime")
        first = crewai_event_bus.emit(None, RuntimeForkProbeEvent())
        assert first is not None
        first.result(10)  # the parent's consumer thread is running
        pid = os.fork()
        if pid == 0:  # the child: no consumer thread was copied; an emit must still be delivered
            code = 1
            try:
                future = crewai_event_bus.emit(None, RuntimeForkProbeEvent())
                future.result(10)  # type: ignore[union-attr]
                code = 0 if seen[-1] == os.getpid() else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        crewai_event_bus.off(RuntimeForkProbeEvent, handler)
