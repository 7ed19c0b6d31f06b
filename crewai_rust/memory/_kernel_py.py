"""The numpy twin of the search kernel, and the shared float64 re-rank.

Kernel contract (both twins): score every row (or only ``rows``) against the
query in float32, return the ``k`` best as ``(rows int64, scores float32)``
ordered by score descending, then row ascending. Scores are rank scores, not
the final ones: ``2*x.q - |x|^2`` for L2 (same order as ``-|x-q|^2``) and
``x.q / |x|`` for cosine (query already unit length). The final scores come
from :func:`rerank`, in float64, so both twins return identical results.
"""

from __future__ import annotations

from typing import Any

import numpy as np

METRIC_L2 = 0
METRIC_COSINE = 1


def rank_scores(dots: np.ndarray, sqnorms: np.ndarray, metric: int) -> np.ndarray:
    """float32 rank scores from dot products and squared row norms."""
    if metric == METRIC_L2:
        return np.float32(2.0) * dots - sqnorms
    norms = np.sqrt(sqnorms)
    out = np.zeros_like(dots)
    np.divide(dots, norms, out=out, where=norms > 0)
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first, ties to the lower position."""
    m = len(scores)
    if k <= 0 or m == 0:
        return np.zeros(0, dtype=np.int64)
    if k < m:
        part = np.argpartition(-scores, k - 1)[:k]
        threshold = scores[part].min()
        strict = np.flatnonzero(scores > threshold)
        ties = np.flatnonzero(scores == threshold)[: k - len(strict)]
        chosen = np.concatenate([strict, ties])
    else:
        chosen = np.arange(m)
    order = np.lexsort((chosen, -scores[chosen]))
    return chosen[order].astype(np.int64)


def search(
    matrix: np.ndarray,
    sqnorms: np.ndarray,
    n: int,
    query: np.ndarray,
    rows: np.ndarray | None,
    k: int,
    metric: int,
) -> tuple[np.ndarray, np.ndarray]:
    """numpy kernel: BLAS ``sgemv`` over all rows, or over the selected rows copied out."""
    if rows is None:
        dots = matrix[:n] @ query
        scores = rank_scores(dots, sqnorms[:n], metric)
        best = top_k(scores, k)
        return best, scores[best]
    dots = matrix[rows] @ query
    scores = rank_scores(dots, sqnorms[rows], metric)
    best = top_k(scores, k)
    return rows[best], scores[best]


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


#: Rank scores closer than this (relative) may swap under float32 rounding.
_NEAR_TIE = 1e-4


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
) -> tuple[np.ndarray, np.ndarray]:
    """The exact top ``k`` (float64 scores, ties by sequence) from either kernel twin.

    The kernel proposes ``2k + 16`` candidates in float32; while the last
    candidate is within float32 rounding of the k-th (near ties reaching past
    the margin), the candidate set doubles, so both twins end with the same
    answer as a float64 brute force.
    """
    total = n if rows is None else len(rows)
    want = min(k + max(k, 16), total)
    query64 = query.astype(np.float64)
    while True:
        cand_rows, cand_scores = kernel(matrix, sqnorms, n, query, rows, want, metric)
        if want >= total or len(cand_scores) <= k:
            break
        kth, last = float(cand_scores[k - 1]), float(cand_scores[-1])
        scale = max(abs(kth), abs(last), float(sqnorms[cand_rows[0]]), 1.0)
        if kth - last > _NEAR_TIE * scale:
            break
        want = min(want * 2, total)
    ranked, scores = rerank(matrix, seqs, np.asarray(cand_rows, dtype=np.int64), query64, metric)
    return ranked[:k], scores[:k]
