"""The Rust row builder (``memory_rows``) against its Python twin, the per-record loop of ``to_rows``.

For every record the builder returns exactly the twin's ``RecordRow`` or leaves the record to
the twin (``None``); the whole ``to_rows`` (rows, or the first error in record order) is the
same with and without it, on adversarial records. And it does build ordinary CrewAI records
itself, so the fast path is the one a crew's save takes.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai.memory.storage.backend import EmbeddingDimensionMismatchError  # noqa: E402
from crewai.memory.types import MemoryRecord  # noqa: E402

from crewai_rust.memory import RustMemoryStorage  # noqa: E402
from crewai_rust.memory._records import (  # noqa: E402
    _check_fields,
    _row,
    batch_encoder,
    rust_row_builder,
    to_rows,
)

DIM = 3

texts = st.one_of(st.text(max_size=12), st.sampled_from(["", "   ", "\t\x1c\x1f", "記憶", "\ud800", "a\x00b", "\"\\/\x7f\u2028"]))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([2**63 - 1, -(2**63), 2**63, 2**64, -(2**63) - 1]),
    texts, st.floats(allow_nan=True), st.just(datetime(2025, 1, 1)),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
                            st.dictionaries(texts, inner, max_size=3),
                            st.dictionaries(st.integers(0, 3), inner, max_size=2)),
    max_leaves=8,
)
moments = st.one_of(
    st.datetimes(),
    st.datetimes(timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30))])),
    st.just("2025-01-01"),
)


@st.composite
def records(draw: Any) -> list[Any]:
    out = []
    for i in range(draw(st.integers(1, 5))):
        embedding = draw(st.one_of(
            st.lists(st.floats(-1e3, 1e3, width=32), min_size=DIM, max_size=DIM),
            st.lists(st.floats(width=32), min_size=DIM, max_size=DIM),
            st.none(), st.just([]), st.lists(st.floats(-1, 1), min_size=1, max_size=5),
        ))
        out.append(MemoryRecord.model_construct(
            id=draw(st.one_of(st.just(f"id{i}"), texts, st.integers())),
            content=draw(st.one_of(st.just(f"memory {i}"), texts, st.none())),
            scope=draw(st.one_of(st.just("/crew/a"), texts)),
            categories=draw(st.one_of(st.lists(texts, max_size=3), st.lists(texts, max_size=2).map(tuple),
                                      st.lists(st.integers(), max_size=2), texts)),
            metadata=draw(st.one_of(st.dictionaries(texts, json_like, max_size=4), json_like)),
            importance=draw(st.one_of(st.floats(0, 1), st.integers(0, 1), st.floats(allow_nan=True))),
            created_at=draw(moments),
            last_accessed=draw(moments),
            source=draw(st.one_of(st.none(), texts, st.integers())),
            private=draw(st.one_of(st.booleans(), st.integers(0, 1))),
            embedding=embedding,
        ))
    return out


def _outcome(fn: Any) -> Any:
    try:
        return [tuple(r) for r in fn()]
    except Exception as exc:  # the twin's own error, whatever it is: both must raise it
        return type(exc).__name__, str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=records())
def test_the_builder_gives_the_twins_row_or_leaves_the_record_to_it(speedups: Any, batch: list[Any]) -> None:
    build = rust_row_builder(speedups)
    for encode in (batch_encoder(False), batch_encoder(True)):
        assert _outcome(lambda: to_rows(batch, DIM, encode, build)) == _outcome(lambda: to_rows(batch, DIM, encode))
    blobs = [bytes(range(DIM * 4)) if r.embedding else None for r in batch]
    for record, blob, row in zip(batch, blobs, build(batch, blobs, DIM)):
        if row is not None:
            _check_fields(record)  # it passes: the builder never accepts what the twin refuses
            assert tuple(row) == tuple(_row(record, blob if blob is not None else bytes(DIM * 4)))
            assert type(row).__name__ == "RecordRow"


def _crew_records(n: int, dim: int = DIM) -> list[MemoryRecord]:
    """What CrewAI's EncodingFlow saves: validated records, LLM-extracted metadata, utcnow datetimes."""
    return [MemoryRecord(content=f"The user prefers tea ({i})", scope="/crew/research/analyst",
                         categories=["preference", "drink"], importance=0.7, source="task-3",
                         metadata={"entities": ["user", "tea"], "dates": [], "topics": ["drinks"], "n": i,
                                   "ok": True, "none": None, "nested": {"a": ["b"]}},
                         embedding=[0.5 + i, -0.25, 1.0][:dim])
            for i in range(n)]


def test_ordinary_crewai_records_are_built_in_rust(speedups: Any) -> None:
    batch = _crew_records(20) + [MemoryRecord(content="no embedding")]
    blobs = [bytes(DIM * 4)] * 20 + [None]
    built = rust_row_builder(speedups)(batch, blobs, DIM)
    assert all(row is not None for row in built)
    assert [tuple(r) for r in built] == [tuple(_row(r, b or bytes(DIM * 4))) for r, b in zip(batch, blobs)]


def test_the_store_builds_its_rows_with_its_twin(tmp_path: Path, use_rust: bool) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    try:
        assert (store._build_rows is not None) is use_rust
        if use_rust:
            calls: list[int] = []
            real = store._build_rows

            def spy(records: list[Any], blobs: list[Any], dim: int) -> list[Any]:
                calls.append(len(records))
                return real(records, blobs, dim)

            store._build_rows = spy
            store.save(_crew_records(50))
            assert calls == [50]
        else:
            store.save(_crew_records(50))
        assert store.count() == 50
        got = store.get_record(store.list_records(limit=1)[0].id)
        assert got.metadata["nested"] == {"a": ["b"]} and got.categories == ["preference", "drink"]
    finally:
        store.close()


def test_a_bad_record_after_good_ones_still_refuses_the_batch(speedups: Any, tmp_path: Path) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=True)
    try:
        batch = _crew_records(10)
        batch[6].embedding = [1.0, 2.0]
        with pytest.raises(EmbeddingDimensionMismatchError):
            store.save(batch)
        object.__setattr__(batch[6], "embedding", [1.0, 2.0, 3.0])
        object.__setattr__(batch[4], "content", "  \t")
        with pytest.raises(ValueError, match="empty content"):
            store.save(batch)
        assert store.count() == 0 and store._store.head() == 0
    finally:
        store.close()
