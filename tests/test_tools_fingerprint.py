"""The canonical call fingerprint: what it treats as equal, and twin parity."""

from __future__ import annotations

import enum
import json
import math
import sys
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crewai_rust.tools import _fingerprint as py
from crewai_rust.tools._fingerprint import BLOB_THRESHOLD, MAX_DEPTH, MAX_NODES


def _fingerprints(use_rust: bool):  # type: ignore[no-untyped-def]
    if use_rust:
        from crewai_rust import _speedups

        return _speedups.tool_call_fingerprint, _speedups.tool_canonical
    return py.tool_call_fingerprint, py.tool_canonical


def fp(use_rust: bool, args: Any, agent: str = "agent", tool: str = "tool") -> str:
    call, _ = _fingerprints(use_rust)
    return call(agent, tool, py.normalise_args(args))


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_equivalent_calls_share_a_fingerprint(use_rust: bool) -> None:
    base = fp(use_rust, {"query": "rust", "limit": 10, "opts": {"a": [1, 2.5], "b": None}})
    assert fp(use_rust, {"opts": {"b": None, "a": [1, 2.5]}, "limit": 10, "query": "rust"}) == base
    assert fp(use_rust, {"query": "rust", "limit": 10.0, "opts": {"a": (1.0, 2.5), "b": None}}) == base
    text = '{ "limit" : 1e1,\n  "query":"rust", "opts": {"b": null, "a": [1E0, 2.5]} }'
    assert fp(use_rust, text) == base, "JSON text is parsed: whitespace, key order, 1e1 == 10"
    assert fp(use_rust, OrderedDict([("limit", 10), ("query", "rust"), ("opts", {"a": [1, 2.5], "b": None})])) == base
    assert fp(use_rust, {"query": Text("rust"), "limit": 10, "opts": {"a": [True and 1, 2.5], "b": None}}) == base


def test_different_calls_differ(use_rust: bool) -> None:
    base = fp(use_rust, {"query": "rust"})
    assert fp(use_rust, {"query": "Rust"}) != base
    assert fp(use_rust, {"query": "rust "}) != base, "whitespace inside values is meaningful"
    assert fp(use_rust, {"query": "rust"}, agent="other") != base
    assert fp(use_rust, {"query": "rust"}, tool="other") != base
    assert fp(use_rust, {"n": 1}) != fp(use_rust, {"n": True}), "true is not 1 in JSON"
    assert fp(use_rust, {"n": 1}) != fp(use_rust, {"n": "1"})
    assert fp(use_rust, {"n": 0.1 + 0.2}) != fp(use_rust, {"n": 0.3})
    assert fp(use_rust, [1, [2]]) != fp(use_rust, [[1], 2])
    assert fp(use_rust, "plain text, not JSON") != fp(use_rust, "plain text,  not JSON")


def test_numbers_are_canonical_by_value(use_rust: bool) -> None:
    _, canonical = _fingerprints(use_rust)
    assert canonical(1) == canonical(1.0) == canonical(Color.RED) == b"I1;"
    assert canonical(-0.0) == canonical(0) == b"I0;"
    assert canonical(10**20) == canonical(1e20) == b"I100000000000000000000;"
    assert canonical(2**200) == b"I%d;" % 2**200
    assert canonical(1e300) == b"I%d;" % int(1e300)
    assert canonical(float("nan")) == b"Dnan;"
    assert canonical(float("-inf")) == b"D-inf;"
    assert canonical(1.5) != canonical(1)


