"""Both AgentMessage twins refuse the same input with the same error, wherever it enters.

Each twin has one copy of the checks (``_message_schema.py``, ``rust/src/message/checks.rs``);
these tests feed both the same junk through every entry point (constructor, ``from_dict``,
``from_json``, ``from_crewai``) and compare exception class, ``field`` and message.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crewai_rust.serialization import AgentMessage

FIXTURE_OK = [HealthCheck.function_scoped_fixture]  # `speedups` only hands out the module
PLUS_ONE = dt.timezone(dt.timedelta(hours=1))

# Values no JSON document holds, next to ones that are fine.
odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.5, -0.0]),
    st.text(max_size=6),
    st.sampled_from(["\ud800", "ok \udfff", "x'y", 'q"', "\n\t"]),
    st.sampled_from([b"bytes", {1, 2}, frozenset(), dt.date(2024, 1, 1), dt.datetime(2024, 1, 1), 1j]),
)
odd_keys = st.one_of(st.text(max_size=4), st.sampled_from(["\ud800", 1, 2.5, None, (1, 2), True]))
odd_values = st.recursive(
    odd_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(odd_keys, children, max_size=3),
    ),
    max_leaves=12,
)
good_objects = st.dictionaries(st.text(max_size=4), st.integers(0, 9) | st.text(max_size=4), max_size=3)
roles = st.sampled_from(["user", "assistant", "system", "tool", "boss", "\ud800"]) | odd_values
strings = st.none() | st.text(max_size=8) | odd_values
contents = st.none() | st.text(max_size=8) | st.lists(good_objects | odd_values, max_size=3) | odd_values
tool_calls = st.none() | st.lists(good_objects | odd_values, max_size=3) | odd_values
stamps = st.one_of(
    st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01 12:00:00.5+05:30", "2023-02-29T00:00:00",
                     "2024-01-01T00:00:00+24:00", "yesterday", "2024-01-01T00:00:00\ud800", "0001-01-01T00:00:00+01:00"]),
    st.sampled_from([dt.datetime(2024, 5, 1, tzinfo=PLUS_ONE), dt.datetime(1, 1, 1, tzinfo=PLUS_ONE),
                     dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=2))),
                     dt.datetime(2024, 5, 1, 3, 4, 5, 6)]),
    odd_values.filter(lambda v: v is not None),
)
metadatas = st.none() | good_objects | odd_values
fields = st.fixed_dictionaries(
    {
        "role": roles,
        "content": contents,
        "id": st.text(min_size=1, max_size=8) | odd_values.filter(lambda v: v is not None),
        "sender": strings,
        "task_id": strings,
        "name": strings,
        "tool_calls": tool_calls,
        "tool_call_id": strings,
        "timestamp": stamps,
        "metadata": metadatas,
    }
)


MALFORMED = "AgentMessage JSON is malformed"


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """What a call did: the JSON it made, or the class, ``field`` and text of its error."""
    try:
        message = call()
    except Exception as error:  # noqa: BLE001 - the class itself is compared
        text = str(error)
        if text.startswith(MALFORMED):
            text = MALFORMED  # the parser's own words differ (serde's, orjson's): not ours to align
        return (type(error), getattr(error, "field", None), text)
    return ("ok", message.to_json())


def both(call: Callable[[bool], Any]) -> tuple[Any, ...]:
    rust, python = outcome(lambda: call(True)), outcome(lambda: call(False))
    assert rust == python
    return rust


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(fields=fields)
def test_constructor_errors_agree(speedups: Any, fields: dict[str, Any]) -> None:
    args = dict(fields)
    role, content = args.pop("role"), args.pop("content")
    both(lambda use_rust: AgentMessage(role, content, use_rust=use_rust, **args))


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(fields=fields, drop=st.sets(st.sampled_from(["id", "role", "timestamp", "content"])),
       extra=st.dictionaries(st.sampled_from(["colour", "1", "ID"]), st.integers(), max_size=1))
def test_document_errors_agree(speedups: Any, fields: dict[str, Any], drop: set[str], extra: dict[str, Any]) -> None:
    doc = {**{k: v for k, v in fields.items() if k not in drop}, **extra}
    both(lambda use_rust: AgentMessage.from_dict(doc, use_rust=use_rust))
    try:
        text = json.dumps(doc, allow_nan=True, default=repr)
    except (TypeError, ValueError):
        return  # no JSON text for this document (non-string keys of odd types)
    both(lambda use_rust: AgentMessage.from_json(text, use_rust=use_rust))


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURE_OK)
@given(fields=fields, message_extra=st.dictionaries(st.sampled_from(["files", "raw_tool_call_parts", "x"]),
                                                    odd_values, max_size=2),
       metadata=st.none() | good_objects | st.sampled_from([[("k", 1)], "ab", [], 0, {"crewai_extra": 1}]))
def test_crewai_errors_agree(speedups: Any, fields: dict[str, Any], message_extra: dict[str, Any], metadata: Any) -> None:
    message = {key: fields[key] for key in ("role", "content", "name", "tool_calls", "tool_call_id")}
    message.update(message_extra)
    stamp = fields["timestamp"]
    both(lambda use_rust: AgentMessage.from_crewai(message, sender="s", id="m", timestamp=stamp, metadata=metadata,
                                                   use_rust=use_rust))


@pytest.mark.parametrize(
    "message",
    [[{"role": "user"}], None, "user", {"content": "no role"}, {"role": "tool", "files": {"a": {1, 2}}}],
)
def test_crewai_refusals_agree(speedups: Any, message: Any) -> None:
    result = both(lambda use_rust: AgentMessage.from_crewai(message, id="m", timestamp="2024-05-01T12:00:00Z",
                                                             use_rust=use_rust))
    assert result[0] != "ok"


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"role": "\ud800"}, "role", "expected one of user, assistant, system, tool, got '\\ud800'"),
        ({"timestamp": "2024-01-01T00:00:00\ud800"}, "timestamp",
         "expected ISO 8601 like 2024-05-01T12:00:00Z, got '2024-01-01T00:00:00\\ud800'"),
    ],
)
def test_lone_surrogates_in_roles_and_timestamps_are_worded_alike(
    speedups: Any, kwargs: dict[str, Any], field: str, text: str
) -> None:
    args = {"role": "user", "content": "x", "id": "m", "timestamp": "2024-05-01T12:00:00Z", **kwargs}
    role = args.pop("role")
    _, got_field, message = both(lambda use_rust: AgentMessage(role, use_rust=use_rust, **args))
    assert (got_field, message) == (field, f"AgentMessage field {field!r}: {text}")


def test_depth_is_checked_in_field_order_from_json(speedups: Any) -> None:
    deep = json.loads("[" * 100 + "]" * 100)
    doc = {"id": "m", "role": "user", "content": [{"deep": deep}], "sender": 5, "timestamp": "2024-05-01T12:00:00Z"}
    for load in (lambda r: AgentMessage.from_json(json.dumps(doc), use_rust=r),
                 lambda r: AgentMessage.from_dict(doc, use_rust=r)):
        _, field, _ = both(load)
        assert field == "content[0]"
