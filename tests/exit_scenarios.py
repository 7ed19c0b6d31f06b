"""Child scripts for ``test_hardening_exit``: leave the interpreter while fan-out jobs run.

``python exit_scenarios.py SCENARIO RUNS MARKER_DIR`` imports CrewAI once, then
forks ``RUNS`` children two at a time. Each child runs the scenario and falls
off the end of this script, so it goes through the real interpreter exit
(``Py_FinalizeEx``); the parent prints one line per child: its exit status and
whether its work finished (a marker file). Forking keeps CrewAI's 2 s import
out of every run.
"""

from __future__ import annotations

import _thread
import os
import sys
import threading
import time
from pathlib import Path

SCENARIO, RUNS, MARKERS = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
USE_RUST = os.environ.get("CREWAI_RUST_PUREPYTHON") != "1"
STOCK = SCENARIO.startswith("stock-")

if SCENARIO != "submit":
    import crewai_rust.testing  # noqa: F401  (offline environment before CrewAI)
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM
else:
    ScriptedLLM = object  # type: ignore[assignment,misc]


def busy(seconds: float) -> None:
    """Python work that keeps dropping and re-taking the GIL (switch interval, short sleeps)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(2000))
        time.sleep(0.0005)


def marker(name: str) -> Path:
    return MARKERS / f"{os.getpid()}-{name}"


def scenario_submit() -> None:
    from crewai_rust.tasks import RustTaskExecutor

    ex = RustTaskExecutor(max_concurrency=2, use_rust=USE_RUST)

    def job(i: int) -> None:
        busy(0.05)
        marker(f"job{i}").touch()

    for i in range(4):  # more than the slots: two wait queued at exit
        ex.spawn(lambda i=i: job(i))
    time.sleep(0.01)


def _crew(llm: object, async_execution: bool, done: str) -> object:
    agent = Agent(role="Researcher", goal="Answer about {topic}", backstory="Terse.", llm=llm, max_retry_limit=0)
    task = Task(
        description="Research {topic}", expected_output="facts", agent=agent, async_execution=async_execution,
        callback=lambda output: marker(done).touch(),
    )
    return Crew(agents=[agent], tasks=[task])


class BusyLLM(ScriptedLLM):  # type: ignore[misc,valid-type]
    """Answers after Python work; the first call of a process may press Ctrl-C on the main thread."""

    def call(self, messages, *args, **kwargs):  # type: ignore[no-untyped-def]
        if SCENARIO.endswith("interrupt") and not getattr(BusyLLM, "pressed", False):
            BusyLLM.pressed = True
            _thread.interrupt_main()
        busy(0.08)
        return super().call(messages, *args, **kwargs)


def scenario_execute_async() -> None:
    if not STOCK:
        import crewai_rust

        crewai_rust.patch("tasks", tasks={"use_rust": USE_RUST})
    crew = _crew(BusyLLM(), True, "task")
    crew.tasks[0].execute_async(agent=crew.agents[0])  # main leaves while the task runs


def scenario_interrupt() -> None:
    if not STOCK:
        import crewai_rust

        crewai_rust.patch("tasks", tasks={"use_rust": USE_RUST, "max_concurrency": 2})
    crew = _crew(BusyLLM(), False, "item")
    try:
        crew.kickoff_for_each([{"topic": f"t{i}"} for i in range(6)])
    except KeyboardInterrupt:
        marker("interrupted").touch()
        if SCENARIO.endswith("uncaught-interrupt"):
            raise  # the program ends with the KeyboardInterrupt, as a plain Ctrl-C would


SCENARIOS = {
    "submit": scenario_submit,
    "execute_async": scenario_execute_async,
    "stock-execute_async": scenario_execute_async,
    "interrupt": scenario_interrupt,
    "stock-interrupt": scenario_interrupt,
    "uncaught-interrupt": scenario_interrupt,
}

if threading.active_count() != 1:
    sys.exit(f"threads before fork: {threading.enumerate()}")
child = False
running: list[int] = []
statuses: list[tuple[int, int]] = []


def reap() -> None:
    pid, status = os.waitpid(running.pop(0), 0)
    statuses.append((pid, status))


for _ in range(RUNS):
    if len(running) == 2:
        reap()
    pid = os.fork()
    if pid == 0:
        child = True
        SCENARIOS[SCENARIO]()
        break  # fall off the end: the normal interpreter exit
    running.append(pid)

if not child:
    while running:
        reap()
    for pid, status in statuses:
        code = os.waitstatus_to_exitcode(status)
        done = sorted(p.name.split("-", 1)[1] for p in MARKERS.glob(f"{pid}-*"))
        print(f"{pid} {code} {','.join(done)}")
