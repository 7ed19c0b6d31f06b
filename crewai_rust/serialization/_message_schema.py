"""The AgentMessage document: its fields, their types, and the checks both twins apply.

The JSON form is fixed so both twins write the same bytes: keys in the order of
:data:`FIELDS`, optional string fields and ``tool_calls`` left out when absent,
``timestamp`` as UTC ISO 8601 (``2024-05-01T12:00:00.123456+00:00``, no fraction when it
is zero, like ``datetime.isoformat``), compact separators, UTF-8 without ASCII escaping.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ._errors import MessageFormatError

#: Keys of the JSON object, in the order both twins write them.
FIELDS = ("id", "role", "content", "sender", "task_id", "name", "tool_calls", "tool_call_id", "timestamp", "metadata")
REQUIRED = ("id", "role", "timestamp")
ROLES = ("user", "assistant", "system", "tool")
_UTC = timezone.utc
FIELD_SET = frozenset(FIELDS)
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
#: A field value may nest at most this many containers (same limit in the Rust twin).
MAX_DEPTH = 100
_TIMESTAMP = re.compile(
    r"(?a)(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?"
)


def fail(field: str, message: str) -> MessageFormatError:
    return MessageFormatError(f"AgentMessage field {field!r}: {message}", field=field)


def type_label(value: Any) -> str:
    return "null" if value is None else type(value).__qualname__


def check_role(value: Any) -> str:
    if not isinstance(value, str):
        raise fail("role", f"expected a string, got {type_label(value)}")
    if value not in ROLES:
        raise fail("role", f"expected one of {', '.join(ROLES)}, got {value!r}")
    return str.__str__(value)


def check_string(field: str, value: Any, *, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise fail(field, f"expected a string{' or null' if optional else ''}, got {type_label(value)}")
    return check_utf8(field, str.__str__(value))


def check_utf8(field: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise fail(field, "string holds a lone surrogate, which is not UTF-8") from None
    return value


def clean_json(field: str, value: Any, depth: int = 0, root: str | None = None) -> Any:
    """A normalised copy of a JSON-compatible value; errors name the path inside ``field``."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return check_utf8(field, str.__str__(value))
    if isinstance(value, int):
        number = int.__index__(value)
        if not _INT_MIN <= number <= _INT_MAX:
            raise fail(field, f"integer {number} is outside the 64-bit range [-2**63, 2**64)")
        return number
    if isinstance(value, float):
        real = float.__float__(value)
        if not math.isfinite(real):
            raise fail(field, f"non-finite number {real!r}: JSON has no NaN/Infinity")
        return real
    if isinstance(value, (dict, list, tuple)) and depth >= MAX_DEPTH:
        raise fail(field if root is None else root, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise fail(field, f"object keys must be strings, got {type_label(key)} {key!r}")
            key = check_utf8(field, str.__str__(key))
            cleaned[key] = clean_json(f"{field}.{key}", item, depth + 1, field if root is None else root)
        return cleaned
    if isinstance(value, (list, tuple)):
        inner_root = field if root is None else root
        return [clean_json(f"{field}[{i}]", item, depth + 1, inner_root) for i, item in enumerate(value)]
    raise fail(field, f"{type_label(value)} is not a JSON value")


def check_content(value: Any) -> str | list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return check_utf8("content", str.__str__(value))
    if isinstance(value, (list, tuple)):
        return [_check_object(f"content[{i}]", part) for i, part in enumerate(value)]
    raise fail("content", f"expected a string, a list of objects or null, got {type_label(value)}")


def check_tool_calls(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise fail("tool_calls", f"expected a list of objects or null, got {type_label(value)}")
    return [_check_object(f"tool_calls[{i}]", call) for i, call in enumerate(value)]


def check_metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return _check_object("metadata", value)


def _check_object(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(field, f"expected an object, got {type_label(value)}")
    cleaned = clean_json(field, value)
    assert isinstance(cleaned, dict)
    return cleaned


def deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels (a scalar is 0, ``{}`` is 1)."""
    if type(value) not in (dict, list):
        return False
    stack = [(value, 1)]
    while stack:
        current, level = stack.pop()
        if level > limit:
            return True
        for item in current.values() if type(current) is dict else current:
            if type(item) is dict or type(item) is list:
                stack.append((item, level + 1))
    return False


def check_parsed_depth(field: str, value: Any) -> None:
    """Depth limit for values parsed from JSON (constructed ones are checked by clean_json)."""
    if deeper_than(value, MAX_DEPTH):
        raise fail(field, f"nested deeper than {MAX_DEPTH} levels")


def check_timestamp(value: Any) -> datetime:
    """A timezone-aware UTC datetime from a datetime (naive = UTC) or an ISO 8601 string."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            raise fail("timestamp", f"{value!r} is out of range in UTC") from None
    if isinstance(value, str):
        return parse_timestamp(value)
    raise fail("timestamp", f"expected an ISO 8601 string or a datetime, got {type_label(value)}")


def parse_timestamp(text: str) -> datetime:
    """Strict ISO 8601 (the subset both twins parse): date, time, fraction, Z or +hh:mm."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise fail("timestamp", f"expected ISO 8601 like 2024-05-01T12:00:00Z, got {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    offset = 0
    if zone is not None and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise fail("timestamp", f"bad UTC offset in {text!r}")
        offset = (hours * 60 + minutes) * (1 if zone[0] == "+" else -1)
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros, _UTC)
        return moment - timedelta(minutes=offset) if offset else moment
    except (ValueError, OverflowError):
        raise fail("timestamp", f"{text!r} is not a valid date and time in years 1-9999 UTC") from None


def format_timestamp(moment: datetime) -> str:
    return moment.isoformat()
