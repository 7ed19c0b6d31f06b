"""What an embedding must be to be stored or searched: the rules both twins share.

Both the numpy twin (``_embedding_py``) and the compiled one (``rust/src/embedding.rs``)
refuse the same values; queries are checked here too, whichever twin searches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

F32_MAX = float(np.finfo(np.float32).max)
F32_MAX_AS_F32 = np.float32(F32_MAX)


def vector_f32(values: Any, what: str) -> np.ndarray:
    """A float32 copy of ``values``; NaN, infinities and float32 overflow raise ValueError."""
    vec, reason = f32_or_reason(values)
    if vec is None:
        raise ValueError(f"{what} {reason}")
    return vec


def f32_or_reason(values: Any) -> tuple[np.ndarray | None, str]:
    """(float32 copy, "") or (None, why it is refused): the rules both twins share."""
    try:
        vec = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return None, f"must be a list of numbers: {exc}"
    if vec.ndim != 1:
        return None, f"must be one-dimensional, got shape {vec.shape}"
    if not np.isfinite(vec).all():
        return None, "contains NaN or infinite values"
    if len(vec) and np.abs(vec).max() > F32_MAX:
        return None, "has values beyond the float32 range"
    return vec.astype(np.float32), ""