def test_odd_values_are_deterministic_and_never_raise(use_rust: bool) -> None:
    _, canonical = _fingerprints(use_rust)
    loop: list[Any] = [1]
    loop.append(loop)
    assert canonical(loop) == b"L2:I1;R1;"
    me: dict[str, Any] = {}
    me["me"] = {"up": me}
    assert canonical(me) == b"M1:S2:meM1:S2:upR2;"
    one, two = canonical(Opaque(1)), canonical(Opaque(1))
    assert one == two, "memory addresses are stripped from reprs"
    assert b"Opaque" in one
    assert canonical(BadRepr()).endswith(b"S17:<unrepresentable>")
    deep: Any = []
    for _ in range(MAX_DEPTH + 50):
        deep = [deep]
    assert canonical(deep).endswith(b"Z;")
    wide = [[0] * 1000 for _ in range(MAX_NODES // 1000 + 5)]
    assert b"Z;" in canonical(wide)
    assert canonical({"s": "\ud800x"}) == b"M1:S1:sS4:\xed\xa0\x80x", "lone surrogates pass through"
    assert canonical(bytearray(b"ab")) == canonical(b"ab") == b"B2:ab"


def test_huge_text_is_hashed_not_copied(use_rust: bool) -> None:
    _, canonical = _fingerprints(use_rust)
    small = "x" * (BLOB_THRESHOLD - 1)
    assert canonical(small).startswith(b"S%d:" % (BLOB_THRESHOLD - 1))
    big = "é" * BLOB_THRESHOLD
    encoded = canonical(big)
    assert encoded.startswith(b"H%d:" % (2 * BLOB_THRESHOLD)) and len(encoded) < 64
    assert canonical(big[:-1] + "e") != encoded
    assert len(canonical(b"\0" * (4 * BLOB_THRESHOLD))) < 64


# -- twin parity -------------------------------------------------------------
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**130), max_value=2**130)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\ud800", "\udfff", " ", "\n"]), max_size=20)
    | st.binary(max_size=10)
)
_json_like = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5)
    | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), children, max_size=5)
    | st.frozensets(st.integers(-3, 3) | st.text(max_size=3), max_size=4),
    max_leaves=40,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_json_like, agent=st.text(max_size=10), tool=st.text(max_size=10))
def test_twins_agree_on_json_like_data(speedups: Any, value: Any, agent: str, tool: str) -> None:
    assert speedups.tool_canonical(value) == py.tool_canonical(value)
    assert speedups.tool_call_fingerprint(agent, tool, value) == py.tool_call_fingerprint(agent, tool, value)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.recursive(st.none() | st.integers() | st.floats(allow_nan=False) | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=30))
def test_json_text_and_data_give_one_fingerprint(speedups: Any, value: Any) -> None:
    wrapped = {"payload": value}
    text = json.dumps(wrapped, indent=2, ensure_ascii=False)
    for twin in (speedups.tool_call_fingerprint, py.tool_call_fingerprint):
        assert twin("a", "t", py.normalise_args(text)) == twin("a", "t", wrapped)


def test_twins_agree_on_odd_values(speedups: Any) -> None:
    loop: list[Any] = []
    loop.append({"again": loop})
    deep: Any = {}
    for i in range(MAX_DEPTH + 5):
        deep = {"k": deep, "i": i}
    values = [
        loop,
        deep,
        Opaque(3),
        BadRepr(),
        Color.RED,
        Text("abc"),
        OrderedDict(b=1, a=2),
        {1: "int key", "1": "str key", None: 0, (1, 2): "tuple key"},
        {"big": "z" * (BLOB_THRESHOLD + 3), "blob": b"y" * BLOB_THRESHOLD},
        "\U0001f600" * 20000,
        [math.pi, -1e-310, 1e16, sys.maxsize, -(2**63)],
        [[0] * 1000 for _ in range(MAX_NODES // 1000 + 2)],
        object,
        len,
    ]
    for value in values:
        assert speedups.tool_canonical(value) == py.tool_canonical(value), repr(value)[:80]
        assert speedups.tool_fingerprint(value) == py.fingerprint(value)


def test_normalise_args_keeps_non_json_text() -> None:
    assert py.normalise_args("  {not json") == "  {not json"
    assert py.normalise_args('["a", 1]') == ["a", 1]
    assert py.normalise_args('{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}
    assert py.normalise_args({"a": 1}) == {"a": 1}


def test_rust_fingerprint_rejects_nothing_it_can_walk(speedups: Any) -> None:
    with pytest.raises(TypeError):
        speedups.tool_fingerprint()  # type: ignore[call-arg]
