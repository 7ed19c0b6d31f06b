"""The search kernel twins: numpy and Rust pick the same rows for the same inputs."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crewai_rust.memory import _rerank, _vector_py


def _brute(matrix: np.ndarray, query: np.ndarray, rows: np.ndarray, k: int, metric: int) -> list[int]:
    block = matrix[rows].astype(np.float64)
    q = query.astype(np.float64)
    if metric == _rerank.METRIC_L2:
        score = -((block - q) ** 2).sum(1)
    else:
        # Elementwise product + row sum: equal rows score bit-equal wherever they sit
        # (``block @ q`` rounds a block's last rows differently).
        norms = np.linalg.norm(block, axis=1)
        score = np.where(norms > 0, (block * q).sum(1) / np.where(norms > 0, norms, 1), 0.0)
    order = np.lexsort((rows, -score))
    return rows[order][:k].tolist()


cases = st.tuples(
    st.integers(min_value=1, max_value=300),  # rows
    st.sampled_from([1, 3, 8, 31, 64, 100]),  # dim
    st.integers(min_value=1, max_value=40),  # k
    st.sampled_from([_rerank.METRIC_L2, _rerank.METRIC_COSINE]),
    st.floats(min_value=0.0, max_value=1.0),  # fraction selected (1.0 = no selection)
    st.booleans(),  # duplicate rows (ties)
    st.integers(min_value=0, max_value=2**31),
)


def _inputs(args: Any) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray | None, int, int]:
    n, dim, k, metric, fraction, dupes, seed = args
    rng = np.random.default_rng(seed)
    cap = n + 5  # capacity beyond n, as in the index
    matrix = rng.normal(size=(cap, dim)).astype(np.float32)
    if dupes:
        matrix[: n // 2] = matrix[0]
    sqnorms = np.einsum("ij,ij->i", matrix, matrix).astype(np.float32)
    query = rng.normal(size=dim).astype(np.float32)
    rows = None if fraction >= 1.0 else np.flatnonzero(rng.random(n) < fraction).astype(np.int64)
    return matrix, sqnorms, n, query, rows, k, metric


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=cases)
def test_twins_pick_the_same_rows(speedups: Any, args: Any) -> None:
    matrix, sqnorms, n, query, rows, k, metric = _inputs(args)
    want_rows, want_scores = _vector_py.search(matrix, sqnorms, n, query, rows, k, metric)
    for threads in (1, 2):
        got_rows, got_scores = speedups.vector_top_k(matrix, sqnorms, n, query, rows, k, metric, threads)
        # Rank scores are float32 sums in a different order: equal within rounding.
        assert np.allclose(got_scores, want_scores, rtol=1e-4, atol=1e-3)
        # Rows agree except where float32 rounding swaps near-equal neighbours.
        if len(set(np.round(want_scores, 3))) == len(want_scores):
            assert list(got_rows) == want_rows.tolist()
        assert len(got_rows) == len(want_rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=cases)
@example(args=(53, 100, 2, _rerank.METRIC_COSINE, 0.09375, True, 0))  # equal rows once scored 1 ulp apart
def test_kernel_plus_rerank_is_exact(use_rust: bool, args: Any) -> None:
    """Candidates re-ranked in float64 give the brute-force answer, ties by sequence, near ties included."""
    matrix, sqnorms, n, query, rows, k, metric = _inputs(args)
    if use_rust:
        from crewai_rust import _speedups

        def kernel(*a: Any) -> Any:
            got_rows, got_scores = _speedups.vector_top_k(*a)
            return np.asarray(got_rows, dtype=np.int64), np.asarray(got_scores, dtype=np.float32)
    else:
        kernel = _vector_py.search
    seqs = np.arange(len(matrix), dtype=np.int64)  # sequence = row here
    ranked, _ = _rerank.exact_top(kernel, matrix, sqnorms, seqs, n, query, rows, k, metric)
    selected = np.arange(n, dtype=np.int64) if rows is None else rows
    assert ranked[:k].tolist() == _brute(matrix, query, selected, k, metric)


@pytest.mark.parametrize("metric", [_rerank.METRIC_L2, _rerank.METRIC_COSINE])
@pytest.mark.parametrize("dim", [31, 100])
def test_rerank_scores_equal_rows_equally_wherever_they_sit(metric: int, dim: int) -> None:
    """Copies of one vector tie exactly, so sequence decides, at any position in the candidates."""
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(40, dim)).astype(np.float32)
    matrix[1::3] = matrix[1]  # copies at rows 1, 4, 7, ...
    query = rng.normal(size=dim).astype(np.float32).astype(np.float64)
    seqs = np.arange(len(matrix), dtype=np.int64)[::-1].copy()  # later rows were inserted first
    copies = np.arange(1, 40, 3)
    for count in range(1, 14):
        cand = np.concatenate([np.arange(0, 40, 3)[:count], copies])
        ranked, scores = _rerank.rerank(matrix, seqs, cand, query, metric)
        tied = scores[np.isin(ranked, copies)]
        assert len(set(tied.tolist())) == 1
        assert ranked[np.isin(ranked, copies)].tolist() == sorted(copies.tolist(), key=lambda r: seqs[r])


def test_rust_rejects_bad_buffers(speedups: Any) -> None:
    matrix = np.zeros((4, 3), dtype=np.float32)
    norms = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValueError, match="query has 2 values"):
        speedups.vector_top_k(matrix, norms, 4, np.zeros(2, dtype=np.float32), None, 1, 0)
    with pytest.raises(ValueError, match="outside"):
        speedups.vector_top_k(matrix, norms, 4, np.zeros(3, dtype=np.float32), np.array([7]), 1, 0)
    with pytest.raises(ValueError, match="C-contiguous"):
        speedups.vector_top_k(np.zeros((3, 4), dtype=np.float32).T, norms, 4, np.zeros(3, dtype=np.float32), None, 1, 0)
    with pytest.raises(BufferError):
        speedups.vector_top_k(matrix.astype(np.float64), norms, 4, np.zeros(3, dtype=np.float32), None, 1, 0)
    with pytest.raises(ValueError, match="metric"):
        speedups.vector_top_k(matrix, norms, 4, np.zeros(3, dtype=np.float32), None, 1, 5)


values = st.lists(
    st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-10**6, 10**6), st.booleans()),
    max_size=50,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vals=values)
def test_embedding_encoder_twins_agree(speedups: Any, vals: list[Any]) -> None:
    from crewai_rust.memory._records import encoder

    encode_rust = encoder(True)
    try:
        want: Any = encoder(False)(vals, "emb")
    except ValueError as exc:
        want = str(exc)
    try:
        got: Any = encode_rust(vals, "emb")
    except ValueError as exc:
        got = str(exc)
    assert got == want


@pytest.mark.parametrize("bad", ["abc", [1.0, "x"], [[1.0, 2.0]], [1.0, None]])
def test_embedding_encoders_reject_non_numbers_with_value_error(use_rust: bool, bad: Any) -> None:
    from crewai_rust.memory._records import encoder

    encode = encoder(use_rust)
    with pytest.raises(ValueError, match="^emb "):
        encode(bad, "emb")


@pytest.mark.parametrize("dim", [384, 1537])
@pytest.mark.parametrize("filtered", [False, True])
def test_every_thread_count_gives_the_one_thread_bits(speedups: Any, dim: int, filtered: bool) -> None:
    """The persistent scan workers split rows into chunks claimed in any order: same rows, same score bits."""
    threads = speedups.vector_threads()
    assert 1 <= threads <= 16
    rng = np.random.default_rng(dim)
    n = 3001  # several chunks per thread, four-stream blocks and a ragged tail
    matrix = rng.normal(size=(n, dim)).astype(np.float32)
    sqnorms = np.einsum("ij,ij->i", matrix, matrix).astype(np.float32)
    query = rng.normal(size=dim).astype(np.float32)
    rows = np.flatnonzero(rng.random(n) < 0.3).astype(np.int64)[::-1].copy() if filtered else None
    for metric in (_rerank.METRIC_L2, _rerank.METRIC_COSINE):
        want = speedups.vector_top_k(matrix, sqnorms, n, query, rows, 50, metric, 1)
        for t in {2, 3, threads}:
            got = speedups.vector_top_k(matrix, sqnorms, n, query, rows, 50, metric, t)
            assert got[0] == want[0]
            assert np.array_equal(np.asarray(got[1], dtype=np.float32).view(np.uint32),
                                  np.asarray(want[1], dtype=np.float32).view(np.uint32))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_scans_alone_and_gets_the_same_answer(speedups: Any) -> None:
    """The parent's scan workers are not copied by fork(): the child must not count on them."""
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(2000, 64)).astype(np.float32)
    sqnorms = np.einsum("ij,ij->i", matrix, matrix).astype(np.float32)
    query = rng.normal(size=64).astype(np.float32)
    want = speedups.vector_top_k(matrix, sqnorms, 2000, query, None, 20, 0, 2)  # starts the workers here
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        ok = False
        try:
            got = speedups.vector_top_k(matrix, sqnorms, 2000, query, None, 20, 0, 2)
            ok = speedups.vector_threads() == 1 and got == want
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        verdict = fh.read()
    os.waitpid(pid, 0)
    assert verdict == b"1"


