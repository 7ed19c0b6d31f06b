"""Rows that cannot be read back: found, set aside, never fatal.

A record whose stored columns do not parse (a foreign writer, an old bug, a
validation bypassed) used to make the store unopenable for good. Now every row
is checked before the index takes it; one that fails is moved, in one
transaction, into the ``quarantine`` table (nothing is destroyed), with one
WARNING naming the record id and the reason. ``python -m crewai_rust memory
check PATH`` lists them and ``--repair`` puts back those it can mend.

Stored JSON is read strictly first (what we write) and then the way stock
CrewAI reads it (stdlib ``json``: NaN, Infinity, integers past 64 bits, lone
surrogates), so a LanceDB table written by stock imports losslessly.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from ..serialization import loads

logger = logging.getLogger("crewai_rust.memory")

QUARANTINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    qid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT, reason TEXT NOT NULL, quarantined_at TEXT NOT NULL,
    content, scope, categories, metadata, importance, created_at, created_us,
    last_accessed, source, private, embedding
)
"""

#: the records columns copied into quarantine (and back by a repair)
COPIED = ("id, content, scope, categories, metadata, importance, created_at, created_us, "
          "last_accessed, source, private, embedding")


def load_stored(text: Any) -> Any:
    """Parse a stored JSON column: strict first, then as stock's ``json.loads`` would (lossless for its output)."""
    if not isinstance(text, str):
        raise ValueError(f"a {type(text).__name__} where JSON text belongs")
    try:
        return loads(text)
    except ValueError:
        try:
            return json.loads(text)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def _loose_parts(value: Any) -> list[str]:
    """What in ``value`` our strict JSON would not write (for the import WARNING)."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, float) and not math.isfinite(v):
            found.append(repr(v))
        elif isinstance(v, int) and not isinstance(v, bool) and not (-(2**63) <= v < 2**64):
            found.append("an integer beyond 64 bits")
        elif isinstance(v, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in v):
            found.append("a lone surrogate")
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return found


def problem(record_id: Any, categories: Any, metadata: Any, embedding: Any, dim: int | None) -> str | None:
    """Why this stored row cannot be read back as a ``MemoryRecord`` (None: it can)."""
    if not isinstance(record_id, str) or not record_id:
        return "the id is not a string"
    try:
        cats = load_stored(categories)
    except ValueError as exc:
        return f"categories are not JSON: {exc}"
    if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
        return f"categories are not a list of strings: {str(categories)[:80]!r}"
    try:
        meta = load_stored(metadata)
    except ValueError as exc:
        return f"metadata is not JSON: {exc}"
    if not isinstance(meta, dict):
        return f"metadata is not a JSON object: {str(metadata)[:80]!r}"
    if not isinstance(embedding, bytes) or (dim is not None and len(embedding) != dim * 4):
        size = len(embedding) if isinstance(embedding, bytes) else type(embedding).__name__
        return f"the embedding is not {dim} float32 values ({size} bytes)"
    return None


def warn(record_id: Any, reason: str, where: str) -> None:
    logger.warning(
        "crewai_rust memory: record %r in %s cannot be read back (%s); it was moved to the quarantine table. "
        "`python -m crewai_rust memory check` lists it, `--repair` mends it where it can.",
        record_id, where, reason,
    )


def note_loose_json(record_id: str, metadata: str, categories: str) -> None:
    """The import WARNING for stock JSON our own writer would refuse (kept as stock wrote it)."""
    parts: list[str] = []
    for text in (metadata, categories):
        try:
            loads(text)
        except ValueError:
            try:
                parts.extend(_loose_parts(json.loads(text)))
            except ValueError:
                pass
    if parts:
        logger.warning(
            "crewai_rust memory: imported record %r holds %s in its metadata; kept exactly as CrewAI wrote it",
            record_id, ", ".join(sorted(set(parts))),
        )


def repaired(categories: Any, metadata: Any) -> tuple[str, str]:
    """Best-effort readable columns for a quarantined row (``memory check --repair``)."""
    try:
        cats = load_stored(categories)
    except ValueError:
        cats = []
    if not isinstance(cats, list):
        cats = [cats] if isinstance(cats, str) else []
    cats = [c if isinstance(c, str) else json.dumps(c) for c in cats]
    try:
        meta = load_stored(metadata)
        if not isinstance(meta, dict):
            meta = {"value": meta}
    except ValueError:
        meta = {"unparsed_metadata": str(metadata)}
    return json.dumps(cats), json.dumps(meta)
