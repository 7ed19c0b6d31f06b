"""Converting between CrewAI's ``MemoryRecord`` and stored rows, with input validation.

Validation happens before anything is written, so a bad record in a batch
leaves the store exactly as it was.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from collections.abc import Callable
from typing import Any

import numpy as np

from ..serialization import dumps
from ._seam import RecordRow
from ._quarantine import load_stored

_EPOCH = datetime(1970, 1, 1)
_F32_MAX = float(np.finfo(np.float32).max)
_F32_MAX_AS_F32 = np.float32(_F32_MAX)


def memory_types() -> Any:
    """``crewai.memory.types`` (imported on first use, so importing crewai_rust stays cheap)."""
    from crewai.memory import types

    return types


def dimension_error(stored: int, new: int) -> Exception:
    """CrewAI's own ``EmbeddingDimensionMismatchError`` (a ValueError), with both sizes."""
    from crewai.memory.storage.backend import EmbeddingDimensionMismatchError

    return EmbeddingDimensionMismatchError(stored, new)


def naive_utc(dt: datetime) -> datetime:
    """CrewAI keeps naive UTC datetimes; convert aware ones to that."""
    if dt.tzinfo is not None:
        return dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def to_micros(dt: datetime) -> int:
    """Microseconds since the epoch, for exact ordering and ``older_than`` comparisons."""
    return (naive_utc(dt) - _EPOCH) // timedelta(microseconds=1)


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat()


def vector_f32(values: Any, what: str) -> np.ndarray:
    """A float32 copy of ``values``; NaN, infinities and float32 overflow raise ValueError."""
    vec, reason = _f32_or_reason(values)
    if vec is None:
        raise ValueError(f"{what} {reason}")
    return vec


def _f32_or_reason(values: Any) -> tuple[np.ndarray | None, str]:
    """(float32 copy, "") or (None, why it is refused): the rules both twins share."""
    try:
        vec = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return None, f"must be a list of numbers: {exc}"
    if vec.ndim != 1:
        return None, f"must be one-dimensional, got shape {vec.shape}"
    if not np.isfinite(vec).all():
        return None, "contains NaN or infinite values"
    if len(vec) and np.abs(vec).max() > _F32_MAX:
        return None, "has values beyond the float32 range"
    return vec.astype(np.float32), ""


Encoder = Callable[[Any, str], bytes]


def encode_python(values: Any, what: str) -> bytes:
    """numpy twin: validated float32 bytes of an embedding."""
    return vector_f32(values, what).tobytes()


def rust_encoder(module: Any) -> Encoder:
    """Rust twin (``embedding_f32_bytes``), with the same ValueError messages as the numpy twin."""
    encode_fn = module.embedding_f32_bytes

    def encode(values: Any, what: str) -> bytes:
        try:
            return encode_fn(values)
        except TypeError as exc:
            raise ValueError(f"{what} must be a list of numbers: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{what} {exc}") from None

    return encode


#: ``encode_many(embeddings) -> (blobs, -1, "")`` or ``(blobs before it, index of the first refused, reason)``.
BatchEncoder = Callable[[list[Any]], tuple[list[bytes], int, str]]


