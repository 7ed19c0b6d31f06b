"""The bulk save path: one encoding call per batch (twins byte-identical), block writes into the
index, and a bad record in a batch of 100 (NaN, infinity, beyond float32, wrong size, empty content)
gives a clear error with nothing of the batch written, on SQLite and on PostgreSQL.

Stock CrewAI (LanceDB) behaves the same way: the whole batch is refused (a ValueError for NaN, its
``EmbeddingDimensionMismatchError`` for a wrong size) and nothing of it is stored.
"""

from __future__ import annotations

import os
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai.memory.storage.backend import EmbeddingDimensionMismatchError  # noqa: E402
from crewai.memory.types import MemoryRecord  # noqa: E402

from crewai_rust.memory import RustMemoryStorage  # noqa: E402
from crewai_rust.memory._index import VectorIndex  # noqa: E402
from crewai_rust.memory._records import (  # noqa: E402
    batch_encoder,
    encoder,
    to_row,
    to_rows,
)

DIM = 16

number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-3.5e38, max_value=3.5e38),  # around the float32 limit
    st.sampled_from([3.4028234663852886e38, 3.4028235677973366e38, -3.4028235e38, 5e-324, -0.0]),
    st.integers(-10**6, 10**6),
    st.booleans(),
)
plain = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


@st.composite
def batches(draw: Any) -> list[list[Any]]:
    """Mostly clean vectors of one size, some with adversarial values, sometimes of another size."""
    dim = draw(st.integers(0, 12))
    out = []
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            out.append(draw(st.lists(plain, min_size=dim, max_size=dim)))
        else:
            out.append(draw(st.lists(number, min_size=dim, max_size=dim + draw(st.integers(0, 1)))))
    return out


def _per_record(vectors: list[list[Any]]) -> tuple[list[bytes], int, str]:
    """What the record-by-record encoder says: blobs before the first refusal, its index and reason."""
    blobs = []
    for i, values in enumerate(vectors):
        try:
            blobs.append(encoder(False)(values, "x"))
        except ValueError as exc:
            return blobs, i, str(exc)[2:]
    return blobs, -1, ""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vectors=batches())
def test_batch_encoder_twins_agree_with_each_other_and_with_one_at_a_time(speedups: Any,
                                                                         vectors: list[list[Any]]) -> None:
    want = _per_record(vectors)
    assert batch_encoder(False)(vectors) == want
    assert batch_encoder(True)(vectors) == want
    if want[1] < 0:  # the single-vector Rust encoder writes the same bytes
        single = encoder(True)
        assert want[0] == [single(v, "x") for v in vectors]


def test_batch_encoder_takes_tuples_arrays_and_reports_non_numbers(speedups: Any) -> None:
    vectors: list[Any] = [(1.0, 2.0), np.array([3.0, 4.0]), [5, True]]
    expected = [np.asarray(v, dtype=np.float32).tobytes() for v in vectors]
    for encode in (batch_encoder(False), batch_encoder(True)):
        assert encode(vectors) == (expected, -1, "")
        blobs, bad, reason = encode([[1.0, 2.0], "ab", [float("nan"), 1.0]])
        assert (blobs, bad) == ([np.float32([1.0, 2.0]).tobytes()], 1)
        assert reason.startswith("must be a list of numbers")


#: Floats in a batch past which the compiled twin reads it on two threads (``PARALLEL_MIN_FLOATS``).
PARALLEL_FLOATS = 64 * 1024


_KINDS = ["nan", "inf", "huge", "int", "bool", "np-float", "tuple", "array", "text", "short"]


@st.composite
def large_batch_plans(draw: Any) -> tuple[int, int, int, list[tuple[int, int, str]]]:
    """(dim, count, seed, edits) of a batch past the two-thread size (built by :func:`_large_batch`,
    so a failing example prints small): clean but for a few adversarial embeddings at drawn places."""
    dim = draw(st.sampled_from([1024, 3072]))
    # past the size even when every edit takes a whole list away (only exact lists are counted)
    count = PARALLEL_FLOATS // dim + 4 + draw(st.integers(0, 12))
    # one edit per embedding: a second edit of one a first turned into text would index the text
    edits = draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, dim - 1), st.sampled_from(_KINDS)),
                          max_size=3, unique_by=lambda edit: edit[0]))
    return dim, count, draw(st.integers(0, 2**32 - 1)), edits


