"""The float64 re-rank both kernel twins share, and the exact top-k built on it.

Kernel contract (both twins): score every row (or only ``rows``) against the
query in float32, return the ``k`` best as ``(rows int64, scores float32)``
ordered by score descending, then row ascending. Scores are rank scores, not
the final ones: ``2*x.q - |x|^2`` for L2 (same order as ``-|x-q|^2``) and
``x.q / |x|`` for cosine (same order as the cosine: the query is not normalized). The final scores come
from :func:`rerank`, in float64, so both twins return identical results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

METRIC_L2 = 0
METRIC_COSINE = 1

#: The float16 shadow both twins build (``_vector_py.shadow_rows``, ``_speedups.vector_shadow_rows``):
#: (halves float16 [cap, dim], inv_scale, norm, err float32 [cap]).
Shadow = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


#: ``rerank``'s signature; the compiled twin (``_speedups.vector_rerank``) gives the same bits.
Rescore = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _row_sums(values: np.ndarray) -> np.ndarray:
    """Per-row sums whose rounding depends only on the row's values, never on its position.

    BLAS ``dgemv`` (``block @ q``) and ``einsum`` take different code paths for a
    block's last rows, so two identical vectors could get scores one ulp apart
    and their tie would no longer go to the earlier sequence. An elementwise
    product is exact per element and ``sum(axis=1)`` reduces every row alike.
    """
    return values.sum(axis=1)


def rerank(
    matrix: np.ndarray,
    seqs: np.ndarray,
    rows: np.ndarray,
    query64: np.ndarray,
    metric: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 scores of candidate rows, ordered by score desc then insertion sequence.

    Equal vectors always get bit-equal scores (see :func:`_row_sums`), so the
    order never depends on where a row sits in the candidate list.
    """
    if len(rows) == 0:
        return rows, np.zeros(0)
    block = matrix[rows].astype(np.float64)
    if metric == METRIC_L2:
        diff = block - query64
        scores = 1.0 / (1.0 + _row_sums(diff * diff))
    else:
        norms = np.sqrt(_row_sums(block * block))
        qnorm = float(np.sqrt((query64 * query64).sum()))
        denom = norms * qnorm
        scores = np.zeros(len(rows))
        np.divide(_row_sums(block * query64), denom, out=scores, where=denom > 0)
    order = np.lexsort((seqs[rows], -scores))
    return rows[order], scores[order]


def may_overflow(sqnorms: np.ndarray, n: int, rows: np.ndarray | None, query64: np.ndarray) -> bool:
    """Whether float32 rank scores could overflow (rows or query near the float32 limit).

    Then no float32 kernel orders the rows reliably (``2 x.q`` or ``|x|^2`` is inf),
    so the exact answer comes from scoring every row in float64.
    """
    if n == 0 or (rows is not None and len(rows) == 0):
        return False
    top = float(sqnorms[:n].max() if rows is None else sqnorms[rows].max())
    qsq = float((query64 * query64).sum())
    return not (top < 1e37 and qsq < 1e37 and top * qsq < 1e72)


#: Rank scores closer than this (relative) may swap under float32 rounding.
_NEAR_TIE = 1e-4


def _clear_of_ties(
    cand_rows: np.ndarray, cand_scores: np.ndarray, sqnorms: np.ndarray, query64: np.ndarray, k: int, metric: int
) -> bool:
    """Whether the last candidate is too far below the k-th for float32 rounding to swap them.

    The margin is relative to the size of the rank scores' terms: an L2 score ``2 x.q - |x|^2``
    rounds in proportion to ``|x|^2``, a cosine score ``x.q / |x|`` to ``|q|`` whatever the
    rows' length (scaling it by ``|x|^2`` made every search of long vectors widen to all rows).
    """
    kth, last = float(cand_scores[k - 1]), float(cand_scores[-1])
    if metric == METRIC_L2:
        terms = float(sqnorms[cand_rows[0]])
    else:
        terms = float(np.sqrt((query64 * query64).sum()))
    return kth - last > _NEAR_TIE * max(abs(kth), abs(last), terms, 1.0)


def exact_top(
    kernel: Any,
    matrix: np.ndarray,
    sqnorms: np.ndarray,
    seqs: np.ndarray,
    n: int,
    query: np.ndarray,
    rows: np.ndarray | None,
    k: int,
    metric: int,
    rescore: Rescore | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact top ``k`` (float64 scores, ties by sequence) from either kernel twin.

    The kernel proposes ``2k + 16`` candidates in float32; while the last
    candidate is within float32 rounding of the k-th (near ties reaching past
    the margin), the candidate set doubles, so both twins end with the same
    answer as a float64 brute force. ``rescore`` is :func:`rerank` or its compiled twin.
    """
    rescore = rescore or rerank
    total = n if rows is None else len(rows)
    want = min(k + max(k, 16), total)
    query64 = query.astype(np.float64)
    if may_overflow(sqnorms, n, rows, query64):
        every = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        ranked, scores = rescore(matrix, seqs, every, query64, metric)
        return ranked[:k], scores[:k]
    while True:
        cand_rows, cand_scores = kernel(matrix, sqnorms, n, query, rows, want, metric)
        if want >= total or len(cand_scores) <= k:
            break
        if _clear_of_ties(cand_rows, cand_scores, sqnorms, query64, k, metric):
            break
        want = min(want * 2, total)
    ranked, scores = rescore(matrix, seqs, np.asarray(cand_rows, dtype=np.int64), query64, metric)
    return ranked[:k], scores[:k]


ManyKernel = Any


def exact_top_many(
    kernel_many: ManyKernel,
    kernel: Any,
    matrix: np.ndarray,
    sqnorms: np.ndarray,
    seqs: np.ndarray,
    n: int,
    queries: np.ndarray,
    rows: np.ndarray | None,
    k: int,
    metric: int,
    rescore: Rescore | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`exact_top` for every query, the first candidate round as one batched scan.

    A query whose candidates end in a near tie falls back to :func:`exact_top`
    (which widens), so each answer is the one a single search gives.
    """
    rescore = rescore or rerank
    total = n if rows is None else len(rows)
    want = min(k + max(k, 16), total)
    batch = kernel_many(matrix, sqnorms, n, queries, rows, want, metric)
    out = []
    for query, (cand_rows, cand_scores) in zip(queries, batch):
        query64 = query.astype(np.float64)
        if may_overflow(sqnorms, n, rows, query64):
            out.append(exact_top(kernel, matrix, sqnorms, seqs, n, query, rows, k, metric, rescore))
            continue
        if want < total and len(cand_scores) > k:
            if not _clear_of_ties(cand_rows, cand_scores, sqnorms, query64, k, metric):
                out.append(exact_top(kernel, matrix, sqnorms, seqs, n, query, rows, k, metric, rescore))
                continue
        ranked, scores = rescore(matrix, seqs, np.asarray(cand_rows, dtype=np.int64), query64, metric)
        out.append((ranked[:k], scores[:k]))
    return out