def encode_many_python(embeddings: list[Any]) -> tuple[list[bytes], int, str]:
    """numpy twin of ``embeddings_f32_bytes_many``: a save batch encoded with one conversion.

    The fast path converts the whole batch to float32 at once; it is exact only when
    nothing is refused (no value is non-finite, none lies at the float32 limit, where a
    larger float64 may have rounded down). Otherwise each vector is checked in order
    with :func:`vector_f32`'s rules, so the first refused record and its reason are the
    Rust twin's.
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
        if np.isfinite(block).all() and not (np.abs(block) == _F32_MAX_AS_F32).any():
            return [row.tobytes() for row in block], -1, ""
    blobs: list[bytes] = []
    for i, values in enumerate(embeddings):
        vec, reason = _f32_or_reason(values)
        if vec is None:
            return blobs, i, reason
        blobs.append(vec.tobytes())
    return blobs, -1, ""


def rust_batch_encoder(module: Any) -> BatchEncoder:
    """Rust twin: ``embeddings_f32_bytes_many`` (one call for the batch)."""
    fn = module.embeddings_f32_bytes_many

    def encode_many(embeddings: list[Any]) -> tuple[list[bytes], int, str]:
        blobs, bad, reason = fn(embeddings)
        return list(blobs), int(bad), str(reason)

    return encode_many


def batch_dimension(records: list[Any]) -> int | None:
    """The embedding size shared by the batch (None when none has one); mixed sizes raise."""
    dim = None
    for record in records:
        if record.embedding:
            if dim is None:
                dim = len(record.embedding)
            elif len(record.embedding) != dim:
                raise dimension_error(dim, len(record.embedding))
    return dim


def _check_fields(record: Any) -> None:
    """Everything but the embedding: content, metadata and categories (pydantic may have been skipped)."""
    if not isinstance(record.content, str) or not record.content.strip():
        raise ValueError(f"memory record {record.id!r} has empty content; nothing was saved")
    # Checked here, before the commit: a record built with model_construct skips pydantic.
    if not isinstance(record.metadata, dict):
        raise ValueError(
            f"memory record {record.id!r} has metadata of type {type(record.metadata).__name__}, not a dict;"
            " nothing was saved"
        )
    categories = record.categories
    if not isinstance(categories, (list, tuple)) or not all(isinstance(c, str) for c in categories):
        raise ValueError(f"memory record {record.id!r} has categories that are not a list of strings; nothing was saved")


def to_row(record: Any, dim: int, encode: Encoder = encode_python) -> RecordRow:
    """Validate one record and encode it; records without an embedding get zeros, as in LanceDB."""
    _check_fields(record)
    if record.embedding:
        blob = encode(record.embedding, f"embedding of record {record.id!r}")
        if len(blob) != dim * 4:
            raise dimension_error(dim, len(blob) // 4)
    else:
        blob = bytes(dim * 4)
    return _row(record, blob)


def _row(record: Any, blob: bytes) -> RecordRow:
    created = record.created_at
    return RecordRow(
        id=str(record.id),
        content=record.content,
        scope=str(record.scope),
        categories=dumps(list(record.categories)),
        metadata=dumps(record.metadata),
        importance=float(record.importance),
        created_at=created.isoformat(),
        created_us=to_micros(created),
        last_accessed=record.last_accessed.isoformat(),
        source=record.source or "",
        private=bool(record.private),
        embedding=blob,
    )


def to_rows(records: list[Any], dim: int, encode_many: BatchEncoder = encode_many_python) -> list[RecordRow]:
    """:func:`to_row` for a whole batch, the embeddings encoded in one call; the same first error.

    Every embedding is encoded before any row is built; when one is refused, the
    records before it are still checked first, so the error raised is the one the
    record-by-record loop would raise.
    """
    positions = [i for i, r in enumerate(records) if r.embedding]
    blobs, bad, reason = encode_many([records[i].embedding for i in positions])
    stop = len(records) if bad < 0 else positions[bad]
    given = iter(blobs)
    rows = []
    for record in records[:stop]:
        _check_fields(record)
        if record.embedding:
            blob = next(given)
            if len(blob) != dim * 4:
                raise dimension_error(dim, len(blob) // 4)
        else:
            blob = bytes(dim * 4)
        rows.append(_row(record, blob))
    if bad >= 0:
        record = records[stop]
        _check_fields(record)
        raise ValueError(f"embedding of record {record.id!r} {reason}")
    return rows


def _parse_dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def from_row(row: tuple[Any, ...]) -> Any:
    """A ``MemoryRecord`` from a ``RECORD_COLUMNS`` row (already validated when it was saved)."""
    rid, content, scope, cats, meta, importance, created, accessed, source, private, blob = row[:11]
    embedding = np.frombuffer(blob, dtype=np.float32).tolist()
    return memory_types().MemoryRecord.model_construct(
        id=rid,
        content=content,
        scope=scope,
        categories=load_stored(cats),
        metadata=load_stored(meta),
        importance=float(importance),
        created_at=_parse_dt(created),
        last_accessed=_parse_dt(accessed),
        embedding=embedding,
        source=source or None,
        private=bool(private),
    )
