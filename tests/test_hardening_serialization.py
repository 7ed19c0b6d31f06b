"""Issue 12: ``loads()`` accepts what orjson accepts, however deep (both twins share it)."""

from __future__ import annotations

import orjson
import pytest

from crewai_rust.serialization import JSONDecodeError, loads


@pytest.mark.parametrize("depth", [10, 500, 1000])
def test_deep_valid_json_with_long_numbers_loads(depth: int) -> None:
    text = "[" * depth + "1234567890123456789, 18446744073709551615, -9223372036854775808" + "]" * depth
    ours, theirs = loads(text), orjson.loads(text)
    for _ in range(depth - 1):  # walked down by hand: == this deep would itself hit the recursion limit
        assert len(ours) == len(theirs) == 1
        ours, theirs = ours[0], theirs[0]
    assert ours == theirs == [1234567890123456789, 18446744073709551615, -9223372036854775808]


@pytest.mark.parametrize("depth", [1, 1000])
def test_a_wide_integer_is_refused_at_any_depth(depth: int) -> None:
    text = "[" * depth + "1234567890123456789012" + "]" * depth
    with pytest.raises(JSONDecodeError, match="outside the 64-bit range"):
        loads(text)


def test_digits_inside_strings_are_not_numbers() -> None:
    text = '{"k\\"99999999999999999999": "12345678901234567890123", "n": 1.23456789012345678901}'
    assert loads(text) == orjson.loads(text)
