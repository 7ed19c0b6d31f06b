"""The canonical fingerprint of a tool call: the pure-Python twin.

A call is identified by (agent, tool, arguments). The arguments are encoded
canonically by walking the Python values (no JSON text): mapping and set
entries are sorted, numbers are canonical by value (``1 == 1.0 == 1e0``),
strings of 64 KiB or more are replaced by a streamed digest, containers that
contain themselves become a back-reference, and anything else becomes its type
name and its repr without memory addresses. The Rust twin
(``_speedups.tool_call_fingerprint``) produces byte-for-byte the same encoding
and digest; the format is documented in ``rust/src/toolguard/canon.rs``.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from typing import Any

BLOB_THRESHOLD = 64 * 1024
MAX_DEPTH = 100
MAX_NODES = 200_000
DIGEST_LEN = 16
_CHUNK = 16 * 1024
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_int_repr = int.__repr__
_float_value = float.__float__
_str_encode = str.encode


def _text(value: str) -> bytes:
    data = _str_encode(value, "utf-8", "surrogatepass") if len(value) < BLOB_THRESHOLD // 4 else None
    if data is not None:
        return b"S%d:%s" % (len(data), data)
    return _long_text(value)


def _long_text(value: str) -> bytes:
    """Encode long text chunk by chunk, hashing when it reaches the blob threshold."""
    chunks = [_str_encode(value[i : i + _CHUNK], "utf-8", "surrogatepass") for i in range(0, len(value), _CHUNK)]
    size = sum(len(c) for c in chunks)
    if size < BLOB_THRESHOLD:
        return b"S%d:%s" % (size, b"".join(chunks))
    hasher = hashlib.blake2b(digest_size=DIGEST_LEN)
    for chunk in chunks:
        hasher.update(chunk)
    return b"H%d:%s" % (size, hasher.digest())


def _blob(data: bytes) -> bytes:
    if len(data) < BLOB_THRESHOLD:
        return b"B%d:%s" % (len(data), data)
    return b"K%d:%s" % (len(data), hashlib.blake2b(data, digest_size=DIGEST_LEN).digest())


def _float(value: float) -> bytes:
    if value != value:
        return b"Dnan;"
    if value in (float("inf"), float("-inf")):
        return b"D+inf;" if value > 0 else b"D-inf;"
    if value.is_integer():
        return b"I%d;" % int(value)
    return b"D%s;" % struct.pack(">d", value).hex().encode("ascii")


def _type_name(value: Any) -> str:
    kind = type(value)
    parts = []
    for attr in ("__module__", "__qualname__"):
        try:
            parts.append(str(getattr(kind, attr)))
        except Exception:
            parts.append("?")
    return ".".join(parts)


def _object(value: Any) -> bytes:
    try:
        shown = _ADDRESS.sub("", repr(value))
    except Exception:
        shown = "<unrepresentable>"
    return b"O" + _text(_type_name(value)) + _text(shown)


class _Walker:
    __slots__ = ("nodes", "path")

    def __init__(self) -> None:
        self.nodes = 0
        self.path: list[int] = []

    def walk(self, value: Any, out: list[bytes]) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            out.append(b"Z;")
            return
        kind = type(value)
        if value is None:
            out.append(b"N")
        elif kind is bool:
            out.append(b"T" if value else b"F")
        elif kind is str:
            out.append(_text(value))
        elif kind is int:
            out.append(b"I%d;" % value)
        elif kind is float:
            out.append(_float(value))
        elif isinstance(value, int):
            out.append(b"I%s;" % _int_repr(value).encode("ascii"))
        elif isinstance(value, float):
            out.append(_float(_float_value(value)))
        elif isinstance(value, str):
            out.append(_text(str.__str__(value)))
        elif isinstance(value, (bytes, bytearray)):
            out.append(_blob(bytes(memoryview(value))))
        elif isinstance(value, (dict, list, tuple, set, frozenset)):
            self.container(value, out)
        else:
            out.append(_object(value))

    def container(self, value: Any, out: list[bytes]) -> None:
        address = id(value)
        path = self.path
        if address in path:
            out.append(b"R%d;" % (len(path) - path.index(address)))
            return
        if len(path) >= MAX_DEPTH:
            out.append(b"Z;")
            return
        path.append(address)
        try:
            if isinstance(value, dict):
                entries = []
                for key, item in dict.items(value):
                    entry: list[bytes] = []
                    self.walk(key, entry)
                    self.walk(item, entry)
                    entries.append(b"".join(entry))
                entries.sort()
                out.append(b"M%d:" % len(entries))
                out.extend(entries)
            elif isinstance(value, (list, tuple)):
                items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
                out.append(b"L%d:" % len(value))
                for item in items:
                    self.walk(item, out)
            else:
                members = set.__iter__(value) if isinstance(value, set) else frozenset.__iter__(value)
                entries = []
                for item in members:
                    entry = []
                    self.walk(item, entry)
                    entries.append(b"".join(entry))
                entries.sort()
                out.append(b"E%d:" % len(entries))
                out.extend(entries)
        finally:
            path.pop()


def tool_canonical(value: Any) -> bytes:
    """The canonical encoding of ``value``."""
    out: list[bytes] = []
    _Walker().walk(value, out)
    return b"".join(out)


def fingerprint(value: Any) -> str:
    """Hex BLAKE2b-128 of the canonical encoding of ``value``."""
    return hashlib.blake2b(tool_canonical(value), digest_size=DIGEST_LEN).hexdigest()


def tool_call_fingerprint(agent: Any, tool: Any, args: Any) -> str:
    """Fingerprint of one call: the canonical (agent, tool, args) triple."""
    walker = _Walker()
    walker.nodes = 1  # the triple itself, as in the Rust twin
    out: list[bytes] = [b"L3:"]
    walker.walk(agent, out)
    walker.walk(tool, out)
    walker.walk(args, out)
    return hashlib.blake2b(b"".join(out), digest_size=DIGEST_LEN).hexdigest()


def normalise_args(args: Any) -> Any:
    """Arguments as plain data: a JSON object/array given as text is parsed, so its
    whitespace and key order stop mattering. Other text is kept as it is.

    ``json.loads`` (not orjson) because it keeps big integers exact.
    """
    if isinstance(args, str):
        text = args.strip()
        if text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except (ValueError, RecursionError):
                return args
    return args


def _readable(value: Any, depth: int = 0) -> bytes:
    """What can be read of a value the walker gave up on (a container changed, a ``__repr__`` raised...)."""
    try:
        return tool_canonical(value)
    except Exception:
        pass
    parts = [_text(_type_name(value))]
    if depth < 2 and isinstance(value, (dict, list, tuple)):
        try:
            members = list(dict.items(value)) if isinstance(value, dict) else list(value)
        except Exception:
            members = []
        parts.extend(_readable(m, depth + 1) for m in members[:MAX_NODES])
    else:
        parts.append(_object(value))
    return b"".join(parts)


def fallback_fingerprint(agent: Any, tool: Any, args: Any) -> str:
    """The key of a call that cannot be fingerprinted: still the agent, the tool and a
    stable digest of what could be read of the arguments, so distinct calls stay distinct."""
    out = [b"X3:", _readable(agent), _readable(tool), _readable(args)]
    return "unfingerprintable:" + hashlib.blake2b(b"".join(out), digest_size=DIGEST_LEN).hexdigest()
