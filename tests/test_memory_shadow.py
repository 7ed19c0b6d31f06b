"""The float16 shadow scan and batched search: provably the float32 answer, in both twins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import crewai_rust
from crewai_rust.memory import _rerank, _vector_py

L2, COS = _rerank.METRIC_L2, _rerank.METRIC_COSINE

adversarial = st.tuples(
    st.integers(min_value=1, max_value=250),  # rows
    st.sampled_from([1, 2, 7, 16, 17, 64, 65, 130]),  # dim: every SIMD tail length class
    st.integers(min_value=1, max_value=40),  # k
    st.sampled_from([L2, COS]),
    st.floats(min_value=0.0, max_value=1.0),  # fraction selected (1.0 = no filter)
    st.sampled_from(["normal", "ties", "ulps", "denormal", "huge", "mixed", "zeros"]),
    st.sampled_from([1.0, 1e-30, 1e-42, 1e15, 1e30, 0.0]),  # query scale
    st.integers(min_value=0, max_value=2**31),
)


def _matrix(n: int, dim: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    base = rng.normal(size=(n, dim))
    if kind == "ties":
        base[: n // 2] = base[0]
    elif kind == "ulps":  # copies of one row nudged by a few ulps: near ties everywhere
        row = base[0].astype(np.float32)
        m = np.tile(row, (n, 1))
        steps = rng.integers(-3, 4, size=(n, dim)).astype(np.int32)
        return (m.view(np.int32) + steps * (m != 0)).view(np.float32)
    elif kind == "denormal":
        base *= 1e-41
    elif kind == "huge":
        base *= 1e37  # squared norms overflow float32
    elif kind == "mixed":
        scales = 10.0 ** rng.integers(-44, 38, size=(n, 1))
        base *= scales
    elif kind == "zeros":
        base[rng.random(n) < 0.5] = 0.0
    return np.clip(base, -3e38, 3e38).astype(np.float32)


def _inputs(args: Any) -> tuple[Any, ...]:
    n, dim, k, metric, fraction, kind, qscale, seed = args
    rng = np.random.default_rng(seed)
    cap = n + 3
    matrix = np.zeros((cap, dim), dtype=np.float32)
    matrix[:n] = _matrix(n, dim, kind, rng)
    with np.errstate(over="ignore"):
        sqnorms = np.einsum("ij,ij->i", matrix, matrix).astype(np.float32)
    query = (rng.normal(size=dim) * qscale).astype(np.float32)
    if kind in ("ties", "ulps") and rng.random() < 0.5:
        query = matrix[0].copy()
    rows = None if fraction >= 1.0 else np.flatnonzero(rng.random(n) < fraction).astype(np.int64)
    shadow = _vector_py.shadow_rows(matrix)
    return matrix, sqnorms, n, query, rows, k, metric, shadow


def _rust_shadow(speedups: Any, matrix, sqnorms, n, query, rows, k, metric, shadow, threads=1):  # type: ignore[no-untyped-def]
    halves, inv_scale, norm, err = shadow
    return speedups.vector_top_k_shadow(
        matrix, sqnorms, n, query, rows, k, metric, halves.view(np.uint16), inv_scale, norm, err, threads
    )


def _bits(rows: Any, scores: Any) -> list[tuple[int, int]]:
    return list(zip([int(r) for r in rows], np.asarray(scores, dtype=np.float32).view(np.uint32).tolist()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=adversarial)
@example(args=(60, 17, 5, L2, 1.0, "ulps", 1.0, 3))
@example(args=(40, 65, 3, COS, 0.5, "mixed", 1e-42, 4))
@example(args=(30, 7, 30, L2, 1.0, "huge", 1e30, 5))
def test_rust_shadow_scan_is_bit_identical_to_the_float32_scan(speedups: Any, args: Any) -> None:
    """Rows, order and float32 scores: the same bits, near ties, denormals and huge values included."""
    matrix, sqnorms, n, query, rows, k, metric, shadow = _inputs(args)
    want = _bits(*speedups.vector_top_k(matrix, sqnorms, n, query, rows, k, metric, 1))
    for threads in (1, 2):
        got = _bits(*_rust_shadow(speedups, matrix, sqnorms, n, query, rows, k, metric, shadow, threads))
        assert got == want


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=adversarial)
@example(args=(60, 17, 5, L2, 1.0, "ulps", 1.0, 3))
@example(args=(50, 16, 4, COS, 1.0, "denormal", 1e15, 9))
def test_numpy_shadow_twin_gives_the_float32_answer(args: Any) -> None:
    """The numpy float16 twin, then the float64 re-rank: exactly the float32 scan's final answer."""
    matrix, sqnorms, n, query, rows, k, metric, shadow = _inputs(args)
    seqs = np.arange(len(matrix), dtype=np.int64)

    def f16(*a: Any) -> Any:
        return _vector_py.search_shadow(*a, shadow)

    want_rows, want_scores = _rerank.exact_top(_vector_py.search, matrix, sqnorms, seqs, n, query, rows, k, metric)
    got_rows, got_scores = _rerank.exact_top(f16, matrix, sqnorms, seqs, n, query, rows, k, metric)
    assert got_rows.tolist() == want_rows.tolist()
    assert got_scores.tolist() == want_scores.tolist()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=adversarial)
