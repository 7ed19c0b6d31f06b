"""AgentMessage under both twins: round trips, byte-identical twins, CrewAI dicts, bad input."""

from __future__ import annotations

import datetime as dt
import json
import math
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crewai_rust.serialization import AgentMessage, MessageFormatError, dumps_many, loads_many

UTC = dt.timezone.utc

# The use_rust fixture only picks a twin (and sets an env var): safe to share across examples.
FIXTURE_OK = [HealthCheck.function_scoped_fixture]

# -- strategies ------------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
zones = st.sampled_from([None, UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(-dt.timedelta(hours=11))])
timestamps = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone),
    st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 30)),
    zones,
)
optional_text = st.none() | st.text(max_size=20)
message_fields = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool"]),
        "content": st.none() | st.text() | st.lists(json_objects, max_size=3),
        "id": st.text(min_size=1, max_size=36),
        "sender": optional_text,
        "task_id": optional_text,
        "name": optional_text,
        "tool_calls": st.none() | st.lists(json_objects, max_size=3),
        "tool_call_id": optional_text,
        "timestamp": timestamps,
        "metadata": json_objects,
    }
)


def build(fields: dict[str, Any], use_rust: bool) -> Any:
    fields = dict(fields)
    return AgentMessage(fields.pop("role"), fields.pop("content"), use_rust=use_rust, **fields)


def expected_timestamp(moment: dt.datetime) -> dt.datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


# -- round trips under each twin ---------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(fields=message_fields)
def test_round_trips(use_rust: bool, fields: dict[str, Any]) -> None:
    message = build(fields, use_rust)
    assert message.implementation == ("rust" if use_rust else "python")
    assert isinstance(message, AgentMessage)
    text = message.to_json()
    doc = json.loads(text)
    assert doc == message.to_dict()
    assert list(doc)[:3] == ["id", "role", "content"] and list(doc)[-2:] == ["timestamp", "metadata"]
    assert doc["content"] == fields["content"] and doc["metadata"] == fields["metadata"]
    assert message.timestamp == expected_timestamp(fields["timestamp"])
    for key in ("id", "role", "sender", "task_id", "name", "tool_call_id"):
        assert getattr(message, key) == fields[key]
    assert message.tool_calls == fields["tool_calls"] and message.metadata == fields["metadata"]
    again = AgentMessage.from_json(text, use_rust=use_rust)
    assert again == message and hash(again) == hash(message) and again.to_json() == text
    assert AgentMessage.from_json(text.encode(), use_rust=use_rust) == message
    assert AgentMessage.from_dict(message.to_dict(), use_rust=use_rust).to_json() == text
    assert pickle.loads(pickle.dumps(message)) == message


def test_defaults_and_immutability(use_rust: bool) -> None:
    before = dt.datetime.now(UTC)
    message = AgentMessage("user", "hi", metadata={"k": [1]}, use_rust=use_rust)
    assert before <= message.timestamp <= dt.datetime.now(UTC)
    assert len(message.id) == 36 and message.id != AgentMessage("user", "hi", use_rust=use_rust).id
    message.metadata["k"].append(2)  # a copy: the message does not change
    assert message.metadata == {"k": [1]}
    with pytest.raises(AttributeError):
        message.role = "system"
    other = AgentMessage.from_json(message.to_json(), use_rust=use_rust)
    assert other == message and other != AgentMessage("user", "hi!", use_rust=use_rust)
    assert (message == "not a message") is False


def test_int_and_float_are_distinct(use_rust: bool) -> None:
    one = AgentMessage("user", id="m", timestamp="2024-01-01T00:00:00Z", metadata={"n": 1}, use_rust=use_rust)
    one_f = AgentMessage("user", id="m", timestamp="2024-01-01T00:00:00Z", metadata={"n": 1.0}, use_rust=use_rust)
    assert one != one_f and one.to_json().endswith('{"n":1}}') and one_f.to_json().endswith('{"n":1.0}}')


def test_large_payloads(use_rust: bool) -> None:
    big = "é😀x" * 300_000
    meta = {f"key{i}": [i, i / 7, str(i)] for i in range(5000)}
    message = AgentMessage("assistant", big, metadata=meta, use_rust=use_rust)
    assert AgentMessage.from_json(message.to_json(), use_rust=use_rust) == message
    batch = [AgentMessage("user", f"m{i}", metadata={"i": i}, use_rust=use_rust) for i in range(1000)]
    assert loads_many(dumps_many(batch), use_rust=use_rust) == batch


