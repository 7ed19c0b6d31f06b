"""The persistence seam: what ``RustMemoryStorage`` asks of durable storage, and where a target goes.

Why a seam: the in-RAM index, the kernels, the filters and the scores are the
same whatever holds the records. Each backend (SQLite in ``_persistence``,
PostgreSQL in ``_pg_persistence``) implements :class:`RecordStore`; its methods
say what is wanted (rows of a scope, a delete of matching records), never how,
so no SQL crosses it. :func:`open_record_store` is the one place a path or a
URL picks the backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

IndexRow = tuple[int, str, str, str, str, bytes]  # seq, id, scope, categories, metadata, embedding
#: A full stored row: id, content, scope, categories, metadata, importance, created_at,
#: last_accessed, source, private, embedding, seq (what ``_records.from_row`` reads).
FullRow = tuple[Any, ...]
#: ``keep(categories_json, metadata_json)``: a delete's filter on the JSON columns.
Keep = Callable[[str, str], bool]


class RecordRow(NamedTuple):
    """One record as stored: JSON columns still encoded, the embedding as float32 bytes.

    A named tuple in the order of the ``records`` columns, so a save binds it as it is
    (a frozen dataclass cost 1.3 µs per row to build and another pass to turn into a tuple).
    """

    id: str
    content: str
    scope: str
    categories: str
    metadata: str
    importance: float
    created_at: str
    created_us: int
    last_accessed: str
    source: str | None
    private: bool
    embedding: bytes


@dataclass(frozen=True)
class ChangeSet:
    """What changed since a change number: ``reset`` first, then upserts and deletes."""

    head: int
    reset: bool
    upserted: list[IndexRow]
    deleted: list[str]
    stale: bool = False  # the log was trimmed past the reader: reload everything


class RecordStore(Protocol):
    """Durable storage behind one memory store. Scopes are paths: ``/a`` holds ``/a`` and ``/a/…``, never ``/ab``.

    ``scope=None`` means every record. Change numbers follow commit order, so a
    reader that applied everything up to ``n`` needs only ``changes_since(n)``;
    right after its own ``upsert``, ``changes_since(n, after_own_write=True)`` may hand
    back the rows just written without reading them (the next call reads the rest).
    """

    #: where the records live, for messages (a file path, or a URL without its secret)
    location: str

    # change log
    def head(self) -> int: ...
    def changes_since(self, seq: int, after_own_write: bool = False) -> ChangeSet: ...
    def load_index_rows(self, batch: int = ...) -> tuple[int, int, Generator[list[IndexRow], None, None]]: ...

    # store settings
    def get_dim(self) -> int | None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def delete_meta(self, key: str) -> None: ...

    # writes
    def upsert(
        self, rows: Sequence[RecordRow], dim: int, meta: dict[str, str] | None = ...,
        quarantined: Sequence[tuple[RecordRow, str]] = ...,
    ) -> int: ...
    def delete_ids(self, ids: Sequence[str]) -> int: ...
    def delete_matching(
        self, scope: str | None, older_than_us: int | None = ..., keep: Keep | None = ...,
        ids: Sequence[str] | None = ...,
    ) -> int: ...
    def reset_all(self) -> None: ...
    def touch(self, ids: Sequence[str], when: str) -> None: ...

    # quarantine
    def quarantine(self, bad: Sequence[tuple[str, str]]) -> int: ...
    def quarantined(self) -> list[tuple[Any, ...]]: ...
    def restore(self, qid: int, categories: str, metadata: str) -> bool: ...

    # reads
    def fetch(self, ids: Sequence[str]) -> dict[str, FullRow]: ...
    def list_rows(self, scope: str | None, limit: int, offset: int) -> list[FullRow]: ...
    def count(self, scope: str | None) -> int: ...
    def scope_summary(self, scope: str | None) -> tuple[int, str | None, str | None]: ...
    def distinct_scopes(self, scope: str | None) -> list[str]: ...
    def category_counts(self, scope: str | None) -> list[tuple[str, int]]: ...
    def iter_rows(self, batch: int = ...) -> Generator[list[RecordRow], None, None]: ...
    def file_size(self) -> int: ...

    # lifecycle
    def watch(self, callback: Callable[[int | None], bool | None]) -> None: ...
    def close(self) -> None: ...


def is_url(target: object) -> bool:
    """True when ``target`` names a server rather than a directory."""
    from .._postgres import is_postgres_url

    return is_postgres_url(target)


def open_record_store(target: str | os.PathLike[str], namespace: str | None = None) -> RecordStore:
    """The backend for a directory (SQLite) or a ``postgresql://`` URL (PostgreSQL, schema ``namespace``)."""
    if is_url(target):
        from ._pg_persistence import PostgresRecordStore

        return PostgresRecordStore(str(target), namespace)
    if namespace is not None:
        raise ValueError("namespace applies to PostgreSQL stores only; a directory is its own namespace")
    from ._persistence import SQLiteRecordStore

    return SQLiteRecordStore(target)