def test_shadow_twins_agree_after_the_rerank(speedups: Any, args: Any) -> None:
    matrix, sqnorms, n, query, rows, k, metric, shadow = _inputs(args)
    seqs = np.arange(len(matrix), dtype=np.int64)

    def rust(*a: Any) -> Any:
        r, s = _rust_shadow(speedups, *a, shadow)
        return np.asarray(r, dtype=np.int64), np.asarray(s, dtype=np.float32)

    def numpy(*a: Any) -> Any:
        return _vector_py.search_shadow(*a, shadow)

    got = _rerank.exact_top(rust, matrix, sqnorms, seqs, n, query, rows, k, metric)
    want = _rerank.exact_top(numpy, matrix, sqnorms, seqs, n, query, rows, k, metric)
    assert got[0].tolist() == want[0].tolist()
    assert got[1].tolist() == want[1].tolist()


def test_shadow_rows_bound_terms_hold() -> None:
    rng = np.random.default_rng(1)
    block = np.concatenate([
        rng.normal(size=(5, 33)) * s for s in (1.0, 1e-41, 1e-20, 1e30, 3e37)
    ]).astype(np.float32)
    block[3] = 0.0
    halves, inv_scale, norm, err = _vector_py.shadow_rows(block)
    assert halves.dtype == np.float16 and np.isfinite(halves.astype(np.float64)).all()
    wide = block.astype(np.float64)
    back = halves.astype(np.float64) * inv_scale.astype(np.float64)[:, None]
    assert (np.sqrt(((wide - back) ** 2).sum(1)) <= err).all()
    assert (np.sqrt((wide**2).sum(1)) <= norm).all()
    # the scale is a power of two, so a row keeps float16's relative precision at any magnitude
    assert (np.frexp(inv_scale)[0] == 0.5).all()
    normal = err[norm > 1e-30] / norm[norm > 1e-30]
    assert normal.max() < 2.0**-10


def test_rust_shadow_rejects_bad_inputs(speedups: Any) -> None:
    matrix = np.zeros((4, 3), dtype=np.float32)
    norms = np.zeros(4, dtype=np.float32)
    shadow = _vector_py.shadow_rows(matrix)
    with pytest.raises(ValueError, match="query has 2 values"):
        _rust_shadow(speedups, matrix, norms, 4, np.zeros(2, dtype=np.float32), None, 1, 0, shadow)
    short = (shadow[0][:2], *shadow[1:])
    with pytest.raises(ValueError, match="shadow"):
        _rust_shadow(speedups, matrix, norms, 4, np.zeros(3, dtype=np.float32), None, 1, 0, short)
    with pytest.raises(ValueError, match="outside"):
        _rust_shadow(speedups, matrix, norms, 4, np.zeros(3, dtype=np.float32), np.array([9]), 1, 0, shadow)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=adversarial, batch=st.integers(min_value=1, max_value=6))