def test_timestamps_normalised_to_utc(use_rust: bool) -> None:
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    message = AgentMessage("user", timestamp=dt.datetime(2024, 1, 1, 5, 30, tzinfo=ist), use_rust=use_rust)
    assert message.to_dict()["timestamp"] == "2024-01-01T00:00:00+00:00"
    for text, expected in [
        ("2024-02-29T23:59:59.1234567+01:30", "2024-02-29T22:29:59.123456+00:00"),
        ("2024-01-01 00:00:00", "2024-01-01T00:00:00+00:00"),
        ("2024-01-01T00:00:00.5Z", "2024-01-01T00:00:00.500000+00:00"),
    ]:
        assert AgentMessage("user", timestamp=text, use_rust=use_rust).to_dict()["timestamp"] == expected


# -- CrewAI message dicts --------------------------------------------------------------------
CREWAI_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are Researcher."},
    {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "x"}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "word_counter", "arguments": "{\"text\": \"a b\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_1", "name": "word_counter", "content": "2"},
    {"role": "assistant", "content": "done", "raw_tool_call_parts": [{"thought": True}]},
]


@pytest.mark.parametrize("original", CREWAI_MESSAGES)
def test_crewai_message_dicts_round_trip(use_rust: bool, original: dict[str, Any]) -> None:
    message = AgentMessage.from_crewai(original, sender="Researcher", task_id="t1", use_rust=use_rust)
    assert message.sender == "Researcher" and message.task_id == "t1"
    assert message.to_crewai() == original
    assert AgentMessage.from_json(message.to_json(), use_rust=use_rust).to_crewai() == original


def test_from_task_output(use_rust: bool) -> None:
    from crewai.tasks.task_output import TaskOutput

    output = TaskOutput(description="d", agent="Writer", raw="r", messages=CREWAI_MESSAGES[:4])
    messages = AgentMessage.from_task_output(output, task_id="task-9", use_rust=use_rust)
    assert [m.to_crewai() for m in messages] == output.messages
    assert {m.sender for m in messages} == {"Writer"} and {m.implementation for m in messages} == {
        "rust" if use_rust else "python"
    }


def test_from_crewai_refuses_non_json_extras(use_rust: bool) -> None:
    with pytest.raises(MessageFormatError) as caught:
        AgentMessage.from_crewai({"role": "user", "content": "x", "files": {"a": object()}}, use_rust=use_rust)
    assert caught.value.field == "metadata.crewai_extra.files.a"
    with pytest.raises(MessageFormatError, match="role"):
        AgentMessage.from_crewai({"content": "x"}, use_rust=use_rust)


# -- bad input ----------------------------------------------------------------------------------
GOOD = {"id": "m1", "role": "user", "content": "hi", "timestamp": "2024-05-01T12:00:00Z", "metadata": {}}

