"""The offline kit that tests, the demo and the benchmarks run crews with."""

from __future__ import annotations

import math

import pytest

from crewai_rust.testing import HashEmbedder, ScriptedLLM, crew_embedder_config, default_answer, hash_embed


def test_hash_embed_is_deterministic_and_normalised() -> None:
    a, b = hash_embed("The quick brown fox", 32), hash_embed("the QUICK brown fox", 32)
    assert a == b
    assert math.isclose(sum(v * v for v in a), 1.0, rel_tol=1e-9)
    assert hash_embed("", 8) == [1.0] + [0.0] * 7
    assert HashEmbedder(16)(["x", "y"]) == [hash_embed("x", 16), hash_embed("y", 16)]


def test_default_answer_depends_only_on_the_task_line() -> None:
    one = default_answer([{"role": "user", "content": "recalled memory A\nCurrent Task: write a poem"}])
    two = default_answer([{"role": "user", "content": "other memory B\nCurrent Task: write a poem"}])
    assert one == two
    assert one != default_answer([{"role": "user", "content": "Current Task: write an essay"}])


@pytest.mark.crew
def test_scripted_crew_runs_a_tool_offline() -> None:
    from crewai import Agent, Crew, Task
    from crewai.tools import tool

    executed: list[str] = []

    @tool("word_counter")
    def word_counter(text: str) -> str:
        """Count the words in a text."""
        executed.append(text)
        return str(len(text.split()))

    def respond(messages: list[dict], tools: list[dict] | None) -> object:
        if messages[-1].get("role") == "tool" or not tools:
            return None
        call = {"name": "word_counter", "arguments": '{"text": "one two three"}'}
        return [{"id": "call_1", "type": "function", "function": call}]

    llm = ScriptedLLM(respond)
    agent = Agent(role="Counter", goal="count", backstory="counts words", llm=llm, tools=[word_counter])
    task = Task(description="Count the words of the brief", expected_output="a number", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], memory=True, embedder=crew_embedder_config(32))
    output = crew.kickoff()
    assert executed == ["one two three"]
    assert output.tasks_output[0].raw == default_answer("Current Task: Count the words of the brief")
    assert llm.calls >= 2
