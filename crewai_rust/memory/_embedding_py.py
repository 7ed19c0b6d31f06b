"""Python twin of ``rust/src/embedding.rs``: embeddings to stored float32 bytes.

Exports the compiled names (``embedding_f32_bytes``, ``embeddings_f32_bytes_many``);
``_records.encoder``/``batch_encoder`` bind one of the twins through ``_selection.twin``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._embedding_rules import F32_MAX_AS_F32, f32_or_reason


def embedding_f32_bytes(values: Any) -> bytes:
    """Validated float32 bytes of one embedding; a refused one raises ValueError with the reason."""
    vec, reason = f32_or_reason(values)
    if vec is None:
        raise ValueError(reason)
    return vec.tobytes()


def embeddings_f32_bytes_many(embeddings: list[Any]) -> tuple[list[bytes], int, str]:
    """A save batch encoded with one conversion: ``(blobs, -1, "")`` or ``(blobs before it, i, reason)``.

    The fast path converts the whole batch to float32 at once; it is exact only when
    nothing is refused (no value is non-finite, none lies at the float32 limit, where a
    larger float64 may have rounded down). Otherwise each vector is checked in order
    with the shared rules, so the first refused record and its reason are the Rust twin's.
    """
    if not embeddings:
        return [], -1, ""
    block = None
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # refused below, by the exact path
            block = np.array(embeddings, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        pass
    if block is not None and block.ndim == 2 and len(block) == len(embeddings):
        if np.isfinite(block).all() and not (np.abs(block) == F32_MAX_AS_F32).any():
            return [row.tobytes() for row in block], -1, ""
    blobs: list[bytes] = []
    for i, values in enumerate(embeddings):
        vec, reason = f32_or_reason(values)
        if vec is None:
            return blobs, i, reason
        blobs.append(vec.tobytes())
    return blobs, -1, ""