def test_batched_kernels_match_single_queries(speedups: Any, args: Any, batch: int) -> None:
    matrix, sqnorms, n, query, rows, k, metric, _ = _inputs(args)
    rng = np.random.default_rng(args[-1] + 1)
    queries = np.stack([query] + [rng.normal(size=len(query)).astype(np.float32) for _ in range(batch - 1)])
    many = speedups.vector_top_k_many(matrix, sqnorms, n, queries, rows, k, metric, 2)
    for q, (got_rows, got_scores) in zip(queries, many):
        assert _bits(got_rows, got_scores) == _bits(*speedups.vector_top_k(matrix, sqnorms, n, q, rows, k, metric, 1))
    seqs = np.arange(len(matrix), dtype=np.int64)
    answers = _rerank.exact_top_many(
        _vector_py.search_many, _vector_py.search, matrix, sqnorms, seqs, n, queries, rows, k, metric
    )
    for q, (got_rows, got_scores) in zip(queries, answers):
        want_rows, want_scores = _rerank.exact_top(_vector_py.search, matrix, sqnorms, seqs, n, q, rows, k, metric)
        assert got_rows.tolist() == want_rows.tolist() and got_scores.tolist() == want_scores.tolist()


def test_batched_kernel_rejects_bad_shapes(speedups: Any) -> None:
    matrix = np.zeros((4, 3), dtype=np.float32)
    norms = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValueError, match="queries have 2 values"):
        speedups.vector_top_k_many(matrix, norms, 4, np.zeros((2, 2), dtype=np.float32), None, 1, 0)
    with pytest.raises(ValueError, match="two-dimensional"):
        speedups.vector_top_k_many(matrix, norms, 4, np.zeros(3, dtype=np.float32), None, 1, 0)


# -- through the storage ------------------------------------------------------------------
def _records(n: int, dim: int, seed: int) -> list[Any]:
    from crewai.memory.types import MemoryRecord

    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs[5:9] = vecs[4]  # exact ties: sequence decides
    return [
        MemoryRecord(content=f"r{i}", scope=f"/s/{i % 3}", categories=[f"c{i % 4}"], embedding=vecs[i].tolist())
        for i in range(n)
    ]


@pytest.mark.parametrize("shadow", [True, False])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_storage_search_many_equals_search_and_the_shadow_path_runs(
    tmp_path: Path, use_rust: bool, shadow: bool, metric: str
) -> None:
    from crewai_rust.memory import RustMemoryStorage

    store = RustMemoryStorage(tmp_path, metric=metric, use_rust=use_rust, shadow=shadow)
    try:
        records = _records(300, 24, 2)
        store.save(records)
        queries = [records[4].embedding, records[100].embedding, list(np.linspace(-1, 1, 24))]
        for scope in (None, "/s/1"):
            for cats in (None, ["c2"]):
                many = store.search_many(queries, scope_prefix=scope, categories=cats, limit=7)
                one = [store.search(q, scope_prefix=scope, categories=cats, limit=7) for q in queries]
                assert [[(r.id, s) for r, s in hits] for hits in many] == [[(r.id, s) for r, s in h] for h in one]
                assert all(len(h) == 7 for h in many)
        # search ran through the float16 shadow kernel of this twin when the shadow is on
        assert (store._index.shadow() is not None) is shadow
        if shadow:
            assert store._kernels.last == ("rust-f16" if use_rust else "numpy-f16")
        with pytest.raises(Exception, match="dimension"):
            store.search_many([[0.0] * 5])
        with pytest.raises(ValueError, match="NaN"):
            store.search_many([[float("nan")] * 24])
        assert store.search_many([]) == []
    finally:
        store.close()


