"""Memory rows in PostgreSQL's binary COPY format, for a save's ``COPY records FROM STDIN``.

Why by hand: psycopg adapts a row field by field (about 10 µs for our 13 fields),
and ``executemany`` of an upsert costs the server one executor start per row. The
row layout is fixed, so one ``struct.pack`` per row and one ``join`` build the whole
payload of a save (about 0.2 ms for 100 x 1536), and the server inserts it in one
COPY. The byte layout is the one psycopg's own binary ``write_row`` produces for
the same values and types (tested against it).

The text columns must not hold a NUL: PostgreSQL ``text`` cannot, and psycopg
refuses one before sending; :func:`nul_in_text` lets the caller refuse it the same way.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ._seam import RecordRow

#: The ``records`` columns a ``RecordRow`` fills, in its field order.
RECORD_COLUMNS = ("id, content, scope, categories, metadata, importance, created_at, created_us, "
                  "last_accessed, source, private, embedding")
#: Columns of the COPY, in payload order (``seq`` first, then the ``RecordRow`` fields).
COLUMNS = "seq, " + RECORD_COLUMNS
#: The PostgreSQL type of each column, for psycopg's formatter in the tests.
TYPES = ("int8", "text", "bytea", "bytea", "text", "text", "float8", "text", "int8", "text", "bytea", "bool", "bytea")

#: Signature, flags (no OIDs), header extension length 0.
HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_FIELDS = len(TYPES)
_NULL = b"\xff\xff\xff\xff"
_TRUE = b"\x00\x00\x00\x01\x01"
_FALSE = b"\x00\x00\x00\x01\x00"
_LENGTH = struct.Struct("!i").pack
_pack = struct.pack


def nul_in_text(rows: Sequence[RecordRow]) -> bool:
    """Whether a text column (id, categories, metadata, created_at, last_accessed) of any row holds a NUL."""
    return any(
        "\x00" in r.id or "\x00" in r.categories or "\x00" in r.metadata or "\x00" in r.created_at
        or "\x00" in r.last_accessed
        for r in rows
    )


def copy_payload(rows: Sequence[RecordRow], seqs: Sequence[int]) -> bytes:
    """The complete binary COPY stream (header, one tuple per row with its ``seq``, trailer).

    Text is UTF-8 (a lone surrogate raises ``UnicodeEncodeError``, as psycopg does);
    ``content``, ``scope`` and ``source`` go to ``bytea`` columns as UTF-8 too.
    """
    out = [HEADER]
    append = out.append
    for row, seq in zip(rows, seqs, strict=True):
        rid = row.id.encode("utf-8")
        content = row.content.encode("utf-8")
        scope = row.scope.encode("utf-8")
        cats = row.categories.encode("utf-8")
        meta = row.metadata.encode("utf-8")
        created = row.created_at.encode("utf-8")
        accessed = row.last_accessed.encode("utf-8")
        append(_pack(
            f"!hiqi{len(rid)}si{len(content)}si{len(scope)}si{len(cats)}si{len(meta)}sidi{len(created)}siqi{len(accessed)}s",
            _FIELDS, 8, seq, len(rid), rid, len(content), content, len(scope), scope, len(cats), cats,
            len(meta), meta, 8, float(row.importance), len(created), created, 8, row.created_us,
            len(accessed), accessed,
        ))
        if row.source is None:
            append(_NULL)
        else:
            source = row.source.encode("utf-8")
            append(_LENGTH(len(source)))
            append(source)
        append(_TRUE if row.private else _FALSE)
        embedding = row.embedding
        append(_LENGTH(len(embedding)))
        append(embedding)
    append(TRAILER)
    return b"".join(out)
