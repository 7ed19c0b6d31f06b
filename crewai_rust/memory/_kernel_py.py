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
    """float32 rank scores from dot products and squared row norms.

    NaN (``inf - inf`` on rows near the float32 limit) ranks last, as in the Rust twin;
    the float64 re-rank then scores such rows exactly.
    """
    if metric == METRIC_L2:
        out = np.float32(2.0) * dots - sqnorms
    else:
        norms = np.sqrt(sqnorms)
        out = np.zeros_like(dots)
        np.divide(dots, norms, out=out, where=norms > 0)
    nan = np.isnan(out)
    if nan.any():
        out[nan] = -np.inf
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
    """numpy kernel: BLAS ``sgemv`` over all rows, or over the selected rows copied out.

    Float32 overflow (rows near the float32 limit) is expected: the float64 re-rank decides.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _search(matrix, sqnorms, n, query, rows, k, metric)


def _search(
    matrix: np.ndarray,
    sqnorms: np.ndarray,
    n: int,
    query: np.ndarray,
    rows: np.ndarray | None,
    k: int,
    metric: int,
) -> tuple[np.ndarray, np.ndarray]:
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
    if may_overflow(sqnorms, n, rows, query64):
        every = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        ranked, scores = rerank(matrix, seqs, every, query64, metric)
        return ranked[:k], scores[:k]
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


# -- float16 shadow ------------------------------------------------------------------
#: Shadow = (halves float16 [cap, dim], inv_scale, norm, err float32 [cap]); see shadow_rows.
Shadow = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

_U = 2.0**-24  # float32 unit roundoff
_ETA = 2.0**-149  # twice the largest underflow error of one float32 rounding


def _round_up_f32(values: np.ndarray) -> np.ndarray:
    """float32 values >= the float64 ones (inf where they do not fit)."""
    with np.errstate(over="ignore"):
        f = values.astype(np.float32)
    return np.where(f.astype(np.float64) < values, np.nextafter(f, np.float32(np.inf)), f)


def shadow_rows(block: np.ndarray) -> Shadow:
    """The float16 shadow of float32 rows: ``h = f16(x * 2^t)`` per row, with the bound terms.

    ``2^t`` puts the row's largest value in [2^14, 2^15), so huge and tiny rows keep
    float16's 11 bits; ``norm >= |x|`` and ``err >= |x - h * 2^-t|`` are exact float64
    sums rounded up to float32, so the bound in :func:`shadow_bounds` holds whatever
    the rounding did (denormals included).
    """
    wide = block.astype(np.float64)
    top = np.abs(wide).max(axis=1) if wide.shape[1] else np.zeros(len(wide))
    _, exp = np.frexp(top)  # top = m * 2^exp, m in [0.5, 1): floor(log2 top) = exp - 1
    t = np.clip(15 - exp, -126, 126).astype(np.float64)
    t[top == 0] = 0
    scale = np.exp2(t)
    halves = (wide * scale[:, None]).astype(np.float16)
    back = halves.astype(np.float64) / scale[:, None]
    # float64 sums of m terms are within (m-1) 2^-53 of exact: 1e-9 headroom, as in the Rust twin
    err = np.sqrt(((wide - back) ** 2).sum(axis=1)) * (1.0 + 1e-9)
    norm = np.sqrt((wide * wide).sum(axis=1)) * (1.0 + 1e-9)
    return halves, (1.0 / scale).astype(np.float32), _round_up_f32(norm), _round_up_f32(err)


def shadow_bounds(
    dot_s: np.ndarray,
    inv_scale: np.ndarray,
    norm: np.ndarray,
    err: np.ndarray,
    sqnorms: np.ndarray,
    query: np.ndarray,
    metric: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(estimate, B): the shadow's rank estimates and bounds on their distance to the float32 scores.

    The same formula as ``rust/src/vector/shadow.rs`` (the proof is there): any float32
    summation order of ``dim`` products is within ``gamma_(dim+2) * |x||q|`` of the exact
    dot, the shadow within ``err * |q|``. Rows with a non-finite bound get ``B = inf``.
    """
    dim = len(query)
    m = dim + 2.0
    gamma = m * _U / (1.0 - m * _U)
    under = m * _ETA
    q64 = query.astype(np.float64)
    nq = float(np.sqrt((q64 * q64).sum())) * (1.0 + 1e-12)
    nx, e, sqn = norm.astype(np.float64), err.astype(np.float64), sqnorms.astype(np.float64)
    inv = inv_scale.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xq = nx * nq
        dt = dot_s.astype(np.float64) * inv
        d = gamma * xq + under + e * nq + (gamma * (nx + e) * nq + under) * np.maximum(inv, 1.0)
        abs_dot = xq * (1.0 + gamma) + under
        if metric == METRIC_L2:
            est = 2.0 * dt - sqn
            b = 2.0 * d + _U * (2.0 * abs_dot + sqn) + 2.0 * _ETA
        else:
            sigma = np.sqrt(sqnorms).astype(np.float64)  # the float32 root both scans divide by
            positive = sqnorms > 0
            safe = np.where(positive, sigma, 1.0)
            est = np.where(positive, dt / safe, 0.0)
            b = np.where(positive, (d + _U * abs_dot) / safe + 2.0 * _ETA, 0.0)
        b = b * (1.0 + 1e-6) + 1e-12 * (np.abs(est) + 2.0 * np.abs(dt) + sqn)
        regular = (
            np.isfinite(nx) & np.isfinite(e) & np.isfinite(sqn) & np.isfinite(dt) & np.isfinite(b)
            & (xq <= 1e36) & (sqn <= 1e37)
        )
    return np.where(regular, est, 0.0), np.where(regular, b, np.inf)


