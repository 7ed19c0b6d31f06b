"""Scenarios for RUNTIME's stock-vs-patched tests: flows of every shape and the demo crew.

Every event CrewAI emits is recorded by one listener registered for every
event class, as (event type, source class, key fields); ids, timestamps and
state uuids are left out because they differ between any two runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from crewai.events.base_events import BaseEvent
from crewai.events.event_bus import crewai_event_bus
from crewai.flow import Flow, and_, listen, or_, persist, router, start
from pydantic import BaseModel

KEY_FIELDS = ("method_name", "flow_name", "task_name", "agent_role", "tool_name", "result", "output", "params")


def _all_event_types() -> list[type[BaseEvent]]:
    import crewai.events  # noqa: F401 - loads every event module

    seen: list[type[BaseEvent]] = []
    stack = [BaseEvent]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return seen


def _key(event: BaseEvent, source: Any) -> tuple[Any, ...]:
    fields = []
    for name in KEY_FIELDS:
        value = getattr(event, name, None)
        if isinstance(value, (str, int, float, bool)) or (name == "params" and isinstance(value, dict)):
            fields.append((name, repr(value)[:120]))
    return (type(event).__name__, type(source).__name__, tuple(fields))


#: (handler thread name, event id, key) per delivered event, in delivery order, of the last recording().
deliveries: list[tuple[str, str, tuple[Any, ...]]] = []


@contextmanager
def recording() -> Iterator[list[tuple[int, tuple[Any, ...]]]]:
    """Yield the list every emitted event lands in, as (emission_sequence, key)."""
    records: list[tuple[int, tuple[Any, ...]]] = []
    lock = threading.Lock()
    deliveries.clear()

    def handler(source: Any, event: BaseEvent) -> None:
        with lock:
            key = _key(event, source)
            records.append((event.emission_sequence or 0, key))
            deliveries.append((threading.current_thread().name, event.event_id, key))

    crewai_event_bus.flush()  # an earlier run's late events are not this run's
    types = _all_event_types()
    for event_type in types:
        crewai_event_bus.on(event_type)(handler)
    try:
        yield records
    finally:
        crewai_event_bus.flush()
        for event_type in types:
            crewai_event_bus.off(event_type, handler)


class RouterState(BaseModel):
    score: int = 0
    trail: list[str] = []


class RouterFlow(Flow[RouterState]):
    """@router, or_ and and_ listeners, an async step."""

    @start()
    def begin(self) -> str:
        self.state.score = 7
        self.state.trail.append("begin")
        return "begun"

    @router(begin)
    def decide(self) -> str:
        return "high" if self.state.score > 5 else "low"

    @listen("high")
    async def high_path(self) -> str:
        await asyncio.sleep(0)
        self.state.trail.append("high")
        return "went high"

    @listen("low")
    def low_path(self) -> str:
        self.state.trail.append("low")
        return "went low"

    @listen(or_(high_path, low_path))
    def either(self, result: str) -> str:
        self.state.trail.append(f"either:{result}")
        return result.upper()

    @listen(begin)
    def side(self) -> str:
        self.state.trail.append("side")
        return "side done"

    @listen(and_(either, side))
    def both(self) -> list[str]:
        self.state.trail.append("both")
        return list(self.state.trail)


class InnerFlow(Flow[dict]):  # type: ignore[type-arg]
    @start()
    def inner(self) -> str:
        return f"inner saw {self.state.get('topic', '?')}"


class OuterFlow(Flow[dict]):  # type: ignore[type-arg]
    """A sync step that itself starts a flow (nested kickoff)."""

    @start()
    def outer(self) -> str:
        return InnerFlow().kickoff(inputs={"topic": "tea"})

    @listen(outer)
    def after(self, result: str) -> str:
        return f"outer got: {result}"


class CounterState(BaseModel):
    id: str = ""
    count: int = 0


@persist()
class PersistFlow(Flow[CounterState]):
    @start()
    def bump(self) -> int:
        self.state.count += 1
        return self.state.count

    @listen(bump)
    def double(self, value: int) -> int:
        self.state.count = value * 2
        return self.state.count


def run_router_flow() -> Any:
    flow = RouterFlow()
    return flow.kickoff(), list(flow.state.trail)


def run_nested_flow() -> Any:
    return OuterFlow().kickoff()


def run_persist_flow() -> Any:
    flow = PersistFlow()
    return flow.kickoff(), flow.state.count


def run_async_kickoff() -> Any:
    return asyncio.run(RouterFlow().kickoff_async())


FLOW_SCENARIOS: dict[str, Callable[[], Any]] = {
    "router_or_and_async": run_router_flow,
    "nested": run_nested_flow,
    "persist": run_persist_flow,
    "kickoff_async": run_async_kickoff,
}


def run_demo_crew() -> list[str]:
    from crewai_rust._demo.scenario import build_main_crew, respond
    from crewai_rust.testing import ScriptedLLM

    crew = build_main_crew(ScriptedLLM(respond))
    result = crew.kickoff(inputs={"topic": "honey bees"})
    return [t.raw for t in result.tasks_output] + [result.raw]


def run_for_each() -> list[str]:
    from crewai_rust._demo.scenario import TOPICS, build_fanout_crew, respond
    from crewai_rust.testing import ScriptedLLM

    crew = build_fanout_crew(ScriptedLLM(respond))
    results = crew.kickoff_for_each(inputs=[{"topic": t} for t in TOPICS[:3]])
    return [r.raw for r in results]


def emitted_without_listeners(fn: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``fn()``'s value and the type of every event emitted, with no handler at all on the bus.

    Counted where the bus prepares an event (stock and patched both prepare
    every emitted event), since no listener is there to see them.
    """
    from crewai.events.event_bus import CrewAIEventsBus

    emitted: list[str] = []
    lock = threading.Lock()
    prepare = CrewAIEventsBus._prepare_event

    def counting(self: Any, source: Any, event: BaseEvent) -> None:
        with lock:
            emitted.append(type(event).__name__)
        prepare(self, source, event)

    crewai_event_bus.flush()
    with crewai_event_bus.scoped_handlers():
        CrewAIEventsBus._prepare_event = counting  # type: ignore[method-assign]
        try:
            value = fn()
        finally:
            CrewAIEventsBus._prepare_event = prepare  # type: ignore[method-assign]
    crewai_event_bus.flush()
    return value, sorted(emitted)


def recorded(fn: Callable[[], Any]) -> tuple[Any, list[tuple[Any, ...]]]:
    """``fn()``'s value and its events in emission order (ties, from nested runs, by key)."""
    with recording() as records:
        value = fn()
    ordered = [key for _, key in sorted(records, key=lambda r: (r[0], r[1]))]
    return value, ordered


def comparable(events: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """All events as a sorted multiset, and the order each (source, method) saw its own events in.

    Parallel branches of one flow (and stock's thread-pool delivery) interleave
    differently from run to run, even in stock; one method's own events
    (started, then finished or failed) never do.
    """
    per_method: dict[tuple[Any, ...], list[str]] = {}
    for key in events:
        method = dict(key[2]).get("method_name")
        if method is not None:
            per_method.setdefault((key[1], method), []).append(key[0])
    return sorted(events), sorted((k, tuple(v)) for k, v in per_method.items())
