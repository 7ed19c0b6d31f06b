"""Crew factories the process-backend tests name by import path (``_fanout_crews:...``).

Worker processes import this module themselves, so everything here is built
from the factory, never pickled. The LLM tracks tokens like a provider does
(10 per call), answers from the request, fails on ``boom``, sleeps on ``slow``
and, inside a worker process only, SIGKILLs its own process on ``die``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

from crewai_rust.testing import ScriptedLLM, _text_of, task_description


class TokenLLM(ScriptedLLM):
    """ScriptedLLM with provider-like token accounting and scripted failures."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        task = task_description(messages) or ""
        if "boom" in task:
            raise ValueError(f"scripted failure for {task!r}")
        if "die" in task and multiprocessing.parent_process() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        if "slow" in task:
            time.sleep(float(os.environ.get("FANOUT_TEST_SLOW", "3")))
        answer = super().call(messages, *args, **kwargs)
        self._track_token_usage_internal({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
        return answer


def _crew(llm: ScriptedLLM, **crew_kwargs: Any) -> Any:
    from crewai import Agent, Crew, Task

    agent = Agent(role="Researcher", goal="Answer about {topic}", backstory="Terse.", llm=llm, max_retry_limit=0)
    first = Task(description="Research {topic}", expected_output="facts", agent=agent)
    second = Task(description="Summarise {topic}", expected_output="summary", agent=agent, context=[first])
    return Crew(agents=[agent], tasks=[first, second], **crew_kwargs)


def research_crew() -> Any:
    """Two tasks, one agent, 10 tokens per LLM call."""
    return _crew(TokenLLM(latency=0.01))


class ResearchCrew:
    """Shaped like a ``@CrewBase`` project class: ``ResearchCrew().crew()``."""

    def crew(self) -> Any:
        return research_crew()


def _pid_answer(messages: list[dict[str, Any]], tools: Any) -> str:
    text = " ".join(str(m.get("content", "")) for m in messages)
    task = task_description(messages) or ""
    # Which process answered, whether the saved fact reached the prompt (only memory can bring
    # it into a task that does not name it), and the task, which memory then saves.
    return f"pid={os.getpid()} recalled={'zebra-4417' in text and 'zebra-4417' not in task} task: {task}"


def pid_crew() -> Any:
    """Answers name the process that ran them."""
    return _crew(ScriptedLLM(_pid_answer))


def _settings_answer(messages: list[dict[str, Any]], tools: Any) -> str:
    # What the worker process that answers has patched: components, RUNTIME's options, and
    # whether RUNTIME's event-bus and Flow-state patches are in CrewAI's classes there.
    import crewai_rust
    from crewai.events.event_bus import CrewAIEventsBus
    from crewai.flow.runtime import Flow

    from crewai_rust._registry import component_options

    enabled = ",".join(sorted(n for n, s in crewai_rust.status()["components"].items() if s["enabled"]))
    ours = {name: fn.__module__.startswith("crewai_rust")
            for name, fn in (("emit", CrewAIEventsBus.emit), ("state", Flow._create_initial_state))}
    return f"pid={os.getpid()} enabled={enabled} runtime={sorted(component_options('RUNTIME').items())} ours={ours}"


def settings_crew() -> Any:
    """Answers say which crewai_rust settings the process that ran them has applied."""
    return _crew(ScriptedLLM(_settings_answer))


class MemoryLLM(ScriptedLLM):
    """Memory extraction keeps the task's result line (the kit's default keeps the prompt's last line)."""

    def call(self, messages: Any, *args: Any, response_model: Any = None, **kwargs: Any) -> Any:
        if response_model is not None and response_model.__name__ == "ExtractedMemories":
            text = _text_of(messages)
            results = [line.removeprefix("Result:").strip() for line in text.splitlines() if line.startswith("Result:")]
            return response_model(memories=results or ["nothing"])
        return super().call(messages, *args, response_model=response_model, **kwargs)


def memory_crew() -> Any:
    """``memory=True`` with the offline embedder; answers name the process and whether a saved fact came back."""
    from crewai_rust.testing import crew_embedder_config

    return _crew(MemoryLLM(_pid_answer), memory=True, embedder=crew_embedder_config(64))


def square(x: int) -> int:
    return x * x


def getpid(_: Any) -> int:
    return os.getpid()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
