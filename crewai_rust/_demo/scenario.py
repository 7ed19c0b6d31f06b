"""The demo's crews: three agents with tools, memory, an async pair of tasks, and a fan-out.

The scripted LLM decides from the request content only, so the stock and the
patched run must produce the same task outputs. One agent re-checks the same
claim four times in a row (legal for stock CrewAI, which stops on the fifth
identical call): that is what crewai_rust's loop guard is there to refuse.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from typing import Any

from crewai_rust.testing import ScriptedLLM, crew_embedder_config, task_description

TOPICS = ["honey bees", "tidal energy", "sourdough", "volcanoes", "tea", "comets", "glaciers", "coral reefs"]
CHECK_REPEATS = 4
EMBEDDING_DIM = 64

#: how many times each tool body really ran in this process
EXECUTIONS: Counter[str] = Counter()
_executions_lock = threading.Lock()


def _executed(name: str) -> None:
    with _executions_lock:
        EXECUTIONS[name] += 1


#: (start, end) perf_counter of every agent-facing scripted LLM call in this process
LLM_SPANS: list[tuple[float, float]] = []


class TimedScriptedLLM(ScriptedLLM):
    """The scripted LLM, recording when each agent call was in flight.

    Calls with a ``response_model`` (memory analysis inside background saves)
    are not recorded: they run beside the tasks, not on their path.
    """

    def __init__(self, respond: Any = None, *, latency: float = 0.0, **kwargs: Any) -> None:
        super().__init__(respond, latency=latency, **kwargs)

    def call(self, messages: Any, tools: list[dict[str, Any]] | None = None, callbacks: list[Any] | None = None,
             available_functions: dict[str, Any] | None = None, from_task: Any | None = None,
             from_agent: Any | None = None, response_model: Any | None = None) -> Any:
        start = time.perf_counter()
        try:
            return super().call(messages, tools, callbacks, available_functions, from_task, from_agent,
                                response_model)
        finally:
            if response_model is None:
                with _executions_lock:
                    LLM_SPANS.append((start, time.perf_counter()))


_TOPIC = re.compile(r"topic '([^']+)'")


def _tool_call(name: str, **arguments: str) -> list[dict[str, Any]]:
    import json

    call_id = f"call_{name}_{abs(hash(tuple(sorted(arguments.items())))) % 10_000}"
    return [{"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]


def respond(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> Any:
    """Pick a tool call or the final answer from the task text and the tool results so far."""
    task = task_description(messages) or ""
    found = _TOPIC.search(task)
    topic = found.group(1) if found else "the brief"
    tool_results = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")
    if not tools:
        return None
    if task.startswith("Research") and tool_results == 0:
        return _tool_call("keyword_lookup", topic=topic)
    if task.startswith("Fact-check") and tool_results < CHECK_REPEATS:
        return _tool_call("source_check", claim=f"the key claim about {topic}")
    if task.startswith(("Count", "Summarise")) and tool_results == 0:
        return _tool_call("word_counter", text=f"a short brief about {topic} for the crew")
    return None


def build_tools() -> dict[str, Any]:
    from crewai.tools import tool

    @tool("keyword_lookup")
    def keyword_lookup(topic: str) -> str:
        """Return the reference keywords for a topic."""
        _executed("keyword_lookup")
        words = sorted(set(topic.lower().split()) | {"history", "science", "impact"})
        return "keywords: " + ", ".join(words)

    @tool("source_check")
    def source_check(claim: str) -> str:
        """Check a claim against the reference sources."""
        _executed("source_check")
        return f"no source confirms or refutes: {claim}"

    @tool("word_counter")
    def word_counter(text: str) -> str:
        """Count the words in a text."""
        _executed("word_counter")
        return str(len(text.split()))

    return {"keyword_lookup": keyword_lookup, "source_check": source_check, "word_counter": word_counter}


def build_main_crew(llm: ScriptedLLM) -> Any:
    """Three agents, four tasks (two of them async), memory on."""
    from crewai import Agent, Crew, Task

    tools = build_tools()
    researcher = Agent(role="Researcher", goal="Find the facts", backstory="A careful researcher.", llm=llm,
                       tools=[tools["keyword_lookup"], tools["word_counter"]])
    checker = Agent(role="Fact checker", goal="Verify claims", backstory="Trusts nothing.", llm=llm,
                    tools=[tools["source_check"]])
    writer = Agent(role="Writer", goal="Write clearly", backstory="Writes short reports.", llm=llm)
    research = Task(description="Research the topic '{topic}' and list its keywords.",
                    expected_output="keywords", agent=researcher)
    check = Task(description="Fact-check the research on the topic '{topic}'.", expected_output="a verdict",
                 agent=checker, async_execution=True, context=[research])
    count = Task(description="Count the words of the brief on the topic '{topic}'.", expected_output="a number",
                 agent=researcher, async_execution=True, context=[research])
    write = Task(description="Write the report on the topic '{topic}'.", expected_output="a report",
                 agent=writer, context=[research, check, count])
    return Crew(agents=[researcher, checker, writer], tasks=[research, check, count, write], memory=True,
                embedder=crew_embedder_config(EMBEDDING_DIM))


def build_fanout_crew(llm: ScriptedLLM) -> Any:
    """One agent, two tasks, memory on: what ``kickoff_for_each`` runs per input."""
    from crewai import Agent, Crew, Task

    tools = build_tools()
    analyst = Agent(role="Analyst", goal="Summarise topics", backstory="Fast and brief.", llm=llm,
                    tools=[tools["word_counter"]])
    summary = Task(description="Summarise the topic '{topic}' in one line.", expected_output="one line",
                   agent=analyst)
    verdict = Task(description="Give a verdict on the topic '{topic}'.", expected_output="a verdict",
                   agent=analyst, context=[summary])
    return Crew(agents=[analyst], tasks=[summary, verdict], memory=True,
                embedder=crew_embedder_config(EMBEDDING_DIM))