BAD_DOCUMENTS: list[tuple[Any, str]] = [
    ([GOOD], ""),
    ("text", ""),
    ({**GOOD, "colour": "red"}, "colour"),
    ({k: v for k, v in GOOD.items() if k != "id"}, "id"),
    ({k: v for k, v in GOOD.items() if k != "timestamp"}, "timestamp"),
    ({**GOOD, "id": 7}, "id"),
    ({**GOOD, "id": None}, "id"),
    ({**GOOD, "role": "boss"}, "role"),
    ({**GOOD, "role": ["user"]}, "role"),
    ({**GOOD, "content": 3.5}, "content"),
    ({**GOOD, "content": [{"type": "text"}, "loose"]}, "content[1]"),
    ({**GOOD, "sender": 1}, "sender"),
    ({**GOOD, "task_id": {"id": 1}}, "task_id"),
    ({**GOOD, "name": True}, "name"),
    ({**GOOD, "tool_calls": {"id": "c"}}, "tool_calls"),
    ({**GOOD, "tool_calls": [["c"]]}, "tool_calls[0]"),
    ({**GOOD, "tool_call_id": 5}, "tool_call_id"),
    ({**GOOD, "timestamp": 1714564800}, "timestamp"),
    ({**GOOD, "timestamp": "yesterday"}, "timestamp"),
    ({**GOOD, "timestamp": "2023-02-29T00:00:00Z"}, "timestamp"),
    ({**GOOD, "timestamp": "2024-01-01T00:00:00+24:00"}, "timestamp"),
    ({**GOOD, "timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
    ({**GOOD, "timestamp": "2024-01-01"}, "timestamp"),
    ({**GOOD, "metadata": []}, "metadata"),
    ({**GOOD, "metadata": "x"}, "metadata"),
    ({**GOOD, "metadata": {"deep": json.loads("[" * 100 + "]" * 100)}}, "metadata"),
]


@pytest.mark.parametrize(("doc", "field"), BAD_DOCUMENTS)
def test_mistyped_documents_name_the_field(use_rust: bool, doc: Any, field: str) -> None:
    with pytest.raises(MessageFormatError) as from_json:
        AgentMessage.from_json(json.dumps(doc), use_rust=use_rust)
    assert from_json.value.field == field
    assert repr(field) in str(from_json.value) or field == ""
    with pytest.raises(MessageFormatError) as from_dict:
        AgentMessage.from_dict(doc, use_rust=use_rust)
    assert from_dict.value.field == field


def test_nesting_at_the_limit_is_fine(use_rust: bool) -> None:
    doc = {**GOOD, "metadata": {"deep": json.loads("[" * 99 + "]" * 99)}}
    assert AgentMessage.from_json(json.dumps(doc), use_rust=use_rust).to_dict()["metadata"] == doc["metadata"]


@pytest.mark.parametrize(
    "text",
    [
        '{"id": "m1", "role": "user"',
        b'{"id": "m1", "role": "user", "content": "\xff", "timestamp": "2024-05-01T12:00:00Z"}',
        '{"id": "m1", "role": "user", "timestamp": "2024-05-01T12:00:00Z", "metadata": {"x": NaN}}',
        '{"id": "m1", "role": "user", "timestamp": "2024-05-01T12:00:00Z", "metadata": {"x": 1e999}}',
        '{"id": "m1", "role": "user", "timestamp": "2024-05-01T12:00:00Z", "metadata": {"x": 18446744073709551616}}',
        '{"id": "m1", "role": "user", "timestamp": "2024-05-01T12:00:00Z", "content": "\\udc00"}',
        "",
    ],
)
def test_malformed_json_is_a_clear_error(use_rust: bool, text: str | bytes) -> None:
    with pytest.raises(MessageFormatError, match="malformed") as caught:
        AgentMessage.from_json(text, use_rust=use_rust)
    assert caught.value.field == ""
    with pytest.raises(MessageFormatError, match="malformed"):
        loads_many(text, use_rust=use_rust)


@settings(max_examples=50, deadline=None, suppress_health_check=FIXTURE_OK)
@given(fields=message_fields, data=st.data())
def test_truncated_json_is_a_clear_error(use_rust: bool, fields: dict[str, Any], data: st.DataObject) -> None:
    text = build(fields, use_rust).to_json()
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    with pytest.raises(MessageFormatError, match="malformed"):
        AgentMessage.from_json(text[:cut], use_rust=use_rust)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"metadata": {"x": math.nan}}, "metadata.x"),
        ({"metadata": {"x": [1, math.inf]}}, "metadata.x[1]"),
        ({"metadata": {"big": 2**64}}, "metadata.big"),
        ({"metadata": {"small": -(2**63) - 1}}, "metadata.small"),
        ({"metadata": {"s": {1, 2}}}, "metadata.s"),
        ({"metadata": {1: "int key"}}, "metadata"),
        ({"metadata": {"d": dt.datetime(2024, 1, 1)}}, "metadata.d"),
        ({"content": "lone \ud800"}, "content"),
        ({"content": [{"text": "\udfff"}]}, "content[0].text"),
        ({"sender": b"bytes"}, "sender"),
        ({"tool_calls": [{"id": "c", "args": object()}]}, "tool_calls[0].args"),
        ({"timestamp": dt.date(2024, 1, 1)}, "timestamp"),
        ({"timestamp": dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))}, "timestamp"),
        ({"id": 12}, "id"),
    ],
)
def test_bad_constructor_values_name_the_field(use_rust: bool, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(MessageFormatError) as caught:
        AgentMessage("user", **{"content": "x", **kwargs}, use_rust=use_rust)
    assert caught.value.field == field


def test_wrong_input_types(use_rust: bool) -> None:
    with pytest.raises(TypeError):
        AgentMessage.from_json(12, use_rust=use_rust)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loads_many(None, use_rust=use_rust)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="item \\[1\\]"):
        dumps_many([AgentMessage("user", use_rust=use_rust), {"role": "user"}])


def test_loads_many_names_index_and_field(use_rust: bool) -> None:
    text = json.dumps([GOOD, {**GOOD, "role": "boss"}])
    with pytest.raises(MessageFormatError, match=r"message \[1\]") as caught:
        loads_many(text, use_rust=use_rust)
    assert caught.value.field == "[1].role"
    with pytest.raises(MessageFormatError, match="JSON array"):
        loads_many(json.dumps(GOOD), use_rust=use_rust)
