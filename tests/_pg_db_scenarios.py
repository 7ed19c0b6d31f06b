"""Child-process scenarios for the PostgreSQL DATABASE tests: ``python _pg_db_scenarios.py NAME ARGS``.

Each child is a separate CrewAI process with its own private storage dir (so nothing
can pass through a local file) and ``CREWAI_RUST_DATABASE_URL`` from the parent; it
prints one JSON line per observation for the parent to check.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

from crewai_rust.testing import configure_offline

configure_offline(tempfile.mkdtemp(prefix="crewai_rust_pgdb_child_"))

import crewai_rust  # noqa: E402


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _patch(**options: Any) -> None:
    state = crewai_rust.patch("database", database=options)["components"]["DATABASE"]
    assert state["enabled"] and state["stats"]["backend"] == "postgresql", state


def _crew() -> Any:
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM

    llm = ScriptedLLM()
    agent = Agent(role="Analyst", goal="Analyse", backstory="Careful.", llm=llm)
    tasks = [
        Task(description=f"Step {i}: describe topic {{topic}}", expected_output=f"answer {i}", agent=agent)
        for i in range(3)
    ]
    return Crew(agents=[agent], tasks=tasks), llm


def crew_kickoff() -> None:
    """Process A: a scripted crew kicked off; its task outputs go to PostgreSQL."""
    _patch()
    crew, _ = _crew()
    storage = crew._task_output_handler.storage
    result = crew.kickoff(inputs={"topic": "postgres"})
    say(storage=type(storage).__name__, raw=result.raw, task_ids=[str(t.id) for t in crew.tasks])


def crew_replay(task_id: str) -> None:
    """Process B: what ``crewai replay -t TASK_ID`` runs (the project's ``replay()``), on another machine."""
    _patch()
    local = os.path.join(os.environ["CREWAI_STORAGE_DIR"], "latest_kickoff_task_outputs.db")
    crew, llm = _crew()
    storage = crew._task_output_handler.storage
    before = crew._task_output_handler.load()
    result = crew.replay(task_id=task_id)
    after = crew._task_output_handler.load()
    say(
        storage=type(storage).__name__,
        before=[(r["task_id"], r["task_index"], r["inputs"], r["was_replayed"]) for r in before],
        raw=result.raw,
        llm_calls=llm.calls,
        after=[(r["task_index"], r["was_replayed"]) for r in after],
        local_file=os.path.exists(local),
    )


def _counter_flow() -> Any:
    from crewai.flow.flow import Flow, listen, start
    from crewai.flow.persistence import persist
    from pydantic import BaseModel

    class CounterState(BaseModel):
        id: str = ""
        count: int = 0
        hosts: list[int] = []

    @persist()  # no persistence given: the default, i.e. ours once patched
    class CounterFlow(Flow[CounterState]):
        @start()
        def one(self) -> None:
            self.state.count += 1
            self.state.hosts.append(os.getpid())

        @listen(one)
        def two(self) -> int:
            self.state.count += 10
            return self.state.count

    return CounterFlow


def _review_flow() -> Any:
    from crewai.flow import Flow, human_feedback, listen, start
    from crewai.flow.async_feedback import HumanFeedbackPending, PendingFeedbackContext

    class PauseProvider:
        """Asks a human by e-mail, say: the flow pauses until the answer comes back."""

        def request_feedback(self, context: PendingFeedbackContext, flow: Any) -> str:
            raise HumanFeedbackPending(context=context)

    class ReviewFlow(Flow):
        @start()
        @human_feedback(message="Review this draft:", provider=PauseProvider())
        def draft(self) -> str:
            return f"draft written by {os.getpid()}"

        @listen(draft)
        def publish(self, feedback: Any) -> str:
            return f"published after '{feedback.feedback}' on {os.getpid()}"

    return ReviewFlow


def flow_start() -> None:
    """Process A: one flow persisted after each step, one paused waiting for feedback."""
    _patch()
    from crewai.flow.async_feedback import HumanFeedbackPending

    counter = _counter_flow()(suppress_flow_events=True)
    say(counter=counter.kickoff(), counter_id=counter.state.id, persistence=type(counter_persistence()).__name__)
    review = _review_flow()(suppress_flow_events=True)
    paused = review.kickoff()
    assert isinstance(paused, HumanFeedbackPending), paused
    say(paused_id=paused.context.flow_id)


def counter_persistence() -> Any:
    from crewai.flow.persistence.factory import default_flow_persistence

    return default_flow_persistence()


def flow_resume(counter_id: str, paused_id: str) -> None:
    """Process B: both flows resumed from PostgreSQL."""
    _patch()
    counter = _counter_flow()(suppress_flow_events=True)
    total = counter.kickoff(inputs={"id": counter_id})
    flow = _review_flow().from_pending(paused_id)
    result = flow.resume("ship it")
    say(counter=total, hosts=counter.state.hosts, resumed=result,
        pending_left=counter_persistence().load_pending_feedback(paused_id) is not None)


def hold_lock(name: str, seconds: str) -> None:
    """Holds a CrewAI lock (through ``crewai_core.lock_store``) for ``seconds``."""
    _patch(lock_dir=tempfile.mkdtemp(prefix="pgdb_locks_"))  # a lock dir of its own: another machine
    from crewai_core.lock_store import lock

    with lock(name, timeout=10):
        say(held=True)
        time.sleep(float(seconds))
        say(released=time.time())


def writer(worker: str, rows: str, pause: str = "0") -> None:
    """Concurrent writer: task outputs, flow states, and a counter updated under a CrewAI lock."""
    _patch(lock_dir=tempfile.mkdtemp(prefix="pgdb_locks_"))
    from crewai import Task
    from crewai.utilities.task_output_storage_handler import TaskOutputStorageHandler
    from crewai_core.lock_store import lock

    storage = TaskOutputStorageHandler().storage
    flows = counter_persistence()

    def server_started() -> str:
        return str(storage._db().run(lambda conn: conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]))

    first = server_started()
    for i in range(int(rows)):
        task = Task(description=f"worker {worker} row {i}", expected_output="x")
        storage.add(task, {"raw": f"{worker}:{i}"}, 1000 * int(worker) + i)
        flows.save_state(f"worker-{worker}", "step", {"id": f"worker-{worker}", "i": i})
        with lock("shared-counter", timeout=60):
            n = (flows.load_state("counter") or {"n": 0})["n"]
            flows.save_state("counter", "inc", {"id": "counter", "n": n + 1})
        say(ack=i)
        time.sleep(float(pause))  # paced, so a restart can land in the middle
    say(done=True, same_server_run=server_started() == first)


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
