"""The Rust and Python AgentMessage twins side by side; activation; a real offline crew."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crewai_rust
from crewai_rust.serialization import AgentMessage, MessageFormatError, dumps, dumps_many, loads_many
from test_serialization_message import BAD_DOCUMENTS, FIXTURE_OK, build, message_fields

# Every character class orjson and our writer treat differently: controls, quotes, DEL,
# line separators, astral planes.
tricky_text = st.text(
    alphabet=st.one_of(
        st.characters(max_codepoint=0x7F),
        st.sampled_from("\u2028\u2029\ufeff\uffff\U0001f600\U0010ffff\x7f\x80\x9f"),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=40,
)
any_float = st.floats(allow_nan=False, allow_infinity=False)
extreme_floats = st.sampled_from(
    [0.0, -0.0, 1e-5, 1e-6, 9.999999999999999e-6, 1e15, 1e16, 9999999999999998.0, 5e-324, 2.2250738585072014e-308,
     1.7976931348623157e308, 0.1, 1 / 3, 123456789.123456789, -1e300, 1e21, 1e22, 12345678901234567890.0,
     -1113178120592002.2, 111659285584252.12]  # ties: Python takes the even shortest candidate
)


@settings(max_examples=100, deadline=None, suppress_health_check=FIXTURE_OK)
@given(fields=message_fields)
def test_twins_write_identical_bytes(speedups: Any, fields: dict[str, Any]) -> None:
    rust, python = build(fields, True), build(fields, False)
    assert (rust.implementation, python.implementation) == ("rust", "python")
    text = rust.to_json()
    assert text == python.to_json()
    assert rust == python and python == rust and hash(rust) == hash(python)
    assert rust.to_dict() == python.to_dict() and rust.to_crewai() == python.to_crewai()
    for key in ("id", "role", "content", "sender", "task_id", "name", "tool_calls", "tool_call_id", "timestamp",
                "metadata"):
        assert getattr(rust, key) == getattr(python, key), key
    assert AgentMessage.from_json(text, use_rust=True).to_json() == text
    assert AgentMessage.from_json(text, use_rust=False).to_json() == text
    many = dumps_many([python, python])
    assert many == dumps_many([rust, rust]) == dumps_many([rust, python])
    assert [m.to_json() for m in loads_many(many, use_rust=True)] == [text, text]


@settings(max_examples=100, deadline=None, suppress_health_check=FIXTURE_OK)
@given(floats=st.lists(any_float | extreme_floats, max_size=20), text=tricky_text, ints=st.lists(
    st.integers(min_value=-(2**63), max_value=2**64 - 1), max_size=5))
def test_twins_agree_on_floats_strings_and_ints(
    speedups: Any, floats: list[float], text: str, ints: list[int]
) -> None:
    fields = {"id": text or "x", "timestamp": "2024-05-01T12:00:00Z", "metadata": {"i": ints, text: floats}}
    rust = AgentMessage("tool", text, name=text, use_rust=True, **fields)
    python = AgentMessage("tool", text, name=text, use_rust=False, **fields)
    assert rust.to_json() == python.to_json()
    assert json.loads(rust.to_json())["metadata"][text] == floats
    # The python twin's bytes are orjson's: the same as our dumps of the same document.
    assert python.to_json() == dumps(python.to_dict())


def test_twins_agree_on_a_sweep_of_float_bit_patterns(speedups: Any) -> None:
    rng = random.Random(20240501)
    floats = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(40_000)]
    floats += [rng.uniform(-1e16, 1e16) for _ in range(20_000)] + [2.0**e for e in range(-1074, 1024)]
    floats = [x for x in floats if math.isfinite(x)]
    fields = {"id": "x", "timestamp": "2024-05-01T12:00:00Z", "metadata": {"f": floats}}
    rust = AgentMessage("user", use_rust=True, **fields).to_json()
    assert rust == AgentMessage("user", use_rust=False, **fields).to_json()


@pytest.mark.parametrize(("doc", "field"), BAD_DOCUMENTS)
def test_twins_raise_the_same_error(speedups: Any, doc: Any, field: str) -> None:
    errors = []
    for use_rust in (True, False):
        with pytest.raises(MessageFormatError) as caught:
            AgentMessage.from_dict(doc, use_rust=use_rust)
        errors.append((caught.value.field, str(caught.value)))
    assert errors[0] == errors[1]


def test_twins_read_each_others_batches(speedups: Any) -> None:
    stamp = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    rust = [AgentMessage("user", f"é{i}", metadata={"f": i / 3}, timestamp=stamp, use_rust=True) for i in range(50)]
    python = loads_many(dumps_many(rust), use_rust=False)
    assert [m.implementation for m in python] == ["python"] * 50
    assert dumps_many(python) == dumps_many(rust)


# -- activation --------------------------------------------------------------------------------
def test_activation_reports_the_twin_and_patches_nothing(use_rust: bool) -> None:
    state = crewai_rust.patch("serialization")["components"]["SERIALIZATION"]
    assert state["enabled"] is True
    assert state["implementation"] == ("rust" if use_rust else "python")
    assert state["patched"] == [] and state["missing"] == [] and state["error"] is None
    assert AgentMessage("user").implementation == state["implementation"]
    assert crewai_rust.unpatch()["components"]["SERIALIZATION"]["enabled"] is False


def test_activation_refuses_options(use_rust: bool) -> None:
    state = crewai_rust.patch("serialization", serialization={"fast": True})["components"]["SERIALIZATION"]
    assert state["enabled"] is False and "takes no patch() options" in state["error"]


# -- a real crew ---------------------------------------------------------------------------------
@pytest.mark.crew
def test_messages_of_a_real_crew_round_trip(use_rust: bool) -> None:
    from crewai import Agent, Crew, Task
    from crewai.tools import tool

    from crewai_rust.testing import ScriptedLLM

    @tool("word_counter")
    def word_counter(text: str) -> str:
        """Count the words in a text."""
        return str(len(text.split()))

    def respond(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> object:
        if messages[-1].get("role") == "tool" or not tools:
            return None
        call = {"name": "word_counter", "arguments": '{"text": "one two three"}'}
        return [{"id": "call_1", "type": "function", "function": call}]

    agent = Agent(role="Counter", goal="count", backstory="counts words", llm=ScriptedLLM(respond),
                  tools=[word_counter])
    task = Task(description="Count the words of the brief", expected_output="a number", agent=agent)
    output = Crew(agents=[agent], tasks=[task]).kickoff().tasks_output[0]
    assert any(m.get("role") == "tool" for m in output.messages)  # the crew really called the tool

    messages = AgentMessage.from_task_output(output, task_id=str(task.id), use_rust=use_rust)
    assert {m.implementation for m in messages} == {"rust" if use_rust else "python"}
    assert [m.to_crewai() for m in messages] == output.messages
    restored = loads_many(dumps_many(messages), use_rust=use_rust)
    assert restored == messages and [m.to_crewai() for m in restored] == output.messages
    assert all(m.sender == "Counter" and m.task_id == str(task.id) for m in restored)
