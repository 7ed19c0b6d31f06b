"""orjson-based ``dumps``/``loads`` with exactly the conversions of CrewAI's ``CrewJSONEncoder``.

``crewai.utilities.crew_json_encoder.CrewJSONEncoder`` (crewai 1.15.30) converts, in this
order: pydantic models (``model_dump()``, top-level model values as ``str``, ``str(obj)`` on
RecursionError), ``UUID``/``Decimal``/``Enum`` (``str(obj)``), ``datetime``/``date``
(``isoformat()``) and ``bytes`` (base64 text). Everything else stock ``json`` rejects, it
rejects. Here those types are converted the same way, so
``loads(dumps(x)) == json.loads(json.dumps(x, cls=CrewJSONEncoder))`` wherever the stock
encoder succeeds, with these deliberate differences (documented, tested):

* NaN and +/-infinity raise :class:`NonFiniteNumberError` (stock json writes ``NaN``, which
  is not JSON; orjson writes ``null``, which silently loses the value).
* Integers outside [-2**63, 2**64) raise :class:`JSONEncodeError` (orjson's range), and
  ``loads`` refuses them too rather than returning orjson's lossy float.
* Plain ``Enum`` members (no ``str``/``int``/``float`` mix-in) encode as their ``.value``
  (orjson's native rule) where the stock encoder writes ``str(member)``. Every enum CrewAI
  keeps in what it stores (``OutputFormat``, ``ToolFailureReason``, ...) is a ``str`` mix-in,
  for which both agree.
* Extensions where the stock encoder raises: sets/frozensets (a list, sorted when the items
  are sortable, so fingerprints are stable), numpy arrays and scalars (lists/numbers),
  dataclasses (orjson's field dict), non-``str`` keys of any type orjson accepts.
* Strings with lone surrogates raise (they are not UTF-8); stock json escapes them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import sys
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import orjson

from ._errors import JSONDecodeError, JSONEncodeError, NonFiniteNumberError, decode_error

_BASE_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_SERIALIZE_NUMPY
_MAX_DEPTH = 254  # orjson's nesting limit for dumps
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
# Digits -> "0", the characters that make a number a float -> ".", the rest -> " ": a run of
# 19+ zeros not touching a "." is an integer literal (or digits inside a string) that may
# not fit 64 bits. bytes.translate + find run at memory speed.
_RUN_TABLE = bytes(
    0x30 if chr(b).isdigit() and b < 0x80 else 0x2E if b in b".eE" else 0x20 for b in range(256)
)
_RUN = b"0" * 19


class _Unsupported(TypeError):
    """Internal: the converter has no rule for this type."""


def _pydantic_base_model() -> type | None:
    """pydantic's BaseModel if pydantic is imported; no model can exist otherwise."""
    module = sys.modules.get("pydantic")
    return getattr(module, "BaseModel", None) if module is not None else None


def _handle_pydantic_model(obj: Any, base_model: type) -> Any:
    """Same as ``CrewJSONEncoder._handle_pydantic_model``."""
    try:
        data = obj.model_dump()
        for key, value in data.items():
            if isinstance(value, base_model):
                data[key] = str(value)
        return data
    except RecursionError:
        return str(obj)