@pytest.mark.parametrize("batched", [False, True])
def test_cosine_over_long_vectors_scans_once_when_the_top_is_clear(batched: bool) -> None:
    """A cosine rank score is divided by the row's length, so its rounding does not grow with it.

    The near-tie margin once scaled with the first candidate's squared length (right for L2),
    and unnormalized vectors under cosine then always looked tied: every search widened to all
    rows (1k x 1536: 9.5 ms instead of 0.26). Well-separated scores need one candidate round.
    """
    rng = np.random.default_rng(11)
    n, dim, k = 400, 64, 5
    matrix = (rng.normal(size=(n, dim)) * 30.0).astype(np.float32)  # |x|^2 ~ 57600
    query = rng.normal(size=dim).astype(np.float32)  # |q| ~ 8: a query is not normalized
    sqnorms = np.einsum("ij,ij->i", matrix, matrix).astype(np.float32)
    seqs = np.arange(n, dtype=np.int64)
    asked: list[int] = []

    def counting(matrix: Any, sqnorms: Any, n: int, query: Any, rows: Any, want: int, metric: int) -> Any:
        asked.append(want)
        return _vector_py.search(matrix, sqnorms, n, query, rows, want, metric)

    def counting_many(matrix: Any, sqnorms: Any, n: int, queries: Any, rows: Any, want: int, metric: int) -> Any:
        asked.append(want)
        return _vector_py.search_many(matrix, sqnorms, n, queries, rows, want, metric)

    if batched:
        [(ranked, _)] = _rerank.exact_top_many(
            counting_many, counting, matrix, sqnorms, seqs, n, query[None, :], None, k, _rerank.METRIC_COSINE
        )
    else:
        ranked, _ = _rerank.exact_top(counting, matrix, sqnorms, seqs, n, query, None, k, _rerank.METRIC_COSINE)
    assert ranked.tolist() == _brute(matrix, query, np.arange(n), k, _rerank.METRIC_COSINE)
    assert asked == [k + 16], asked  # one round of 2k+16 candidates (k < 16: k + 16)