def _large_batch(dim: int, count: int, seed: int, edits: list[tuple[int, int, str]]) -> list[Any]:
    """A NaN, infinity or float32-overflowing value, an int, a bool or a numpy float (not an exact
    float) inside a list; a tuple, an array, a string, or another size in place of a list."""
    vectors: list[Any] = [row.tolist() for row in np.random.default_rng(seed).normal(size=(count, dim))]
    for at, pos, kind in edits:
        vec = vectors[at] if isinstance(vectors[at], list) else list(vectors[at])
        if kind in ("nan", "inf", "huge", "int", "bool", "np-float"):
            vec[pos] = {"nan": float("nan"), "inf": float("-inf"), "huge": 3.5e38, "int": 7, "bool": True,
                        "np-float": np.float64(0.25)}[kind]
            vectors[at] = vec
        elif kind == "tuple":
            vectors[at] = tuple(vec)
        elif kind == "array":
            vectors[at] = np.asarray(vec)
        elif kind == "text":
            vectors[at] = "not numbers"
        else:
            vectors[at] = vec[: dim - 1]
    return vectors


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(plan=large_batch_plans())
def test_a_large_batch_read_on_two_threads_gives_the_loops_bytes_and_first_error(
        speedups: Any, plan: tuple[int, int, int, list[tuple[int, int, str]]]) -> None:
    """The compiled twin reads a batch this large on two threads (while holding the GIL): the same
    bytes and the same first refusal as the numpy twin and the one-at-a-time encoder."""
    vectors = _large_batch(*plan)
    before = speedups.embedding_parallel_reads()
    want = _per_record(vectors)
    for got in (batch_encoder(True)(vectors), batch_encoder(False)(vectors)):
        assert got[:2] == want[:2]
        if want[2].startswith("must be a list of numbers"):  # the tail is each twin's own conversion error
            assert got[2].startswith("must be a list of numbers")
        else:
            assert got[2] == want[2]
    if _usable_cpus() > 1:  # on one CPU the batch is read on the calling thread alone
        assert speedups.embedding_parallel_reads() == before + 1


def test_a_small_batch_stays_on_one_thread(speedups: Any) -> None:
    before = speedups.embedding_parallel_reads()
    vectors = [[0.5] * 1024 for _ in range(PARALLEL_FLOATS // 1024 - 1)]
    assert batch_encoder(True)(vectors) == _per_record(vectors)
    assert speedups.embedding_parallel_reads() == before


def _record(i: int, values: list[Any], **kw: Any) -> Any:
    return MemoryRecord.model_construct(
        id=f"r{i}", content=kw.pop("content", f"memory {i}"), scope="/", categories=kw.pop("categories", []),
        metadata=kw.pop("metadata", {}), importance=0.5, created_at=datetime(2025, 1, 1, 12, 0, i),
        last_accessed=datetime(2025, 1, 2), embedding=values, source=None, private=False,
    )


@st.composite
def record_batches(draw: Any) -> list[Any]:
    dim = 4
    out = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["ok", "ok", "ok", "none", "bad-values", "short", "empty", "meta"]))
        values: Any = draw(st.lists(plain, min_size=dim, max_size=dim))
        kw: dict[str, Any] = {}
        if kind == "none":
            values = None
        elif kind == "bad-values":
            values = draw(st.lists(number, min_size=dim, max_size=dim))
        elif kind == "short":
            values = values[:2]
        elif kind == "empty":
            kw["content"] = "  "
        elif kind == "meta":
            kw["metadata"] = ["not", "a", "dict"]
        out.append(_record(i, values, **kw))
    return out


def _outcome(fn: Any) -> Any:
    try:
        return [(r.id, r.embedding, r.categories, r.metadata, r.created_us) for r in fn()]
    except (ValueError, EmbeddingDimensionMismatchError) as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=record_batches())
def test_to_rows_is_the_record_by_record_loop_with_the_same_first_error(speedups: Any, records: list[Any]) -> None:
    loop = _outcome(lambda: [to_row(r, 4, encoder(False)) for r in records])
    assert _outcome(lambda: to_rows(records, 4, batch_encoder(False))) == loop
    assert _outcome(lambda: to_rows(records, 4, batch_encoder(True))) == loop


