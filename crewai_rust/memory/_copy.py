"""``memory copy SRC DST``: move a memory between SQLite, LanceDB and PostgreSQL.

Why through the seam: rows are read with ``iter_rows`` and written with
``upsert`` of whichever backends SRC and DST name, so a copy keeps ids, scopes,
timestamps and embeddings bit for bit and each batch is one transaction. A
LanceDB table is read the way the first open of a store imports it, and written
with CrewAI's own ``LanceDBStorage``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._seam import RecordRow, RecordStore, is_url, open_record_store

logger = logging.getLogger("crewai_rust.memory")

_BATCH = 2_000


class CopyError(Exception):
    """The copy cannot start (nothing at SRC, records already at DST, different dimensions)."""


def _source(src: str, namespace: str | None) -> tuple[str, int | None, Iterator[list[RecordRow]], Any]:
    """(label, dimension, batches of rows, store to close or None)."""
    from ._lancedb_import import lancedb_table_present, read_lancedb, split_rows
    from ._persistence import DB_FILENAME

    if is_url(src):
        from ._pg_persistence import store_exists

        if not store_exists(src, namespace):
            from .._postgres import redact

            raise CopyError(f"no crewai_rust memory store at {redact(src)}")
        store = open_record_store(src, namespace)
        return store.location, store.get_dim(), store.iter_rows(_BATCH), store
    path = Path(src)
    if (path / DB_FILENAME).exists():
        store = open_record_store(path)
        return store.location, store.get_dim(), store.iter_rows(_BATCH), store
    if lancedb_table_present(path):
        broken: dict[str, str] = {}
        rows, dim = read_lancedb(path, broken=broken)
        if not rows:
            return f"{path} (LanceDB)", dim, iter(()), None
        dim = dim or len(rows[0].embedding) // 4
        good, bad = split_rows(rows, dim, broken)
        if bad:
            logger.warning("crewai_rust memory: %d LanceDB records cannot be read back and are not copied", len(bad))
        return f"{path} (LanceDB)", dim, iter([good[i : i + _BATCH] for i in range(0, len(good), _BATCH)]), None
    raise CopyError(f"no crewai_rust memory store and no LanceDB memory table in {path}")


def _write_lancedb(dst: Path, batches: Iterator[list[RecordRow]], merge: bool) -> tuple[int, int]:
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from ._records import from_row

    lance = LanceDBStorage(path=str(dst))
    if lance.count() and not merge:
        raise CopyError(f"the LanceDB table in {dst} already holds {lance.count()} records (use --merge)")
    copied = 0
    for batch in batches:
        lance.save([from_row((r.id, r.content, r.scope, r.categories, r.metadata, r.importance, r.created_at,
                              r.last_accessed, r.source, r.private, r.embedding)) for r in batch])
        copied += len(batch)
    return copied, lance.count()


def _write_store(dst: RecordStore, dim: int | None, batches: Iterator[list[RecordRow]], merge: bool) -> tuple[int, int]:
    held = dst.count(None)
    if held and not merge:
        raise CopyError(f"{dst.location} already holds {held} records (use --merge to add to them)")
    stored = dst.get_dim()
    if dim is not None and stored is not None and stored != dim:
        raise CopyError(f"{dst.location} holds {stored}-dimensional embeddings; the source has {dim}")
    copied = 0
    for batch in batches:
        if not batch:
            continue
        assert dim is not None  # a store with rows has a dimension
        got = dst.upsert(batch, dim)
        if got != dim:
            raise CopyError(f"{dst.location} holds {got}-dimensional embeddings; the source has {dim}")
        copied += len(batch)
    return copied, dst.count(None)


def copy_store(src: str, dst: str, *, src_namespace: str | None = None, dst_namespace: str | None = None,
               lancedb: bool = False, merge: bool = False) -> str:
    """Copy every record of SRC into DST; returns the one-line summary the CLI prints."""
    label, dim, batches, source = _source(src, src_namespace)
    try:
        if lancedb:
            if is_url(dst):
                raise CopyError("--lancedb writes a directory, not a URL")
            copied, now = _write_lancedb(Path(dst), batches, merge)
            where = f"{dst} (LanceDB)"
        else:
            target = open_record_store(dst if is_url(dst) else Path(dst), dst_namespace)
            try:
                if target.location == label:
                    raise CopyError("SRC and DST are the same store")
                copied, now = _write_store(target, dim, batches, merge)
                where = target.location
            finally:
                target.close()
    finally:
        if source is not None:
            source.close()
    return f"copied {copied} records from {label} to {where} ({now} records there now)"
