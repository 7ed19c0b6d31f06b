"""The numpy twin of the vector kernels in ``rust/src/vector`` (same names, same contract).

The contract and the float64 re-rank that makes both twins' answers identical are in
:mod:`._rerank`; this module only proposes candidates, in float32 (and float16 for the shadow).
"""

from __future__ import annotations


import numpy as np

from ._rerank import METRIC_L2, Shadow

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


# -- float16 shadow ------------------------------------------------------------------
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
