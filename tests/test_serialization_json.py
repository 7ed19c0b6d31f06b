"""dumps/loads: CrewJSONEncoder equivalence, the deliberate differences, and clear errors.

``dumps``/``loads`` have no Rust twin (orjson is the native code); these tests are the same
under both flavours of the suite.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from crewai_rust.serialization import (
    JSONDecodeError,
    JSONEncodeError,
    NonFiniteNumberError,
    dumps,
    loads,
)

CrewJSONEncoder = pytest.importorskip("crewai.utilities.crew_json_encoder").CrewJSONEncoder


class Colour(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Plain(enum.Enum):
    A = 1


class Inner(BaseModel):
    when: dt.datetime
    tag: Colour = Colour.RED


class Outer(BaseModel):
    name: str
    inner: Inner
    ids: list[uuid.UUID]
    price: decimal.Decimal
    extra: dict[str, Any] = {}


class Scored(BaseModel):
    score: float
    parts: list[float]


def reference(value: Any, **kwargs: Any) -> Any:
    """What CrewAI stores, read back, as ordered pairs (so key order counts)."""
    return json.loads(json.dumps(value, cls=CrewJSONEncoder, **kwargs), object_pairs_hook=list)


def ours(value: Any, **kwargs: Any) -> Any:
    text = dumps(value, **kwargs)
    assert isinstance(text, str)
    assert loads(text) == json.loads(text)  # our loads agrees with the stdlib on our output
    return json.loads(text, object_pairs_hook=list)


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
aware = st.datetimes(timezones=st.just(dt.timezone.utc)) | st.datetimes(
    timezones=st.sampled_from([dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))])
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    int64,
    finite_floats,
    st.text(),
    st.datetimes(),
    aware,
    st.dates(),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.binary(max_size=64),
    st.sampled_from([Colour.RED, Level.HIGH]),
    finite_floats.map(np.float64),
)
documents = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=12), children, max_size=6),
    ),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None)
@given(documents)
def test_matches_crew_json_encoder_on_random_documents(doc: Any) -> None:
    assert ours(doc) == reference(doc)
    assert ours(doc, sort_keys=True) == reference(doc, sort_keys=True)


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1), st.dictionaries(st.text(), st.text(), max_size=20))
def test_unicode_and_key_order(text: str, mapping: dict[str, str]) -> None:
    doc = {text: mapping, "z": [text] * 3, "a": text[::-1]}
    assert ours(doc) == reference(doc)
    assert ours(doc, sort_keys=True) == reference(doc, sort_keys=True)


def test_pydantic_models_like_the_encoder() -> None:
    model = Outer(
        name="é😀",
        inner=Inner(when=dt.datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=dt.timezone.utc)),
        ids=[uuid.UUID(int=7)],
        price=decimal.Decimal("10.50"),
        extra={"nested": Inner(when=dt.datetime(2020, 1, 1))},
    )
    assert ours(model) == reference(model)
    assert ours({"m": [model, model]}, sort_keys=True) == reference({"m": [model, model]}, sort_keys=True)


def test_the_crewai_types_crewai_stores() -> None:
    from crewai.memory.types import MemoryRecord
    from crewai.tasks.output_format import OutputFormat
    from crewai.tasks.task_output import TaskOutput

    output = TaskOutput(
        description="Summarise the findings about ünïcode",
        agent="Researcher",
        raw="Final answer",
        json_dict={"score": 0.25, "tags": ["a", "b"]},
        output_format=OutputFormat.JSON,
        messages=[
            {"role": "system", "content": "You are a researcher"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                   "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "42"},
        ],
    )
    record = MemoryRecord(content="fact", categories=["x"], metadata={"k": 1}, embedding=[0.1, 0.2])
    for value in (output, output.model_dump(), record, {"inputs": {"topic": "AI", "n": 3}}, [record, output]):
        assert ours(value) == reference(value)


def test_numpy_and_other_extensions() -> None:
    # The stock encoder raises for all of these; we encode them (documented extensions).
    assert loads(dumps(np.arange(6, dtype=np.float32).reshape(2, 3))) == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert loads(dumps(np.arange(6).reshape(2, 3)[:, 1])) == [1, 4]  # not contiguous
    assert loads(dumps({"n": np.int64(5), "b": np.bool_(True)})) == {"n": 5, "b": True}
    assert loads(dumps({3, 1, 2})) == [1, 2, 3]
    assert sorted(loads(dumps({1, "a"})), key=str) == [1, "a"]
    assert loads(dumps({2: "int key", None: "none", True: "bool", 1.5: "f"})) == {"2": "int key", "null": "none", "true": "bool", "1.5": "f"}
    # Plain enums (no str/int mix-in): orjson writes the value, the stock encoder str(member).
    assert loads(dumps(Plain.A)) == 1
    assert json.loads(json.dumps(Plain.A, cls=CrewJSONEncoder)) == "Plain.A"


@pytest.mark.parametrize(
    ("value", "path", "type_name"),
    [
        ({"a": [1, {"b": object()}]}, "$.a[1].b", "object"),
        ({"x": {"y": 2**64}}, "$.x.y", "int"),
        ([-(2**63) - 1], "$[0]", "int"),
        ({"s": "bad \ud800"}, "$.s", "str"),
        ({(1, 2): "tuple key"}, "$[(1, 2)]", "tuple"),
        ({"t": dt.time(12, 0)}, "$.t", "time"),
        ({"c": 1j}, "$.c", "complex"),
    ],
)
def test_unencodable_values_name_type_and_path(value: Any, path: str, type_name: str) -> None:
    with pytest.raises(JSONEncodeError) as caught:
        dumps(value)
    assert isinstance(caught.value, TypeError)
    assert caught.value.path == path
    assert caught.value.type_name == type_name
    assert path in str(caught.value) and type_name in str(caught.value)


def test_circular_reference_is_a_clear_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(JSONEncodeError, match="circular|deeper"):
        dumps(loop)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"x": math.nan}, "$.x"),
        ([1.0, math.inf], "$[1]"),
        ({"v": np.array([[1.0, -np.inf]])}, "$.v[0][1]"),
        ({"m": Scored(score=1.0, parts=[0.5, math.nan])}, "$.m.parts[1]"),
        ({"m": Scored.model_construct(score=math.inf, parts=[])}, "$.m.score"),
        ({"n": None, "f": np.float32("nan")}, "$.f"),
    ],
)
def test_non_finite_numbers_are_refused(value: Any, path: str) -> None:
    # Decision: stock json writes NaN (not JSON), orjson writes null (value lost); we raise.
    with pytest.raises(NonFiniteNumberError) as caught:
        dumps(value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, TypeError)
    assert caught.value.path == path


def test_null_without_nan_is_fine() -> None:
    assert dumps({"a": None, "b": [1.5, None]}) == '{"a":null,"b":[1.5,null]}'


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.lists(documents, min_size=1), st.dictionaries(st.text(), documents, min_size=1)), st.data())
def test_truncated_text_is_refused(doc: Any, data: st.DataObject) -> None:
    text = dumps(doc)
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    with pytest.raises(JSONDecodeError):
        loads(text[:cut])
    with pytest.raises(JSONDecodeError):
        loads(text[:cut].encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1',
        b'{"a": "\xff"}',
        b'"\xed\xa0\x80"',  # an encoded surrogate
        '{"a": NaN}',
        "[Infinity]",
        "[-Infinity]",
        "[1e400]",
        "[18446744073709551616]",
        '{"k": -9223372036854775809}',
        '"\\ud800"',
        "",
        "[1,]",
        "{'a': 1}",
    ],
)
def test_bad_text_is_a_clear_error(text: str | bytes) -> None:
    with pytest.raises(JSONDecodeError) as caught:
        loads(text)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, json.JSONDecodeError)


def test_wide_integer_error_names_the_number_and_position() -> None:
    text = '{"ok": "12345678901234567890123", "n": 18446744073709551616}'
    with pytest.raises(JSONDecodeError, match="18446744073709551616") as caught:
        loads(text)
    assert caught.value.pos == text.index("18446744073709551616")


def test_integers_at_the_64_bit_edges_are_exact() -> None:
    edges = [-(2**63), 2**63 - 1, 2**63, 2**64 - 1]
    assert loads(dumps(edges)) == edges
    assert loads(b'["12345678901234567890123", 1.2345678901234567890123]') == [
        "12345678901234567890123",
        1.2345678901234567,
    ]


def test_loads_accepts_bytes_like_and_refuses_other_types() -> None:
    assert loads(b'{"a": [1]}') == loads(bytearray(b'{"a": [1]}')) == loads(memoryview(b'{"a": [1]}')) == {"a": [1]}
    with pytest.raises(TypeError, match="int"):
        loads(12)  # type: ignore[arg-type]


def test_allow_nan_reads_what_stock_json_wrote() -> None:
    legacy = json.dumps({"score": math.nan, "hi": math.inf})
    with pytest.raises(JSONDecodeError):
        loads(legacy)
    value = loads(legacy, allow_nan=True)
    assert math.isnan(value["score"]) and value["hi"] == math.inf
    with pytest.raises(JSONDecodeError, match="64-bit"):
        loads("[NaN, 99999999999999999999]", allow_nan=True)
    with pytest.raises(JSONDecodeError):
        loads('{"a": ', allow_nan=True)
