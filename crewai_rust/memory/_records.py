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
from ._embedding_py import embedding_f32_bytes, embeddings_f32_bytes_many
from .._selection import twin

_EPOCH = datetime(1970, 1, 1)


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


_MICROSECOND = timedelta(microseconds=1)


def to_micros(dt: datetime) -> int:
    """Microseconds since the epoch, for exact ordering and ``older_than`` comparisons."""
    return (naive_utc(dt) - _EPOCH) // _MICROSECOND


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat()


Encoder = Callable[[Any, str], bytes]

#: ``encode_many(embeddings) -> (blobs, -1, "")`` or ``(blobs before it, index of the first refused, reason)``.
BatchEncoder = Callable[[list[Any]], tuple[list[bytes], int, str]]


def encoder(rust: bool) -> Encoder:
    """The chosen twin of ``embedding_f32_bytes``, raising the ValueError messages both twins share."""
    encode_fn = twin(embedding_f32_bytes, rust)

    def encode(values: Any, what: str) -> bytes:
        try:
            return encode_fn(values)
        except TypeError as exc:  # the compiled twin refuses non-numbers while extracting them
            raise ValueError(f"{what} must be a list of numbers: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{what} {exc}") from None

    return encode


def batch_encoder(rust: bool) -> BatchEncoder:
    """The chosen twin of ``embeddings_f32_bytes_many`` (one call for a save batch)."""
    return twin(embeddings_f32_bytes_many, rust)


PYTHON_ENCODER = encoder(False)


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


def to_row(record: Any, dim: int, encode: Encoder = PYTHON_ENCODER) -> RecordRow:
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
        str(record.id),
        record.content,
        str(record.scope),
        dumps(list(record.categories)),
        dumps(record.metadata),
        float(record.importance),
        created.isoformat(),
        to_micros(created),
        record.last_accessed.isoformat(),
        record.source or "",
        bool(record.private),
        blob,
    )


#: ``build(records, blobs, dim)``: per record its ``RecordRow``, or None where the Python loop must
#: build (or refuse) it; ``blobs[k]`` is record k's float32 bytes, None when it has no embedding.
RowBuilder = Callable[[list[Any], list[Any], int], list[Any]]


def rust_row_builder(module: Any) -> RowBuilder:
    """Rust twin of the per-record loop (``memory_rows``): the rows of a batch in one call."""
    fn = module.memory_rows
    make = RecordRow._make

    def build(records: list[Any], blobs: list[Any], dim: int) -> list[Any]:
        return fn(records, blobs, dim, make)  # type: ignore[no-any-return]

    return build


def to_rows(records: list[Any], dim: int, encode_many: BatchEncoder = embeddings_f32_bytes_many,
            build: RowBuilder | None = None) -> list[RecordRow]:
    """:func:`to_row` for a whole batch, the embeddings encoded in one call; the same first error.

    Every embedding is encoded before any row is built; when one is refused, the
    records before it are still checked first, so the error raised is the one the
    record-by-record loop would raise. ``build`` (the Rust twin) makes the rows it can
    in one call; the loop makes the others, and raises their errors in record order.
    """
    positions = [i for i, r in enumerate(records) if r.embedding]
    blobs, bad, reason = encode_many([records[i].embedding for i in positions])
    stop = len(records) if bad < 0 else positions[bad]
    given: list[Any] = [None] * stop
    for i, blob in zip(positions, blobs):
        if i < stop:
            given[i] = blob
    built = build(records[:stop], given, dim) if build is not None else None
    rows = []
    for k, record in enumerate(records[:stop]):
        if built is not None and built[k] is not None:
            rows.append(built[k])
            continue
        _check_fields(record)
        blob = given[k]
        if blob is not None:
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
