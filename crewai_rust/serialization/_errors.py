"""Errors of the serialization layer: each one names the offending type and where it sits.

They subclass the exceptions callers already catch (``TypeError`` for values that
cannot be encoded, ``ValueError``/``json.JSONDecodeError`` for bad text), so code
written against the stdlib ``json`` module keeps working.
"""

from __future__ import annotations

import orjson


class JSONEncodeError(TypeError):
    """A value cannot be encoded; ``path`` says where (``$.key[3]``), ``type_name`` what."""

    def __init__(self, message: str, *, path: str = "$", type_name: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.type_name = type_name


class NonFiniteNumberError(JSONEncodeError, ValueError):
    """NaN or +/-infinity met while encoding: JSON has no such numbers.

    Stock ``json`` writes ``NaN``/``Infinity`` (not JSON: other parsers reject it) and
    plain orjson writes ``null`` (the value is silently lost); we refuse instead.
    """


class JSONDecodeError(orjson.JSONDecodeError):
    """Text that is not JSON, or JSON we would read back wrong (integers beyond 64 bits).

    A subclass of ``json.JSONDecodeError`` (hence ``ValueError``) through orjson's.
    """


class MessageFormatError(ValueError):
    """An AgentMessage document is malformed or mistyped; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def decode_error(message: str, doc: str | bytes, pos: int = 0) -> JSONDecodeError:
    """Build a :class:`JSONDecodeError` with stdlib-style line/column information."""
    text = doc if isinstance(doc, str) else bytes(doc).decode("utf-8", "replace")
    return JSONDecodeError(message, text, max(0, min(pos, len(text))))


__all__ = [
    "JSONDecodeError",
    "JSONEncodeError",
    "MessageFormatError",
    "NonFiniteNumberError",
    "decode_error",
]
