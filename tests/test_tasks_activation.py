"""patch(tasks=...) options, environment, undo, and per-run isolation of CrewAI's event context."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import crewai_rust
from crewai_rust.testing import ScriptedLLM


def _targets() -> dict[str, Any]:
    from crewai.crew import Crew
    from crewai.task import Task

    return {
        "kickoff_for_each": Crew.__dict__["kickoff_for_each"],
        "kickoff_for_each_async": Crew.__dict__["kickoff_for_each_async"],
        "akickoff_for_each": Crew.__dict__["akickoff_for_each"],
        "execute_async": Task.__dict__["execute_async"],
    }


def test_patch_replaces_every_target_and_unpatch_restores_identity(use_rust: bool) -> None:
    before = _targets()
    state = crewai_rust.patch("tasks", tasks={"use_rust": use_rust})["components"]["TASKS"]
    assert state["enabled"] and state["missing"] == []
    assert state["implementation"] == ("rust" if use_rust else "python")
    assert sorted(state["patched"]) == [
        "crewai.crew:Crew.akickoff_for_each",
        "crewai.crew:Crew.kickoff_for_each",
        "crewai.crew:Crew.kickoff_for_each_async",
        "crewai.task:Task.execute_async",
    ]
    patched = _targets()
    assert all(patched[name] is not before[name] for name in before)
    from crewai_rust.tasks._activation import active_executors

    assert active_executors()["crew"].implementation == state["implementation"]
    crewai_rust.unpatch()
    after = _targets()
    assert all(after[name] is before[name] for name in before)
    assert active_executors() == {}


def test_execute_async_can_be_left_alone(use_rust: bool) -> None:
    before = _targets()["execute_async"]
    crewai_rust.patch("tasks", tasks={"use_rust": use_rust, "execute_async": False})
    assert _targets()["execute_async"] is before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurency": 4}, "unknown tasks option"),
        ({"max_concurrency": 0}, "at least 1"),
        ({"usage_metrics": "exact"}, "usage_metrics must be one of"),
        ({"timeout": -1}, "timeout must be positive"),
    ],
)
def test_bad_options_leave_crewai_untouched(use_rust: bool, options: dict[str, Any], message: str) -> None:
    before = _targets()
    state = crewai_rust.patch("tasks", tasks={"use_rust": use_rust, **options})["components"]["TASKS"]
    assert not state["enabled"]
    assert message in state["error"]
    assert _targets() == before


def test_environment_configures_bound_and_timeout(use_rust: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_RUST_MAX_CONCURRENCY", "3")
    monkeypatch.setenv("CREWAI_RUST_TASKS_TIMEOUT", "2.5")
    crewai_rust.patch("tasks", tasks={"use_rust": use_rust})
    from crewai_rust.tasks._activation import active_executors

    active = active_executors()
    assert active["crew"].max_concurrency == 3 and active["task"].max_concurrency == 3
    assert active["settings"].timeout == 2.5
    crewai_rust.unpatch()
    monkeypatch.setenv("CREWAI_RUST_TASKS_TIMEOUT", "soon")
    state = crewai_rust.patch("tasks", tasks={"use_rust": use_rust})["components"]["TASKS"]
    assert not state["enabled"] and "CREWAI_RUST_TASKS_TIMEOUT" in state["error"]


def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _targets()
    monkeypatch.setenv("CREWAI_RUST_TASKS", "0")
    state = crewai_rust.patch("tasks")["components"]["TASKS"]
    assert not state["enabled"] and state["disabled_reason"] == "CREWAI_RUST_TASKS=0"
    assert _targets() == before


@pytest.mark.crew
def test_concurrent_runs_keep_their_own_event_context(use_rust: bool) -> None:
    from crewai import Agent, Crew, Task
    from crewai.events import crewai_event_bus
    from crewai.events.types.crew_events import CrewKickoffCompletedEvent, CrewKickoffStartedEvent
    from crewai.events.types.task_events import TaskCompletedEvent, TaskStartedEvent

    crewai_rust.patch("tasks", tasks={"use_rust": use_rust, "max_concurrency": 6})
    agent = Agent(role="Writer", goal="Write about {topic}", backstory="Terse.", llm=ScriptedLLM(latency=0.03))
    crew = Crew(agents=[agent], tasks=[Task(description="Write about {topic}", expected_output="a line", agent=agent)])
    seen: list[Any] = []
    lock = threading.Lock()

    with crewai_event_bus.scoped_handlers():
        for event_type in (CrewKickoffStartedEvent, CrewKickoffCompletedEvent, TaskStartedEvent, TaskCompletedEvent):

            @crewai_event_bus.on(event_type)
            def record(source: Any, event: Any) -> None:
                with lock:
                    seen.append(event)

        results = crew.kickoff_for_each([{"topic": f"topic {i}"} for i in range(6)])
        crewai_event_bus.flush()

    started = {e.event_id: e for e in seen if isinstance(e, CrewKickoffStartedEvent)}
    completed = [e for e in seen if isinstance(e, CrewKickoffCompletedEvent)]
    assert len(started) == 6 and len(completed) == 6
    for event in completed:
        # Each completion pairs with its own run's start: no run's event scope leaked into another's.
        origin = started[event.started_event_id]
        assert origin.inputs["topic"] in str(event.output)
    task_done = [e for e in seen if isinstance(e, TaskCompletedEvent)]
    task_started = {e.event_id: e for e in seen if isinstance(e, TaskStartedEvent)}
    assert len(task_done) == 6
    for event in task_done:
        assert task_started[event.started_event_id].task is event.task
    assert [r.raw.split("'")[1] for r in results] == [f"Write about topic {i}" for i in range(6)]
