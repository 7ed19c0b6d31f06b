"""The save's binary COPY payload (``_pg_copy``) is byte for byte what psycopg's own binary
``write_row`` makes of the same values and column types, so the server reads exactly the rows an
upsert with parameters wrote. No server needed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

psycopg = pytest.importorskip("psycopg")

from psycopg._copy_base import BinaryFormatter  # noqa: E402
from psycopg.adapt import Transformer  # noqa: E402
from psycopg.pq import Format  # noqa: E402

from crewai_rust.memory._pg_copy import TYPES, copy_payload, nul_in_text  # noqa: E402
from crewai_rust.memory._seam import RecordRow  # noqa: E402

_OIDS = {"int8": 20, "text": 25, "bytea": 17, "float8": 701, "bool": 16}


def psycopg_payload(rows: list[RecordRow], seqs: list[int]) -> bytes:
    """The reference: psycopg's binary formatter, one ``write_row`` per row, as ``cursor.copy`` uses it."""
    tx = Transformer()
    tx.set_dumper_types([_OIDS[t] for t in TYPES], Format.BINARY)
    formatter = BinaryFormatter(tx)
    out = bytearray()
    for row, seq in zip(rows, seqs):
        out += formatter.write_row((seq, row.id, row.content.encode(), row.scope.encode(), row.categories,
                                    row.metadata, row.importance, row.created_at, row.created_us,
                                    row.last_accessed, None if row.source is None else row.source.encode(),
                                    row.private, row.embedding))
    out += formatter.end()
    return bytes(out)


# Text PostgreSQL can hold (no NUL, no lone surrogate); the bytea columns take anything encodable.
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
_any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_rows = st.builds(
    RecordRow,
    id=_text.filter(bool),
    content=_any_text,
    scope=_any_text,
    categories=_text,
    metadata=_text,
    importance=st.floats(allow_nan=True, allow_infinity=True),
    created_at=_text,
    created_us=st.integers(-(2**63), 2**63 - 1),
    last_accessed=_text,
    source=st.none() | _any_text,
    private=st.booleans(),
    embedding=st.binary(max_size=64),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_rows, max_size=6), st.data())
def test_payload_matches_psycopgs_own_binary_rows(rows: list[RecordRow], data: st.DataObject) -> None:
    seqs = data.draw(st.lists(st.integers(1, 2**62), min_size=len(rows), max_size=len(rows)))
    assert copy_payload(rows, seqs) == psycopg_payload(rows, seqs)


def test_a_1536_embedding_and_a_float_importance_round_trip_the_layout() -> None:
    row = RecordRow("r", "memory", "/crew/a", '["c"]', "{}", 0.25, "2025-01-01T00:00:00", 1735689600000000,
                    "2025-01-01T00:00:00", None, True, bytes(range(256)) * 24)
    assert copy_payload([row], [7]) == psycopg_payload([row], [7])
    nan = row._replace(importance=math.nan, source="")
    assert copy_payload([nan], [8]) == psycopg_payload([nan], [8])


def test_seqs_must_match_the_rows() -> None:
    row = RecordRow("r", "m", "/", "[]", "{}", 0.5, "t", 0, "t", None, False, b"")
    with pytest.raises(ValueError):
        copy_payload([row], [1, 2])


def test_a_nul_in_any_text_column_is_found_and_none_in_the_bytea_ones() -> None:
    row = RecordRow("r", "m\x00", "/\x00", "[]", "{}", 0.5, "t", 0, "t", "s\x00", False, b"\x00")
    assert not nul_in_text([row])  # content, scope and source are bytea: a NUL is fine there
    for field in ("id", "categories", "metadata", "created_at", "last_accessed"):
        assert nul_in_text([row, row._replace(**{field: "a\x00b"})]), field