def test_shadow_follows_writes_and_deletes(tmp_path: Path, use_rust: bool) -> None:
    from crewai_rust.memory import RustMemoryStorage

    store = RustMemoryStorage(tmp_path, use_rust=use_rust, shadow=True)
    try:
        records = _records(120, 16, 3)
        store.save(records[:60])
        assert store._index.shadow() is None  # built on the first search, then kept in step
        store.search(records[0].embedding, limit=3)
        assert store._index.shadow() is not None
        store.save(records[60:])  # grows the index
        store.delete(record_ids=[r.id for r in records[:50:3]])
        records[70].embedding = [3.0] * 16
        store.update(records[70])
        index = store._index
        want = _vector_py.shadow_rows(index.matrix[: index.n])
        got = [a[: index.n] for a in index.shadow()]
        assert np.array_equal(want[0].view(np.uint16), got[0].view(np.uint16))  # bit-equal float16 rows
        assert np.array_equal(want[1], got[1])
        for w, g in zip(want[2:], got[2:]):
            assert np.allclose(w, g, rtol=1e-6, atol=0)
        hits = store.search([3.0] * 16, limit=1)
        assert hits[0][0].id == records[70].id
    finally:
        store.close()


def test_crew_recall_runs_the_shadow_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_rust: bool) -> None:
    """A real offline crew with memory: its recalls go through the float16 shadow scan."""
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM, crew_embedder_config

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    monkeypatch.setenv("CREWAI_RUST_MEMORY_SHADOW", "on")
    crewai_rust.patch("memory")
    try:
        def crew() -> Any:
            llm = ScriptedLLM()
            agent = Agent(role="Researcher", goal="learn about owls", backstory="a birder", llm=llm)
            task = Task(description="Describe the hunting of the barn owl", expected_output="a sentence", agent=agent)
            return Crew(agents=[agent], tasks=[task], memory=True, embedder=crew_embedder_config(64))

        first = crew()
        first.kickoff()
        first._memory.drain_writes()
        store = first._memory._storage
        assert store.count() > 0
        second = crew()
        second.kickoff()
        assert store._index.shadow() is not None
        assert store._kernels.last == ("rust-f16" if use_rust else "numpy-f16")
    finally:
        crewai_rust.unpatch()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=adversarial)
def test_shadow_builder_twins_agree(speedups: Any, args: Any) -> None:
    """The Rust builder makes the same float16 rows and scales; its norm/err bounds hold too."""
    from crewai_rust.memory._kernels import KernelSet

    matrix = _inputs(args)[0]
    want = _vector_py.shadow_rows(matrix)
    got = KernelSet(speedups, "on").shadow_rows(matrix)
    assert np.array_equal(got[0].view(np.uint16), want[0].view(np.uint16))
    assert np.array_equal(got[1], want[1])
    wide = matrix.astype(np.float64)
    back = got[0].astype(np.float64) * got[1].astype(np.float64)[:, None]
    assert (np.sqrt((wide**2).sum(1)) <= got[2]).all()
    assert (np.sqrt(((wide - back) ** 2).sum(1)) <= got[3]).all()
    # both round the same float64 sums up: at most an ulp or two apart
    for a, b in ((got[2], want[2]), (got[3], want[3])):
        assert (np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64)) <= 2).all()


@pytest.mark.parametrize("metric", [L2, COS])
def test_rows_and_queries_near_the_float32_limit_get_the_exact_answer(speedups: Any, metric: int) -> None:
    """Float32 rank scores overflow here (``|x|^2`` or ``2 x.q`` is inf): both twins score every row in float64."""
    matrix, sqnorms, n, query, rows, k, metric_, shadow = _inputs((49, 2, 2, metric, 1.0, "mixed", 1e30, 0))
    seqs = np.arange(len(matrix), dtype=np.int64)
    every = np.arange(n, dtype=np.int64)
    want = _rerank.rerank(matrix, seqs, every, query.astype(np.float64), metric)[0][:k].tolist()

    def rust(*a: Any) -> Any:
        r, s = speedups.vector_top_k(*a)
        return np.asarray(r, dtype=np.int64), np.asarray(s, dtype=np.float32)

    for kernel in (rust, _vector_py.search):
        assert _rerank.exact_top(kernel, matrix, sqnorms, seqs, n, query, rows, k, metric)[0].tolist() == want


