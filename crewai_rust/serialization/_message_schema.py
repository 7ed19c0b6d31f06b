"""The AgentMessage document: its fields, their types, and every check of the Python twin.

This module is the Python twin's one copy of the checks (the compiled twin's is
``rust/src/message/checks.rs``, worded alike; the twin tests compare the two): the field
checks, the order they run in (:func:`check_fields`), documents (:func:`check_document`)
and CrewAI message dicts (:func:`crewai_metadata`). The public facade checks nothing.

The JSON form is fixed so both twins write the same bytes: keys in the order of
:data:`FIELDS`, optional string fields and ``tool_calls`` left out when absent,
``timestamp`` as UTC ISO 8601 (``2024-05-01T12:00:00.123456+00:00``, no fraction when it
is zero, like ``datetime.isoformat``), compact separators, UTF-8 without ASCII escaping.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from ._errors import MessageFormatError

#: Keys of the JSON object, in the order both twins write them.
FIELDS = ("id", "role", "content", "sender", "task_id", "name", "tool_calls", "tool_call_id", "timestamp", "metadata")
REQUIRED = ("id", "role", "timestamp")
ROLES = ("user", "assistant", "system", "tool")
#: The ``metadata`` key holding the keys of a CrewAI message AgentMessage has no field for.
CREWAI_EXTRA = "crewai_extra"
#: The keys of a CrewAI ``LLMMessage`` that map onto AgentMessage fields.
CREWAI_KNOWN = ("role", "content", "tool_call_id", "name", "tool_calls")
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


# -- whole messages ---------------------------------------------------------------------------
#: The checked fields, in the order of :data:`FIELDS`.
Checked = tuple[str, str, Any, Optional[str], Optional[str], Optional[str], Any, Optional[str], datetime, dict[str, Any]]


def check_fields(
    id: Any,
    role: Any,
    content: Any,
    sender: Any,
    task_id: Any,
    name: Any,
    tool_calls: Any,
    tool_call_id: Any,
    timestamp: Any,
    metadata: Any,
    parsed: bool = False,
    maybe_deep: bool = True,
) -> Checked:
    """Every field checked, in :data:`FIELDS` order; the first error wins (as in the Rust twin).

    ``parsed`` values came from JSON text: they are JSON already, so only their shape is
    checked (and their depth, when ``maybe_deep``), and a timestamp must be a string.
    """
    deep = parsed and maybe_deep
    if not (parsed and type(id) is str):
        id = check_string("id", id, optional=False)
    role = check_role(role)
    if parsed and (content is None or isinstance(content, str) or _is_list_of_objects(content)):
        if deep and isinstance(content, list):
            for index, part in enumerate(content):
                check_parsed_depth(f"content[{index}]", part)
    else:
        content = check_content(content)
    sender = _optional_string(parsed, "sender", sender)
    task_id = _optional_string(parsed, "task_id", task_id)
    name = _optional_string(parsed, "name", name)
    if parsed and _is_list_of_objects(tool_calls):
        if deep:
            for index, call in enumerate(tool_calls):
                check_parsed_depth(f"tool_calls[{index}]", call)
    else:
        tool_calls = check_tool_calls(tool_calls)
    tool_call_id = _optional_string(parsed, "tool_call_id", tool_call_id)
    if parsed and not isinstance(timestamp, str):
        raise fail("timestamp", f"expected an ISO 8601 string, got {type_label(timestamp)}")
    timestamp = check_timestamp(timestamp)
    if parsed and isinstance(metadata, dict):
        if deep:
            check_parsed_depth("metadata", metadata)
    else:
        metadata = check_metadata(metadata)
    return (id, role, content, sender, task_id, name, tool_calls, tool_call_id, timestamp, metadata)


def check_document(doc: Any, *, parsed: bool, maybe_deep: bool = True) -> Checked:
    """A document (a dict, or JSON text already parsed): known fields only, required ones
    present, each field checked; ``maybe_deep`` says parsed values may be too deep."""
    if not isinstance(doc, dict):
        raise MessageFormatError(f"AgentMessage document: expected a JSON object, got {type_label(doc)}", field="")
    if not FIELD_SET.issuperset(doc):
        raise fail(str(next(key for key in doc if key not in FIELD_SET)), "unknown field")
    for key in REQUIRED:
        if key not in doc:
            raise fail(key, "missing")
    get = doc.get
    return check_fields(
        doc["id"], doc["role"], get("content"), get("sender"), get("task_id"), get("name"), get("tool_calls"),
        get("tool_call_id"), doc["timestamp"], get("metadata"), parsed, maybe_deep,
    )


def crewai_metadata(message: Any, metadata: Any) -> dict[str, Any]:
    """Check a CrewAI ``LLMMessage`` dict and return ``metadata`` with its unknown keys
    (``files``, ``raw_tool_call_parts``) under :data:`CREWAI_EXTRA`; the constructor checks
    them as metadata."""
    if not isinstance(message, dict):
        raise MessageFormatError(f"CrewAI message: expected a dict, got {type(message).__qualname__}")
    if "role" not in message:
        raise fail("role", "missing")
    extra = {key: value for key, value in message.items() if key not in CREWAI_KNOWN}
    merged = dict(metadata or {})
    if extra:
        merged[CREWAI_EXTRA] = extra
    return merged


def _optional_string(parsed: bool, field: str, value: Any) -> str | None:
    if value is None or (parsed and type(value) is str):
        return value  # type: ignore[no-any-return]
    return check_string(field, value, optional=True)


def _is_list_of_objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)