_SHADOW_BLOCK = 8192


def search_shadow(
    matrix: np.ndarray,
    sqnorms: np.ndarray,
    n: int,
    query: np.ndarray,
    rows: np.ndarray | None,
    k: int,
    metric: int,
    shadow: Shadow,
) -> tuple[np.ndarray, np.ndarray]:
    """numpy twin of ``vector_top_k_shadow``: scan float16, re-score in float32 the rows that may reach the top k."""
    halves, inv_scale, norm, err = shadow
    picked = np.arange(n, dtype=np.int64) if rows is None else rows
    count = len(picked)
    if k <= 0 or count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        return _search_shadow(matrix, sqnorms, picked, query, rows, k, metric, shadow)


def _search_shadow(
    matrix: np.ndarray,
    sqnorms: np.ndarray,
    picked: np.ndarray,
    query: np.ndarray,
    rows: np.ndarray | None,
    k: int,
    metric: int,
    shadow: Shadow,
) -> tuple[np.ndarray, np.ndarray]:
    halves, inv_scale, norm, err = shadow
    count = len(picked)
    dot_s = np.empty(count, dtype=np.float32)
    for start in range(0, count, _SHADOW_BLOCK):
        end = min(start + _SHADOW_BLOCK, count)
        part = halves[start:end] if rows is None else halves[picked[start:end]]
        dot_s[start:end] = part.astype(np.float32) @ query
    est, b = shadow_bounds(dot_s, inv_scale[picked], norm[picked], err[picked], sqnorms[picked], query, metric)
    if k < count:
        lower = est - b
        floor = np.partition(lower, count - k)[count - k]  # the k-th best lower bound
        cand = picked[np.flatnonzero(est + b >= floor)]
    else:
        cand = picked
    dots = matrix[cand] @ query
    scores = rank_scores(dots, sqnorms[cand], metric)
    best = top_k(scores, k)
    return cand[best], scores[best]


# -- many queries at once --------------------------------------------------------------
def search_many(
    matrix: np.ndarray,
    sqnorms: np.ndarray,
    n: int,
    queries: np.ndarray,
    rows: np.ndarray | None,
    k: int,
    metric: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """numpy twin of ``vector_top_k_many``: one ``sgemm`` for the whole batch, then a top k per query."""
    block = matrix[:n] if rows is None else matrix[rows]
    norms = sqnorms[:n] if rows is None else sqnorms[rows]
    with np.errstate(over="ignore", invalid="ignore"):
        dots = queries @ block.T
    out = []
    for j in range(len(queries)):
        with np.errstate(over="ignore", invalid="ignore"):
            scores = rank_scores(np.ascontiguousarray(dots[j]), norms, metric)
        best = top_k(scores, k)
        out.append((best if rows is None else rows[best], scores[best]))
    return out


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
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`exact_top` for every query, the first candidate round as one batched scan.

    A query whose candidates end in a near tie falls back to :func:`exact_top`
    (which widens), so each answer is the one a single search gives.
    """
    total = n if rows is None else len(rows)
    want = min(k + max(k, 16), total)
    batch = kernel_many(matrix, sqnorms, n, queries, rows, want, metric)
    out = []
    for query, (cand_rows, cand_scores) in zip(queries, batch):
        if may_overflow(sqnorms, n, rows, query.astype(np.float64)):
            out.append(exact_top(kernel, matrix, sqnorms, seqs, n, query, rows, k, metric))
            continue
        if want < total and len(cand_scores) > k:
            kth, last = float(cand_scores[k - 1]), float(cand_scores[-1])
            scale = max(abs(kth), abs(last), float(sqnorms[cand_rows[0]]), 1.0)
            if not kth - last > _NEAR_TIE * scale:
                out.append(exact_top(kernel, matrix, sqnorms, seqs, n, query, rows, k, metric))
                continue
        ranked, scores = rerank(matrix, seqs, np.asarray(cand_rows, dtype=np.int64), query.astype(np.float64), metric)
        out.append((ranked[:k], scores[:k]))
    return out