class _Clock:
    """A ``time`` stand-in for ``_kernels``: each simulated call advances it by its own duration."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


def _simulate(ks: Any, clock: _Clock, cost: Any, calls: int, has_shadow: bool = True) -> list[str]:
    """``calls`` searches through ``ks.choose``/``ks.record``, each taking ``cost(name)`` seconds."""
    picks = []
    for _ in range(calls):
        name, key = ks.choose(False, False, 1 << 30, has_shadow)
        seconds = cost(name)
        clock.now += seconds
        ks.record(key, name, seconds)
        picks.append(name)
    return picks


def _simulated_kernels(speedups: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, _Clock]:
    """An unpinned compiled ``KernelSet`` on a simulated clock, with no numpy call seen yet."""
    from crewai_rust.memory import _kernels

    monkeypatch.delenv(_kernels.KERNEL_ENV, raising=False)
    clock = _Clock()
    monkeypatch.setattr(_kernels, "time", clock)
    monkeypatch.setattr(_kernels._Blas, "at", float("-inf"))
    return _kernels.KernelSet(speedups, "auto"), clock


def test_kernel_choice_follows_measured_times(speedups: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each kernel is calibrated in turn (compiled ones first), then the fastest measured wins;
    one call in REPROBE_EVERY re-times another."""
    from crewai_rust.memory import _kernels

    ks, clock = _simulated_kernels(speedups, monkeypatch)
    seconds = {"rust": 3.0, "rust-f16": 2.0, "numpy": 1.0}  # numpy fastest here: it must be picked
    calibration = 3 * _kernels.CALIBRATION_CALLS
    tried = _simulate(ks, clock, seconds.get, calibration)
    assert tried == sorted(tried, key=["rust", "rust-f16", "numpy"].index) and set(tried) == set(seconds)
    picks = _simulate(ks, clock, seconds.get, _kernels.REPROBE_EVERY * 2)
    assert picks.count("numpy") == len(picks) - 2 and set(picks) - {"numpy"} <= {"rust", "rust-f16"}
    # without a shadow the float16 kernels are not candidates; a pin overrides the measurement
    assert ks._names(False, False) == ["rust", "numpy"]
    monkeypatch.setenv(_kernels.KERNEL_ENV, "rust-f16")
    assert _kernels.KernelSet(speedups, "auto").choose(False, False, 1 << 30, True)[0] == "rust-f16"
    assert _kernels.KernelSet(speedups, "auto").wants_shadow(1 << 10) is True  # the pin needs the shadow
    assert _kernels.KernelSet(speedups, "off").wants_shadow(1 << 30) is False  # an explicit off wins
    monkeypatch.delenv(_kernels.KERNEL_ENV)
    assert _kernels.KernelSet(speedups, "auto").wants_shadow(1 << 10) is False