def _set_as_list(obj: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(obj)
    except TypeError:
        return list(obj)


def _base64(obj: bytes) -> str:
    return base64.b64encode(obj).decode("utf-8")


# Exact types whose rule is fixed (none of them can be a pydantic model): one dict lookup.
_EXACT: dict[type, Callable[[Any], Any]] = {
    datetime: datetime.isoformat,
    date: date.isoformat,
    UUID: str,
    Decimal: str,
    bytes: _base64,
}


def convert(obj: Any) -> Any:
    """The ``default`` hook: a JSON-ready stand-in for ``obj`` or :class:`_Unsupported`."""
    exact = _EXACT.get(type(obj))
    if exact is not None:
        return exact(obj)
    base_model = _pydantic_base_model()
    if base_model is not None and isinstance(obj, base_model):
        return _handle_pydantic_model(obj, base_model)
    if isinstance(obj, (UUID, Decimal, Enum)):
        return str(obj)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return _base64(obj)
    # Extensions: the stock encoder raises TypeError for these.
    if isinstance(obj, (set, frozenset)):
        return _set_as_list(obj)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(obj, numpy.ndarray):
            return obj.tolist()
        if isinstance(obj, numpy.generic):
            return obj.item()
    raise _Unsupported(f"Type is not JSON serializable: {type(obj).__qualname__}")


def dumps(obj: Any, *, sort_keys: bool = False) -> str:
    """Encode ``obj`` as compact JSON text (UTF-8, not ASCII-escaped).

    ``sort_keys=True`` orders every object's keys (by code point, as ``json`` does) for
    fingerprints. Raises :class:`JSONEncodeError` (a ``TypeError``) naming the type and
    path of what cannot be encoded, :class:`NonFiniteNumberError` for NaN/infinity.
    """
    options = _BASE_OPTIONS | orjson.OPT_SORT_KEYS if sort_keys else _BASE_OPTIONS
    converted: dict[int, Any] = {}

    def default(value: Any) -> Any:
        result = convert(value)
        converted[id(value)] = result
        return result

    try:
        raw = orjson.dumps(obj, default=default, option=options)
    except orjson.JSONEncodeError as exc:
        raw = _retry_with_non_str_keys(obj, default, options, exc)
    # orjson writes NaN/inf as null: only output holding a null can hide one.
    if b"null" in raw and _has_non_finite(obj, converted):
        found = _find_non_finite(obj, converted)
        if found is not None:
            path, value = found
            raise NonFiniteNumberError(
                f"cannot encode non-finite number {value!r} at {path}: JSON has no NaN/Infinity",
                path=path,
                type_name=type(value).__name__,
            )
    return raw.decode("utf-8")


def _retry_with_non_str_keys(
    obj: Any, default: Callable[[Any], Any], options: int, exc: orjson.JSONEncodeError
) -> bytes:
    """json accepts int/float/bool/None keys; orjson needs an option (slower) for them."""
    if "Dict key must be str" in str(exc):
        try:
            return orjson.dumps(obj, default=default, option=options | orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError as second:
            exc = second
    raise _explain(obj, exc) from exc


def _explain(obj: Any, exc: Exception) -> JSONEncodeError:
    """Locate what orjson refused and say where it is."""
    try:
        found = _find_unencodable(obj, "$", 0)
    except RecursionError:
        found = None
    if found is None:
        return JSONEncodeError(f"cannot encode value: {exc}")
    path, type_name, reason = found
    return JSONEncodeError(f"cannot encode {type_name} at {path}: {reason}", path=path, type_name=type_name)


def _child(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if isinstance(key, str) else f"{path}[{key!r}]"


_SCALARS = (str, bool, type(None))


def _find_unencodable(obj: Any, path: str, depth: int) -> tuple[str, str, str] | None:
    """First (path, type name, reason) that orjson would refuse, or None."""
    type_name = type(obj).__qualname__
    if depth > _MAX_DEPTH:
        return path, type_name, f"nesting deeper than {_MAX_DEPTH} levels (or a circular reference)"
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return path, type_name, "string holds a lone surrogate, which is not UTF-8"
        return None
    if isinstance(obj, _SCALARS) or isinstance(obj, float):
        return None
    if isinstance(obj, int):
        if not _INT_MIN <= obj <= _INT_MAX:
            return path, type_name, "integer outside the 64-bit range [-2**63, 2**64)"
        return None
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (str, int, float, bool, type(None), Enum, UUID, date)):
                return _child(path, key), type(key).__qualname__, "dict key of an unsupported type"
            found = _find_unencodable(value, _child(path, key), depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            found = _find_unencodable(value, _child(path, index), depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(obj, Enum):
        return _find_unencodable(obj.value, path, depth + 1)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return _find_unencodable(fields, path, depth + 1)
    try:
        stand_in = convert(obj)
    except _Unsupported:
        return path, type_name, "no JSON conversion for this type"
    if stand_in is obj:
        return None
    return _find_unencodable(stand_in, path, depth + 1)


_PLAIN = frozenset((str, int, bool, type(None)))


def _has_non_finite(root: Any, converted: dict[int, Any]) -> bool:
    """Fast check (no paths) for NaN/infinity in what orjson just encoded (so no cycles)."""
    stack = [root]
    pop, push, plain = stack.pop, stack.append, _PLAIN
    while stack:
        value = pop()
        kind = type(value)
        if kind is dict:
            items: Any = value.values()
        elif kind is list or kind is tuple:
            items = value
        elif kind is float:
            if value - value != 0.0:  # NaN and +/-inf give NaN
                return True
            continue
        elif id(value) in converted:  # pydantic model, set, datetime, ...: what orjson was given
            push(converted[id(value)])
            continue
        elif isinstance(value, (str, int)) or value is None:  # str/int subclasses, their enums
            continue
        elif _find_non_finite(value, converted) is not None:  # float enums, numpy, dataclasses...
            return True
        else:
            continue
        for item in items:
            kind = type(item)
            if kind is float:
                if item - item != 0.0:
                    return True
            elif kind not in plain:
                push(item)
    return False


def _find_non_finite(obj: Any, converted: dict[int, Any]) -> tuple[str, Any] | None:
    """First NaN/infinity in what orjson just encoded, reusing the stand-ins it got."""
    stack: list[tuple[Any, str]] = [(obj, "$")]
    numpy = sys.modules.get("numpy")
    while stack:
        value, path = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                return path, value
        elif isinstance(value, dict):
            stack.extend((item, _child(path, key)) for key, item in reversed(list(value.items())))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, _child(path, i)) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, _SCALARS) or isinstance(value, int):
            continue
        elif numpy is not None and isinstance(value, numpy.generic):
            if value.dtype.kind == "f" and not math.isfinite(float(value)):
                return path, float(value)
        elif numpy is not None and isinstance(value, numpy.ndarray):
            if value.dtype.kind == "f":
                bad = numpy.argwhere(~numpy.isfinite(value))
                if bad.size:
                    index = tuple(int(i) for i in bad[0])
                    suffix = "".join(f"[{i}]" for i in index)
                    return path + suffix, value[index].item()
            elif value.dtype.kind == "O":
                stack.append((value.tolist(), path))
        elif isinstance(value, Enum):
            stack.append((value.value, path))
        elif id(value) in converted:
            stack.append((converted[id(value)], path))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            stack.append(({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, path))
    return None


def loads(text: str | bytes | bytearray | memoryview, *, allow_nan: bool = False) -> Any:
    """Decode JSON text; raises :class:`JSONDecodeError` (a ``ValueError``) on bad input.

    Refuses integers beyond 64 bits instead of returning orjson's lossy float, invalid
    UTF-8, truncated text, ``NaN``/``Infinity`` tokens and overflowing floats.
    ``allow_nan=True`` accepts the ``NaN``/``Infinity`` tokens stock ``json`` writes
    (such documents are parsed by the stdlib, for rows CrewAI itself wrote).
    """
    if isinstance(text, memoryview):
        text = text.tobytes()
    elif not isinstance(text, (str, bytes, bytearray)):
        raise TypeError(f"loads() takes str, bytes, bytearray or memoryview, not {type(text).__qualname__}")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if allow_nan and isinstance(text, (str, bytes, bytearray)):
            return _loads_stdlib_with_nan(text, exc)
        raise JSONDecodeError(exc.msg, exc.doc, exc.pos) from None
    if _may_hold_wide_integer(text):
        _refuse_wide_integers(text)
    return value


def _may_hold_wide_integer(text: str | bytes | bytearray) -> bool:
    """Cheap filter: is there a run of 19+ digits that is not part of a float literal?"""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    shape = raw.translate(_RUN_TABLE)
    index = shape.find(_RUN)
    while index != -1:
        start = shape.rfind(b".", 0, index) + 1
        start = max(start, shape.rfind(b" ", 0, index) + 1)
        end = index + len(_RUN)
        while end < len(shape) and shape[end] == 0x30:
            end += 1
        before = shape[start - 1] if start > 0 else 0x20
        after = shape[end] if end < len(shape) else 0x20
        if before != 0x2E and after != 0x2E:
            return True
        index = shape.find(_RUN, end)
    return False


class _WideInteger(ValueError):
    """Internal: an integer literal orjson cannot hold exactly."""

    def __init__(self, digits: str) -> None:
        super().__init__(digits)
        self.digits = digits


def _checked_int(digits: str) -> int:
    number = int(digits)
    if not _INT_MIN <= number <= _INT_MAX:
        raise _WideInteger(digits)
    return number


def _wide_integer_error(text: str | bytes | bytearray, digits: str) -> JSONDecodeError:
    doc = text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")
    return decode_error(
        f"integer {digits} is outside the 64-bit range [-2**63, 2**64) and would be read back "
        "as a lossy float",
        doc,
        doc.find(digits),
    )


#: A JSON string (skipped) or a number token, for the wide-integer scan.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?')


def _refuse_wide_integers(text: str | bytes | bytearray) -> None:
    """Find an out-of-range integer literal in a document orjson accepted.

    A flat scan of the tokens (strings skipped), not a re-parse: the stdlib
    parser recurses, so valid JSON nested ~1000 deep raised ``RecursionError``.
    """
    doc = text if isinstance(text, str) else bytes(text).decode("utf-8", "surrogatepass")
    for match in _TOKEN.finditer(doc):
        token = match.group()
        if token[0] == '"' or "." in token or "e" in token or "E" in token:
            continue
        if len(token.lstrip("-")) >= 19:
            try:
                _checked_int(token)
            except _WideInteger as wide:
                raise _wide_integer_error(text, wide.digits) from None


def _loads_stdlib_with_nan(text: str | bytes | bytearray, original: orjson.JSONDecodeError) -> Any:
    try:
        return json.loads(text, parse_int=_checked_int)
    except _WideInteger as wide:
        raise _wide_integer_error(text, wide.digits) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise JSONDecodeError(original.msg, original.doc, original.pos) from None
