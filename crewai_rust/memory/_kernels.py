"""Which search kernel runs: decided per process from timings on this CPU, not from constants.

Every kernel here gives the same answer (see ``_rerank``'s contract and the
shadow proof in ``rust/src/vector/shadow.rs``), so the choice is about time only.
For each kind of search (single or batched, filtered or not, log2 of the bytes a
float32 scan would read) the first calls run every available kernel
:data:`CALIBRATION_CALLS` times, compiled kernels first (that is the calibration:
real searches, no synthetic load); the first call of each is not counted (cold
cache, page faults, a BLAS pool starting up). Later calls take the kernel with the
lowest median of its recent samples, and one call in :data:`REPROBE_EVERY` re-times
another so a change of load is noticed (numpy, while it is not the pick, at most once
per :data:`BLAS_REPROBE_SETTLES` settle times: see below). Where the compiled kernel loses (tiny
stores, or a BLAS ``sgemm`` beating the batched kernel), numpy is picked.

numpy's BLAS (OpenBLAS) leaves its worker threads spinning for a while after each
call; a compiled scan on two threads timed then has its second core taken and runs
at one thread's speed. Such samples (within :data:`BLAS_SETTLE_S` of a numpy
kernel) are not counted, or numpy's own probes would make the compiled kernel look
slow and numpy would be picked where it loses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .._env import env_choice, env_int
from . import _rerank, _vector_py

THREADS_ENV = "CREWAI_RUST_MEMORY_THREADS"
SHADOW_ENV = "CREWAI_RUST_MEMORY_SHADOW"
KERNEL_ENV = "CREWAI_RUST_MEMORY_KERNEL"
#: One call in this many (per kind of search) times a kernel other than the fastest.
REPROBE_EVERY = 64
#: Calls each kernel gets in the calibration of a kind of search (the first is not counted).
CALIBRATION_CALLS = 3
#: Recent samples per kernel whose median is its estimate (robust to one descheduled call).
WINDOW = 5
#: How long after a numpy (BLAS) kernel a compiled kernel's time is not counted: OpenBLAS's
#: idle workers spin for 2^28 cycles (its default ``THREAD_TIMEOUT``, ~0.1 s at 2.5 GHz) and
#: hold the core a second scan thread needs. A property of the library, not of this machine.
BLAS_SETTLE_S = 0.25
#: A numpy kernel is re-timed (while a compiled one is preferred) at most once per this many
#: :data:`BLAS_SETTLE_S`: each such probe costs the compiled scans after it their second core
#: for that long, so at most a tenth of the time runs slowed.
BLAS_REPROBE_SETTLES = 10
#: Below this many float32 bytes per search the shadow is not built: all fits in L2.
SHADOW_MIN_BYTES = 4 << 20
#: "auto" builds the shadow at this many searches of an index large enough for it, not at the
#: first: the build costs about twenty float32 scans (76 ms at 10k x 3072 on the Xeon), which a
#: store opened for a short crew run and searched a few times would never earn back; an index
#: opened from its snapshot in 10 ms would otherwise pay it in its first search.
SHADOW_AFTER_SEARCHES = 8

class _Blas:
    """When a numpy kernel last returned, process-wide (OpenBLAS's workers serve every store)."""

    at = float("-inf")


def scan_threads(threads: int) -> int:
    """The thread count for a compiled scan: one while numpy's BLAS workers may still spin.

    Their spinning holds the other core, so a two-thread scan then runs slower than one
    thread (measured at 10k x 1536: 3-4.5 ms against 2.3); ``threads`` (0 = measured by the
    Rust kernel) otherwise. A one-thread call is not timed by the Rust thread choice either.
    """
    if threads == 0 and time.perf_counter() - _Blas.at < BLAS_SETTLE_S:
        return 1
    return threads


Kernel = Callable[..., tuple[np.ndarray, np.ndarray]]
ManyKernel = Callable[..., list[tuple[np.ndarray, np.ndarray]]]


def shadow_mode(requested: bool | None) -> str:
    """``"on"``, ``"off"`` or ``"auto"`` from the ``shadow`` option, else ``CREWAI_RUST_MEMORY_SHADOW``."""
    if requested is not None:
        return "on" if requested else "off"
    return env_choice(SHADOW_ENV, "AUTO", ("AUTO", "ON", "OFF")).lower()


class _Stats:
    """Recent seconds per call of each kernel of one kind of search."""

    __slots__ = ("calls", "tried", "samples")

    def __init__(self) -> None:
        self.calls = 0
        self.tried: dict[str, int] = {}  # clean calls timed (the first one not kept)
        self.samples: dict[str, list[float]] = {}  # the last WINDOW kept ones

    def estimate(self, name: str) -> float:
        """Median of the recent kept samples, the lower one of an even count.

        A call on a shared machine is only ever slowed (descheduled, another process on the
        core), so of the calibration's two kept samples the lower is the kernel's speed.
        """
        ordered = sorted(self.samples.get(name) or [float("inf")])
        return ordered[(len(ordered) - 1) // 2]

    @property
    def mean(self) -> dict[str, float]:
        """Kernel -> estimate, for the kernels timed so far."""
        return {nm: self.estimate(nm) for nm in self.samples}


class KernelSet:
    """The kernels a store may use, and the measured choice between them."""

    def __init__(self, module: Any, shadow: str) -> None:
        threads = env_int(THREADS_ENV, 0, minimum=0) or 0  # 0 = measured by the Rust kernel
        self.rust = module is not None
        self.shadow = shadow
        forced = env_choice(KERNEL_ENV, "AUTO", ("AUTO", "NUMPY", "RUST", "RUST-F16", "NUMPY-F16")).lower()
        self._forced = None if forced == "auto" else forced
        self._lock = threading.Lock()
        self._stats: dict[tuple[Any, ...], _Stats] = {}
        self.single: dict[str, Kernel] = {}
        self.many: dict[str, ManyKernel] = {}
        self.last: str | None = None  # the kernel of the latest search (tests, ``status``)
        if module is not None:
            # start the scan workers now: their start-up must not land in the first timed search
            # (it would make the compiled kernel look slow until a reprobe corrects it)
            module.vector_threads()
            top, top_shadow, top_many = module.vector_top_k, module.vector_top_k_shadow, module.vector_top_k_many

            def rust(matrix, sqnorms, n, query, rows, k, metric, shadow=None):  # type: ignore[no-untyped-def]
                got_rows, got_scores = top(matrix, sqnorms, n, query, rows, k, metric, scan_threads(threads))
                return np.asarray(got_rows, dtype=np.int64), np.asarray(got_scores, dtype=np.float32)

            def rust_f16(matrix, sqnorms, n, query, rows, k, metric, shadow=None):  # type: ignore[no-untyped-def]
                halves, inv_scale, norm, err = shadow
                got_rows, got_scores = top_shadow(
                    matrix, sqnorms, n, query, rows, k, metric, halves.view(np.uint16), inv_scale, norm, err,
                    scan_threads(threads),
                )
                return np.asarray(got_rows, dtype=np.int64), np.asarray(got_scores, dtype=np.float32)

            def rust_many(matrix, sqnorms, n, queries, rows, k, metric):  # type: ignore[no-untyped-def]
                return [
                    (np.asarray(r, dtype=np.int64), np.asarray(s, dtype=np.float32))
                    for r, s in top_many(matrix, sqnorms, n, queries, rows, k, metric, scan_threads(threads))
                ]

            build = module.vector_shadow_rows

            def rust_shadow_rows(block: np.ndarray) -> _rerank.Shadow:
                halves, inv_scale, norm, err = build(np.ascontiguousarray(block, dtype=np.float32))
                rows = len(block)
                return (
                    np.frombuffer(halves, dtype="<f2").reshape(rows, block.shape[1]),
                    np.frombuffer(inv_scale, dtype="<f4"),
                    np.frombuffer(norm, dtype="<f4"),
                    np.frombuffer(err, dtype="<f4"),
                )

            rescore = module.vector_rerank

            def rust_rerank(matrix, seqs, rows, query64, metric):  # type: ignore[no-untyped-def]
                got_rows, got_scores = rescore(matrix, seqs, rows, query64, metric)
                return np.asarray(got_rows, dtype=np.int64), np.asarray(got_scores, dtype=np.float64)

            self.shadow_rows: Callable[[np.ndarray], _rerank.Shadow] = rust_shadow_rows
            # the float64 re-rank, the same bits as numpy's (most of a small search after the records)
            self.rerank: _rerank.Rescore = rust_rerank
            self.single["rust"] = rust
            self.single["rust-f16"] = rust_f16
            self.many["rust"] = rust_many
        else:
            self.shadow_rows = _vector_py.shadow_rows
            self.rerank = _rerank.rerank
        # numpy is always a candidate: where BLAS wins on this CPU, it is picked
        self.single["numpy"] = _numpy
        self.single["numpy-f16"] = _numpy_f16
        self.many["numpy"] = _vector_py.search_many

    def wants_shadow(self, nbytes: int) -> bool:
        """Whether an index of ``nbytes`` float32 should keep its float16 shadow."""
        if self.shadow == "off":
            return False
        if self.shadow == "on" or self._forced in ("rust-f16", "numpy-f16"):
            return True
        # auto: where a scan can be bandwidth-bound, and only the compiled twin (numpy's
        # float16 matmul widens every block first and never beats its float32 scan)
        return self.rust and nbytes >= SHADOW_MIN_BYTES

    def shadow_can_wait(self) -> bool:
        """Whether searches scan float32 until the shadow pays (auto): a snapshot's shadow is then
        checked beside the first searches instead of in the open (``_deferred_shadow``)."""
        return self.shadow == "auto" and self._forced is None

    def prepare(self, index: Any) -> None:
        """Start keeping the float16 shadow once the index is large enough, and (auto) searched enough, for it to pay."""
        if index.shadow_enabled or not index.dim or not self.wants_shadow(index.n * index.dim * 4):
            return
        deferred = index.deferred_shadow  # a snapshot's, checked on a thread: taken as soon as it passes
        if deferred is not None and deferred.checked and not deferred.verdict():
            index.discard_deferred_shadow()  # damaged: built from the rows when it pays, as for a file without one
            deferred = None
        if self.shadow_can_wait() and (deferred is None or not deferred.checked):
            index.searches_without_shadow += 1
            if index.searches_without_shadow < SHADOW_AFTER_SEARCHES:
                return
        index.shadow_builder = self.shadow_rows
        index.set_shadow(True)

    def _names(self, batched: bool, has_shadow: bool) -> list[str]:
        names = list(self.many if batched else self.single)
        if not has_shadow:
            names = [nm for nm in names if not nm.endswith("-f16")]
        elif self.rust:
            names.remove("numpy-f16")  # never faster than the compiled shadow scan
        if has_shadow and self.shadow == "on":
            names = [nm for nm in names if nm.endswith("-f16")] or names  # "on": scan the shadow
        elif not self.rust:
            names = [nm for nm in names if not nm.endswith("-f16")]
        if self._forced is not None:
            names = [nm for nm in names if nm == self._forced] or names
        return names

    def choose(self, batched: bool, filtered: bool, nbytes: int, has_shadow: bool) -> tuple[str, tuple[Any, ...]]:
        """The kernel for this kind of search, and the key to :meth:`record` its time under."""
        names = self._names(batched, has_shadow)
        key = (batched, filtered, max(nbytes, 1).bit_length(), tuple(names))
        if len(names) == 1:
            return names[0], key
        with self._lock:
            stats = self._stats.setdefault(key[:3], _Stats())  # the shadow arriving adds a kernel, keeps the times
            stats.calls += 1
            # calibration in order, compiled kernels first (numpy is listed last): a compiled
            # kernel timed right after numpy's calls would only measure their spinning threads
            for nm in names:
                if stats.tried.get(nm, 0) < CALIBRATION_CALLS:
                    return nm, key
            ranked = sorted(names, key=stats.estimate)
            if stats.calls % REPROBE_EVERY == 0:
                other = ranked[1 + (stats.calls // REPROBE_EVERY) % (len(ranked) - 1)]
                blas_probe = other.startswith("numpy") and not ranked[0].startswith("numpy")
                since = time.perf_counter() - _Blas.at
                if not blas_probe or since >= BLAS_REPROBE_SETTLES * BLAS_SETTLE_S:
                    return other, key
            return ranked[0], key

    def record(self, key: tuple[Any, ...], name: str, seconds: float) -> None:
        """Count one measured call of ``seconds`` that has just returned.

        The first call of each kernel is not kept, and a compiled kernel's call that started
        within :data:`BLAS_SETTLE_S` of a numpy one is not counted at all: in calibration it is
        simply run again (numpy is not called meanwhile, so its threads go idle).
        """
        self.last = name
        now = time.perf_counter()
        numpy = name.startswith("numpy")
        blas_before = _Blas.at
        if numpy:  # every store's numpy calls, the python twin's too: the BLAS pool is the process's
            _Blas.at = now
        if len(key[3]) == 1:
            return
        with self._lock:
            stats = self._stats.setdefault(key[:3], _Stats())
            if not numpy and now - seconds - blas_before < BLAS_SETTLE_S:
                return
            tried = stats.tried[name] = stats.tried.get(name, 0) + 1
            if tried > 1:
                kept = stats.samples.setdefault(name, [])
                kept.append(seconds)
                del kept[:-WINDOW]

    def measured(self) -> dict[str, dict[str, float]]:
        """Kind of search -> kernel -> mean ms, for benchmarks and ``status``."""
        with self._lock:
            return {
                f"{'many' if b else 'one'}/{'filtered' if f else 'all'}/2^{c}B": {
                    nm: round(v * 1e3, 4) for nm, v in s.mean.items()
                }
                for (b, f, c), s in self._stats.items()
            }


def _numpy(matrix, sqnorms, n, query, rows, k, metric, shadow=None):  # type: ignore[no-untyped-def]
    return _vector_py.search(matrix, sqnorms, n, query, rows, k, metric)


def _numpy_f16(matrix, sqnorms, n, query, rows, k, metric, shadow=None):  # type: ignore[no-untyped-def]
    return _vector_py.search_shadow(matrix, sqnorms, n, query, rows, k, metric, shadow)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and its wall time in seconds."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _bound(kernel: Kernel, shadow: Any) -> Kernel:
    def call(matrix, sqnorms, n, query, rows, k, metric):  # type: ignore[no-untyped-def]
        return kernel(matrix, sqnorms, n, query, rows, k, metric, shadow)

    return call


def exact_top(kernels: KernelSet, index: Any, query: np.ndarray, rows: np.ndarray | None, k: int, metric: int) -> Any:
    """:func:`_rerank.exact_top` on ``index`` with the kernel measured fastest for this search."""
    kernels.prepare(index)
    shadow = index.shadow()
    count = index.n if rows is None else len(rows)
    name, key = kernels.choose(False, rows is not None, count * (index.dim or 0) * 4, shadow is not None)
    kernel = _bound(kernels.single[name], shadow)
    out, seconds = timed(
        lambda: _rerank.exact_top(
            kernel, index.matrix, index.sqnorms, index.seqs, index.n, query, rows, k, metric, kernels.rerank
        )
    )
    kernels.record(key, name, seconds)
    return out


def exact_top_many(
    kernels: KernelSet, index: Any, queries: np.ndarray, rows: np.ndarray | None, k: int, metric: int
) -> list[Any]:
    """:func:`_rerank.exact_top_many` with the batched kernel measured fastest for this batch size."""
    count = index.n if rows is None else len(rows)
    name, key = kernels.choose(True, rows is not None, count * (index.dim or 0) * 4 * len(queries), False)
    single = _bound(kernels.single[name], None)
    out, seconds = timed(
        lambda: _rerank.exact_top_many(
            kernels.many[name], single, index.matrix, index.sqnorms, index.seqs, index.n, queries, rows, k, metric,
            kernels.rerank,
        )
    )
    kernels.record(key, name, seconds)
    return out