def test_a_slow_first_call_does_not_decide_the_kernel(speedups: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel's first call (cold cache, page faults, BLAS threads starting) is not its speed.

    Before the fix each kernel was timed once and that time decided for REPROBE_EVERY calls:
    numpy's 40x slower first sgemm kept the batched search on the slower compiled kernel.
    """
    ks, clock = _simulated_kernels(speedups, monkeypatch)
    calls = {"numpy": 0}

    def cost(name: str) -> float:
        if name == "numpy":
            calls["numpy"] += 1
            return 0.040 if calls["numpy"] == 1 else 0.001
        return 0.002

    picks = _simulate(ks, clock, cost, 40, has_shadow=False)
    assert picks[-20:].count("numpy") == 20


def test_compiled_kernels_are_not_timed_beside_spinning_blas_threads(
    speedups: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a numpy call OpenBLAS's idle workers spin and take the core a 2-thread scan needs.

    Simulated: the compiled kernel takes 1 ms, but 2 ms while it starts within 0.1 s of a numpy
    call; numpy takes 1.5 ms. Before the fix those slowed samples were averaged in, the compiled
    kernel looked slower than numpy and numpy was picked for good (its own calls keep the
    threads spinning, so every reprobe saw the slowdown again).
    """
    ks, clock = _simulated_kernels(speedups, monkeypatch)
    last_numpy = [float("-inf")]

    def cost(name: str) -> float:
        if name == "numpy":
            last_numpy[0] = clock.now + 0.0015
            return 0.0015
        return 0.002 if clock.now - last_numpy[0] < 0.1 else 0.001

    picks = _simulate(ks, clock, cost, 2000, has_shadow=False)
    assert picks[-1000:].count("rust") > 900


def test_numpy_probes_are_rare_when_a_compiled_kernel_wins(speedups: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each numpy probe leaves OpenBLAS's workers spinning and slows the compiled scans after it.

    Before the fix numpy was re-timed on a fixed share of calls (one in 2 x REPROBE_EVERY here):
    with 1 ms searches that is every ~0.13 s, so the compiled kernel lost its second core about
    all the time. Now a probe comes at most once per BLAS_REPROBE_SETTLES x BLAS_SETTLE_S.
    """
    from crewai_rust.memory import _kernels

    ks, clock = _simulated_kernels(speedups, monkeypatch)
    seconds = {"rust": 0.001, "rust-f16": 0.0008, "numpy": 0.002}
    _simulate(ks, clock, seconds.get, 3 * _kernels.CALIBRATION_CALLS)
    start = clock.now
    picks = _simulate(ks, clock, seconds.get, 20_000)
    elapsed = clock.now - start
    allowed = elapsed / (_kernels.BLAS_REPROBE_SETTLES * _kernels.BLAS_SETTLE_S) + 1
    assert 1 <= picks.count("numpy") <= allowed
    assert picks.count("rust-f16") > 0.95 * len(picks) and "rust" in picks  # compiled probes go on


def test_one_disturbed_calibration_sample_does_not_decide_the_kernel(
    speedups: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The calibration keeps CALIBRATION_CALLS - 1 samples per kernel: two. Their median must be
    the lower one, the kernel's undisturbed speed (a call on a shared machine is only ever slowed).

    Before the fix it was the upper one: one descheduled compiled call (3 ms instead of 1) made
    numpy (2 ms) the pick for the next REPROBE_EVERY calls, the whole of a short crew run.
    """
    from crewai_rust.memory import _kernels

    ks, clock = _simulated_kernels(speedups, monkeypatch)
    compiled = [0]

    def cost(name: str) -> float:
        if name == "numpy":
            return 0.002
        compiled[0] += 1
        return 0.003 if compiled[0] == _kernels.CALIBRATION_CALLS else 0.001  # its last calibration call

    calibration = _simulate(ks, clock, cost, 2 * _kernels.CALIBRATION_CALLS, has_shadow=False)
    assert calibration == ["rust"] * _kernels.CALIBRATION_CALLS + ["numpy"] * _kernels.CALIBRATION_CALLS
    picks = _simulate(ks, clock, cost, _kernels.REPROBE_EVERY - 2 * _kernels.CALIBRATION_CALLS - 1, has_shadow=False)
    assert picks == ["rust"] * len(picks)


def test_the_shadow_arriving_calibrates_only_the_float16_kernel(speedups: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store keeps its shadow only after some searches: the kernels it already timed keep their
    times then, and only the new float16 kernel is calibrated (it used to start over, running the
    float32 kernel uncounted beside numpy's still-spinning BLAS workers for BLAS_SETTLE_S)."""
    from crewai_rust.memory import _kernels

    ks, clock = _simulated_kernels(speedups, monkeypatch)
    seconds = {"rust": 0.003, "rust-f16": 0.0015, "numpy": 0.002}
    before = _simulate(ks, clock, seconds.get, 2 * _kernels.CALIBRATION_CALLS + 2, has_shadow=False)
    assert set(before) == {"rust", "numpy"} and before[-1] == "numpy"  # calibrated: numpy beats float32
    after = _simulate(ks, clock, seconds.get, 40)
    assert "rust" not in after  # already timed: not calibrated again
    assert after[-1] == "rust-f16" and after.count("rust-f16") >= len(after) - 1


def test_compiled_scans_run_on_one_thread_while_blas_workers_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any store's numpy call (the python twin's too) marks the BLAS pool busy for BLAS_SETTLE_S."""
    from crewai_rust.memory import _kernels

    clock = _Clock()
    monkeypatch.setattr(_kernels, "time", clock)
    monkeypatch.setattr(_kernels._Blas, "at", float("-inf"))
    assert _kernels.scan_threads(0) == 0  # measured by the Rust kernel
    twin = _kernels.KernelSet(None, "auto")  # numpy only: its calls are still noted
    name, key = twin.choose(False, False, 1 << 26, False)
    twin.record(key, name, 0.002)
    assert name == "numpy" and _kernels.scan_threads(0) == 1 and _kernels.scan_threads(2) == 2
    clock.now += _kernels.BLAS_SETTLE_S
    assert _kernels.scan_threads(0) == 0


def test_python_twin_keeps_to_its_own_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai_rust.memory import _kernels

    monkeypatch.delenv(_kernels.KERNEL_ENV, raising=False)
    auto = _kernels.KernelSet(None, "auto")
    assert not auto.wants_shadow(1 << 30)  # numpy's float16 scan never beats its float32 one
    assert auto._names(False, True) == ["numpy"] and auto._names(True, False) == ["numpy"]
    assert _kernels.KernelSet(None, "on")._names(False, True) == ["numpy-f16"]


def test_deep_recall_under_patch_finds_the_same(tmp_path: Path, use_rust: bool) -> None:
    """``Memory.recall(depth="deep")`` under patch() runs our ``_do_search``: the same matches as CrewAI's."""
    from crewai.memory.types import MemoryRecord
    from crewai.memory.unified_memory import Memory

    from crewai_rust.memory import RustMemoryStorage
    from crewai_rust.testing import HashEmbedder, ScriptedLLM

    dim = 64
    embedder = HashEmbedder(dim)
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    texts = [f"note {i} about {'owls' if i % 2 else 'hawks'} hunting at {'dusk' if i % 3 else 'dawn'}" for i in range(60)]
    # distinct distances from the query, so the top matches have no ties (CrewAI's pool order breaks ties)
    q = np.asarray(embedder(["owls hunting"])[0])
    rng = np.random.default_rng(11)
    vectors = [q + (0.02 + 0.03 * i) * rng.standard_normal(dim) for i in range(60)]
    store.save([
        MemoryRecord(content=t, scope=f"/birds/{'night' if i % 2 else 'day'}", embedding=list(map(float, v)))
        for i, (t, v) in enumerate(zip(texts, vectors))
    ])
    calls: list[int] = []
    original = store.search_many

    def spy(queries: Any, **kwargs: Any) -> Any:
        calls.append(len(queries))
        return original(queries, **kwargs)

    store.search_many = spy  # type: ignore[method-assign]

    def recall() -> list[tuple[str, float]]:
        memory = Memory(storage=store, embedder=embedder, llm=ScriptedLLM())
        found = memory.recall("owls hunting", limit=8, depth="deep")
        return sorted((m.record.id, round(m.score, 6)) for m in found)  # recency moves scores by ~1e-9 between calls

    try:
        stock = recall()
        assert calls == []
        state = crewai_rust.patch("memory")
        assert "crewai.memory.recall_flow:RecallFlow._do_search" in state["components"]["MEMORY"]["patched"]
        from crewai.memory.recall_flow import RecallFlow

        assert RecallFlow._do_search.__doc__.startswith("crewai_rust")
        ours = recall()
        assert calls == []  # one short query: nothing to batch, the single search ran (batches: next test)
        assert ours == stock and ours
        crewai_rust.unpatch()
        from crewai.memory.recall_flow import RecallFlow

        assert not RecallFlow._do_search.__doc__.startswith("crewai_rust")
    finally:
        crewai_rust.unpatch()
        store.close()


def test_batched_do_search_gives_crewai_findings(tmp_path: Path, use_rust: bool) -> None:
    """Several sub-queries x scopes: the same findings as CrewAI's method (in task order), private filter kept."""
    from crewai.memory.recall_flow import RecallFlow
    from crewai.memory.types import MemoryRecord

    from crewai_rust.memory import RustMemoryStorage
    from crewai_rust.memory._recall import make_do_search
    from crewai_rust.testing import ScriptedLLM

    dim = 32
    rng = np.random.default_rng(5)
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    store.save([
        MemoryRecord(content=f"r{i}", scope=f"/s/{i % 3}", private=i % 4 == 0, source="me" if i % 8 == 0 else None,
                     embedding=rng.standard_normal(dim).tolist())
        for i in range(90)
    ])
    calls: list[int] = []
    original_many = store.search_many

    def spy(queries: Any, **kwargs: Any) -> Any:
        calls.append(len(queries))
        return original_many(queries, **kwargs)

    store.search_many = spy  # type: ignore[method-assign]
    queries = [(f"q{j}", rng.standard_normal(dim).tolist()) for j in range(3)]
    try:
        for source, private in ((None, False), ("me", False), (None, True)):
            def findings(fn: Any) -> list[tuple[str, list[tuple[str, float]], float]]:
                flow = RecallFlow(storage=store, llm=ScriptedLLM(), embedder=None)
                flow.state.query_embeddings = queries
                flow.state.candidate_scopes = ["/s/0", "/s/1", "/s/2"]
                flow.state.limit = 4
                flow.state.source = source
                flow.state.include_private = private
                got = fn(flow)
                assert flow.state.chunk_findings == got
                # the composite score has a recency term: it moves by ~1e-9 between the two calls
                return [(f["scope"], [(r.id, s) for r, s in f["results"]], round(f["top_score"], 6)) for f in got]

            stock = findings(RecallFlow._do_search)
            ours = findings(make_do_search(RecallFlow._do_search))
            assert sorted(ours) == sorted(stock) and len(ours) == 9
        assert calls == [3] * 9  # one batch of the three sub-queries per scope, per round
    finally:
        store.close()


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_auto_builds_the_shadow_after_some_searches_not_at_the_first(
    speedups: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """A store opened (from its snapshot in milliseconds) and searched once must not pay the shadow's
    build (about twenty float32 scans) in that search; "on" builds it at once."""
    from crewai_rust.memory import _kernels
    from crewai_rust.memory._index import VectorIndex

    monkeypatch.delenv(_kernels.KERNEL_ENV, raising=False)
    dim, n = 1024, 1100  # 4.5 MB of float32: past SHADOW_MIN_BYTES
    rng = np.random.default_rng(5)
    index = VectorIndex()
    block = rng.normal(size=(n, dim)).astype(np.float32)
    index.upsert_many([(i + 1, f"r{i}", "/", "[]", "{}", block[i].tobytes()) for i in range(n)])
    ks = _kernels.KernelSet(speedups, mode)
    query = rng.normal(size=dim).astype(np.float32)
    built_at = None
    for search in range(1, _kernels.SHADOW_AFTER_SEARCHES + 2):
        got = _kernels.exact_top(ks, index, query, None, 5, 0)
        if built_at is None and index.shadow_enabled:
            built_at = search
        assert got[0].tolist() == _kernels.exact_top(_kernels.KernelSet(None, "off"), index, query, None, 5, 0)[0].tolist()
    assert built_at == (_kernels.SHADOW_AFTER_SEARCHES if mode == "auto" else 1)