rerank_cases = st.tuples(
    st.integers(min_value=1, max_value=60),  # stored rows
    st.sampled_from([1, 2, 7, 8, 9, 63, 127, 128, 129, 255, 384, 1000, 1536]),  # every branch of the pairwise sum
    st.sampled_from([_rerank.METRIC_L2, _rerank.METRIC_COSINE]),
    st.sampled_from(["normal", "huge", "denormal", "mixed", "zeros"]),
    st.booleans(),  # copies of one row (exact ties: sequence decides)
    st.integers(min_value=0, max_value=2**31),
)


def _rerank_inputs(args: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    n, dim, metric, scale, copies, seed = args
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n + 3, dim))
    query = rng.normal(size=dim)
    if scale == "huge":
        matrix, query = matrix * 1e18, query * 1e18
    elif scale == "denormal":
        matrix, query = matrix * 1e-39, query * 1e-39
    elif scale == "mixed":
        matrix *= 10.0 ** rng.integers(-30, 30, size=matrix.shape)
    elif scale == "zeros":
        matrix[rng.random(matrix.shape) < 0.7] = 0.0
    matrix = matrix.astype(np.float32)
    if copies:
        matrix[1::2] = matrix[1]
        matrix[2::4] = np.nextafter(matrix[1], np.float32(np.inf))  # one ulp away: a near tie
    seqs = rng.permutation(len(matrix)).astype(np.int64)
    rows = rng.permutation(n)[: int(rng.integers(1, n + 1))].astype(np.int64)
    return matrix, seqs, rows, query.astype(np.float32).astype(np.float64), metric


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=rerank_cases)
def test_rerank_twins_give_the_same_bits(speedups: Any, args: Any) -> None:
    """The compiled re-rank sums in numpy's pairwise order: the same rows, order and float64 scores."""
    matrix, seqs, rows, query, metric = _rerank_inputs(args)
    with np.errstate(all="ignore"):
        want_rows, want_scores = _rerank.rerank(matrix, seqs, rows, query, metric)
    got_rows, got_scores = speedups.vector_rerank(matrix, seqs, rows, query, metric)
    assert got_rows == want_rows.tolist()
    assert np.array(got_scores).tobytes() == want_scores.tobytes()


def test_rust_rerank_rejects_bad_buffers(speedups: Any) -> None:
    matrix = np.zeros((4, 3), dtype=np.float32)
    seqs = np.arange(4, dtype=np.int64)
    query = np.zeros(3)
    with pytest.raises(ValueError, match="outside"):
        speedups.vector_rerank(matrix, seqs, np.array([4]), query, 0)
    with pytest.raises(ValueError, match="outside"):
        speedups.vector_rerank(matrix, seqs[:2], np.array([3]), query, 0)  # no sequence for row 3
    with pytest.raises(ValueError, match="query has 2"):
        speedups.vector_rerank(matrix, seqs, np.array([0]), np.zeros(2), 0)
    with pytest.raises(ValueError, match="metric"):
        speedups.vector_rerank(matrix, seqs, np.array([0]), query, 9)
    with pytest.raises(BufferError):
        speedups.vector_rerank(matrix, seqs, np.array([0]), query.astype(np.float32), 0)
    with pytest.raises(ValueError, match="two-dimensional"):
        speedups.vector_rerank(matrix.ravel(), seqs, np.array([0]), query, 0)