def _index_state(index: VectorIndex) -> Any:
    n = index.n
    cols = [index.matrix[:n], index.sqnorms[:n], index.seqs[:n], index.scope_codes[:n], index.category_codes[:n],
            index.metadata_codes[:n]]
    if index.shadow_enabled:
        cols += [index.halves[:n], index.inv_scale[:n], index.shadow_norm[:n], index.shadow_err[:n]]
    return list(index.ids), dict(index.row_of), [c.copy() for c in cols]


@pytest.mark.parametrize("shadow", [False, True])
def test_index_block_upsert_matches_the_row_by_row_upsert(shadow: bool) -> None:
    rng = np.random.default_rng(4)

    def rows(ids: list[int], seq0: int) -> list[Any]:
        return [(seq0 + k, f"id{i}", f"/s{i % 3}", '["a"]' if i % 2 else "[]", "{}",
                 rng.normal(size=DIM).astype(np.float32).tobytes()) for k, i in enumerate(ids)]

    batches = [rows(list(range(50)), 1), rows([3, 60, 7, 61, 49], 100), rows(list(range(40, 140)), 200)]
    one, many = VectorIndex(shadow=shadow), VectorIndex(shadow=shadow)
    for batch in batches:
        for row in batch:
            one.upsert(*row)
        many.upsert_many(batch)
        one.remove("id5")
        many.remove("id5")
    got, want = _index_state(many), _index_state(one)
    assert got[:2] == want[:2]
    for a, b in zip(got[2], want[2]):
        np.testing.assert_allclose(a, b, rtol=1e-6)  # the norm may be summed in another order
    for a, b in zip(got[2][:1] + got[2][2:], want[2][:1] + want[2][2:]):
        assert np.array_equal(a, b)


def _hundred(dim: int = DIM, seed: int = 0) -> list[MemoryRecord]:
    rng = np.random.default_rng(seed)
    return [MemoryRecord(id=f"b{seed}-{i}", content=f"batch memory {i}", embedding=rng.normal(size=dim).tolist())
            for i in range(100)]


def _spoil(kind: str, records: list[MemoryRecord]) -> type[Exception]:
    victim = records[57]
    if kind == "nan":
        victim.embedding[9] = float("nan")
    elif kind == "inf":
        victim.embedding[0] = float("-inf")
    elif kind == "beyond float32":
        victim.embedding[3] = 1e39
    elif kind == "wrong dimension":
        victim.embedding = victim.embedding[:-1]
        return EmbeddingDimensionMismatchError
    elif kind == "empty content":
        object.__setattr__(victim, "content", "   ")
    return ValueError


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "store")
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize("kind", ["nan", "inf", "beyond float32", "wrong dimension", "empty content"])
def test_one_bad_record_in_a_hundred_refuses_the_batch_and_writes_nothing(target: str, use_rust: bool,
                                                                          kind: str) -> None:
    store = RustMemoryStorage(target, use_rust=use_rust)
    try:
        store.save(_hundred(seed=1))
        head = store._store.head()
        batch = _hundred(seed=2)
        error = _spoil(kind, batch)
        with pytest.raises(error) as info:
            store.save(batch)
        text = str(info.value)
        assert ("b2-57" in text) if error is ValueError else ("16" in text and "15" in text)
        assert store.count() == 100
        assert store._store.head() == head  # not one change logged
        probe = batch[3].embedding
        assert all(not r.id.startswith("b2-") for r, _ in store.search(probe, limit=200))
        store.save([r for r in batch if r is not batch[57]])  # the rest is fine on its own
        assert store.count() == 199
    finally:
        store.close()
    again = RustMemoryStorage(target, use_rust=use_rust)  # what another process finds
    try:
        assert again.count() == 199 and again.get_record("b2-57") is None
    finally:
        again.close()


def test_the_store_encodes_a_batch_with_one_call_of_its_twin(tmp_path: Path, use_rust: bool) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    try:
        if use_rust:
            from crewai_rust import _speedups

            assert store._encode_many is _speedups.embeddings_f32_bytes_many
        else:
            assert store._encode_many is batch_encoder(False)
        calls: list[int] = []
        real = store._encode_many

        def spy(embeddings: list[Any]) -> Any:
            calls.append(len(embeddings))
            return real(embeddings)

        store._encode_many = spy  # type: ignore[method-assign]
        store._encode = None  # type: ignore[assignment]  # the one-at-a-time encoder is not used
        store.save(_hundred(seed=3))
        assert calls == [100]
        assert store.count() == 100
    finally:
        store.close()
