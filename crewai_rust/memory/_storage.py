"""``RustMemoryStorage``: CrewAI's ``StorageBackend`` on SQLite or PostgreSQL plus an exact in-RAM scan.

The database is the source of truth (a directory's SQLite file, or a
``postgresql://`` URL, chosen behind the seam in ``_seam``); the
:class:`VectorIndex` mirrors it and is brought up to date from the change log
before every read, so several processes (or machines) can share one store. Scope, category and metadata filters are applied inside
the scan, so a search returns ``min(limit, matching)`` hits.

This module holds the store's set-up, writes and lifecycle; its other concerns live beside it,
one module each: keeping the index in step (``_mirror``), searching it (``_search``), listing
what the database holds (``_listing``) and the scope/category/metadata filters (``_filters``).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .._selection import implementation_name, speedups_module
from .._selection import use_rust as resolve_use_rust
from . import _rerank
from ._filters import matches, normalised
from ._index import VectorIndex
from ._kernels import THREADS_ENV, KernelSet, shadow_mode
from ._listing import RecordListing
from ._mirror import MemoryStoreClosedError, hint_for
from ._records import (
    BatchEncoder,
    Encoder,
    batch_encoder,
    RowBuilder,
    batch_dimension,
    dimension_error,
    encoder,
    rust_row_builder,
    to_micros,
    to_rows,
    utc_now_iso,
)
from ._search import IndexSearch
from ._seam import ChangeSet, RecordStore, is_url, open_record_store
from ._snapshot import SnapshotKeeper, SnapshotSettings, compiled_block_sums, describe

logger = logging.getLogger("crewai_rust.memory")

#: LanceDB's default when the first save carries no embedding at all.
DEFAULT_VECTOR_DIM = 3072
_METRICS = {"l2": _rerank.METRIC_L2, "cosine": _rerank.METRIC_COSINE}

__all__ = ["THREADS_ENV", "MemoryStoreClosedError", "RustMemoryStorage", "default_memory_dir"]


def default_memory_dir() -> Path:
    """Where CrewAI's default LanceDB store lives: ``$CREWAI_STORAGE_DIR/memory`` or the data dir."""
    storage_dir = os.environ.get("CREWAI_STORAGE_DIR")
    if storage_dir:
        return Path(storage_dir) / "memory"
    from crewai_core.paths import db_storage_path

    return Path(db_storage_path()) / "memory"


class RustMemoryStorage(IndexSearch, RecordListing):
    """A persistent, exact, multi-process memory backend for CrewAI's unified ``Memory``.

    Args:
        path: directory of the store; None uses CrewAI's default memory directory.
            The database file is ``crewai_rust_memory.sqlite3`` there, beside any LanceDB files.
            A ``postgresql://`` string here is taken as ``url``.
        vector_dim: embedding size; None fixes it at the first save (as LanceDB does).
        metric: ``"l2"`` (score ``1 / (1 + squared L2)``, LanceDB's scale) or ``"cosine"``.
        use_rust: True/False/None (auto) for the compiled search kernel and embedding encoder.
        import_lancedb: on the first open, import CrewAI's LanceDB memory table found in ``path``.
        url: a ``postgresql://`` URL: the records live in that database instead of a file.
        namespace: with ``url``, the schema holding this store (tenants share a database
            with one namespace each); default ``crewai_memory``.
        shadow: keep a float16 copy of the vectors for the exact half-traffic scan; None = auto
            (``CREWAI_RUST_MEMORY_SHADOW``: on where it can pay, with the compiled kernels).
        snapshot: open from a memory-mapped vector snapshot and keep it fresh in the background;
            None = ``CREWAI_RUST_MEMORY_SNAPSHOT`` (default on). See ``_snapshot``.
        snapshot_dir: where snapshots go; None = beside the SQLite file, and for PostgreSQL
            ``CREWAI_RUST_MEMORY_SNAPSHOT_DIR`` or the user cache dir.
        snapshot_after: changes before a new snapshot is written (``CREWAI_RUST_MEMORY_SNAPSHOT_AFTER``, 1000).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        vector_dim: int | None = None,
        metric: str = "l2",
        use_rust: bool | None = None,
        import_lancedb: bool = True,
        shadow: bool | None = None,
        *,
        url: str | None = None,
        namespace: str | None = None,
        snapshot: bool | None = None,
        snapshot_dir: str | os.PathLike[str] | None = None,
        snapshot_after: int | None = None,
    ) -> None:
        if is_url(path):
            if url is not None:
                raise ValueError("give the PostgreSQL URL once: as path or as url, not both")
            url, path = str(path), None
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
        if vector_dim is not None and (not isinstance(vector_dim, int) or vector_dim <= 0):
            raise ValueError(f"vector_dim must be a positive integer, got {vector_dim!r}")
        self._rust = resolve_use_rust(use_rust)
        self.implementation = implementation_name(self._rust)
        module = speedups_module() if self._rust else None
        self._kernels = KernelSet(module, shadow_mode(shadow))
        self._encode: Encoder = encoder(self._rust)
        self._encode_many: BatchEncoder = batch_encoder(self._rust)
        self._build_rows: RowBuilder | None = rust_row_builder(module) if module is not None else None
        self.metric = metric
        self._metric_code = _METRICS[metric]
        target: str | Path
        if url is not None:
            if path is not None:
                raise ValueError("give a directory (path) or a PostgreSQL url, not both")
            self.path: Path | None = None
            target = url
        else:
            self.path = target = Path(path) if path is not None else default_memory_dir()
        self._declared_dim = vector_dim
        self._lock = threading.RLock()
        self._changed = threading.Condition(threading.Lock())  # notified when ``_seen`` moves
        self._closed = False
        self._shared = False  # set by the activation factory: Memory.close() must not close it
        self._store: RecordStore = open_record_store(target, namespace)
        self._index = VectorIndex()
        self._index.shadow_builder = self._kernels.shadow_rows  # a shadow restored from a snapshot grows with it
        self._seen = 0
        #: a save's index update ran beside its COMMIT and has not finished (see ``save``)
        self._index_touched = False
        self._snapshots: SnapshotKeeper | None = None
        try:
            settings = SnapshotSettings.resolve(snapshot, snapshot_dir, snapshot_after)
            if settings.enabled:
                self._snapshots = SnapshotKeeper(
                    self._store, settings, self._lock, self._kernels.wants_shadow, self._kernels.shadow_rows,
                    None if module is None else compiled_block_sums(module), self._kernels.shadow_can_wait)
            if import_lancedb and self.path is not None:
                from ._lancedb_import import import_if_present

                import_if_present(self)
            self._reload()
        except BaseException:
            self._store.close()
            raise
        self._store.watch(hint_for(weakref.ref(self)))

    # -- bookkeeping -----------------------------------------------------------------
    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._index.n} records"
        return f"RustMemoryStorage({self.location!r}, metric={self.metric!r}, {self.implementation}, {state})"

    @property
    def db_path(self) -> Path | str:
        """The SQLite file (a Path); for PostgreSQL, :attr:`location`."""
        return getattr(self._store, "path", None) or self._store.location

    # -- writes ------------------------------------------------------------------------
    def save(self, records: list[Any]) -> None:
        """Insert or replace records by id in one transaction; all validated before anything is written.

        The batch is encoded in one call (the Rust twin's ``embeddings_f32_bytes_many``)
        and lands in the index as block writes, on the ``_beside`` helper while SQLite's
        COMMIT runs (see :meth:`_index_beside_commit`). The store's size is known from the
        index; the database is asked only when the index has none or disagrees, and the
        write itself re-checks it under the store's lock (another process may differ).
        """
        if not records:
            return
        with self._lock:
            self._check_open()
            dim = batch_dimension(records)
            stored = self._index.dim
            if stored is None or dim is None or dim != stored:
                stored = self._store.get_dim() or self._declared_dim
            if stored is not None and dim is not None and dim != stored:
                raise dimension_error(stored, dim)
            dim = dim or stored or self._declared_dim or DEFAULT_VECTOR_DIM
            rows = to_rows(records, dim, self._encode_many, self._build_rows)
            trusted = {r.id: r.embedding for r in rows}
            if not getattr(self._store, "OVERLAPS_COMMIT", False):
                stored_now = self._store.upsert(rows, dim)
                if stored_now != dim:  # another process fixed a different size meanwhile
                    raise dimension_error(stored_now, dim)
                self._sync(trusted)
                return
            done: list[tuple[int, list[tuple[str, str]]]] = []
            beside = self._index_beside_commit(dim, trusted, done)
            upsert: Any = self._store.upsert  # a store with OVERLAPS_COMMIT takes ``beside_commit`` (SQLite's)
            try:
                stored_now = upsert(rows, dim, beside_commit=beside)
            except BaseException:
                if done or self._index_touched:
                    self._index_touched = False
                    self._reload()  # the index took rows the COMMIT then refused: the database is the truth
                raise
            if stored_now != dim:
                raise dimension_error(stored_now, dim)
            if done:
                self._applied(done[0][0], done[0][1])
            else:
                self._sync(trusted)

    def _index_beside_commit(
        self, dim: int, trusted: dict[str, bytes], done: list[tuple[int, list[tuple[str, str]]]]
    ) -> Callable[[tuple[int, int, list[Any]]], Callable[[], None] | None]:
        """The job that puts a save's rows into the index while its COMMIT runs (``_beside``).

        Only for the common case, which needs no database read: the index was up to date
        right before this write (no other process committed in between) and already has
        its dimension. ``done`` gets (new head, unreadable rows) once the index holds them.
        """

        def beside(span: tuple[int, int, list[Any]]) -> Callable[[], None] | None:
            before, head, written = span
            if before != self._seen or self._index.dim != dim:
                return None  # the usual catch-up after the COMMIT reads what others wrote

            def job() -> None:
                self._index_touched = True
                bad = self._apply(ChangeSet(head, False, list(written), []), dim, trusted)
                done.append((head, bad))
                self._index_touched = False

            return job

        return beside

    def update(self, record: Any) -> None:
        """Replace the record with the same id (inserted when absent, like LanceDB)."""
        self.save([record])

    def touch_records(self, record_ids: list[str]) -> None:
        """Set ``last_accessed`` to now (Memory calls this on every recall)."""
        if not record_ids:
            return
        with self._lock:
            self._check_open()
            self._store.touch([str(r) for r in record_ids], utc_now_iso())

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        """Delete records matching every given criterion; no criterion deletes all. Returns the count."""
        with self._lock:
            self._check_open()
            scope = normalised(scope_prefix)
            older_us = None if older_than is None else to_micros(older_than)
            ids: list[str] | None = None
            if record_ids is not None:
                ids = [str(r) for r in record_ids]
                if not ids:
                    if not (scope_prefix or categories or older_than or metadata_filter):
                        return 0
                    ids = None
            keep = None
            if categories or metadata_filter:
                def keep(cat_json: str, meta_json: str) -> bool:
                    return matches(cat_json, meta_json, categories, metadata_filter)
            deleted = self._store.delete_matching(scope, older_us, keep, ids)
            self._sync()
            return deleted

    def reset(self, scope_prefix: str | None = None) -> None:
        """Delete everything (and forget the dimension), or everything in a scope and its subscopes."""
        with self._lock:
            self._check_open()
            prefix = normalised(scope_prefix)
            if prefix is None:
                self._store.reset_all()
            else:
                self._store.delete_matching(prefix)  # one transaction: a concurrent move survives
            self._sync()

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the database. Stores handed out by ``patch()`` stay open until ``unpatch()``."""
        if self._shared:
            return
        self._close_now()

    def _close_now(self) -> None:
        if self._snapshots is not None:
            self._snapshots.close()  # without the lock: a running write thaws under it
        with self._lock:
            if not self._closed:
                self._closed = True
                self._store.close()
                self._index.clear(None)
                with self._changed:
                    self._changed.notify_all()

    def stats(self) -> dict[str, Any]:
        """Records, dimension, scopes and file size (for ``python -m crewai_rust memory stats``)."""
        self._check_open()
        return {
            "path": str(self.db_path),
            "records": self.count(),
            "vector_dim": self.vector_dim,
            "metric": self.metric,
            "scopes": self._store.distinct_scopes(None),
            "file_bytes": self._store.file_size(),
            "implementation": self.implementation,
            "snapshot": describe(self._snapshots),
        }

    def _import_rows(
        self, rows: Sequence[Any], dim: int, meta: dict[str, str] | None = None, quarantined: Sequence[Any] = ()
    ) -> None:
        """Bulk insert of already-checked rows (the LanceDB import), with ``meta`` and ``quarantined`` in the same commit."""
        stored = self._store.upsert(list(rows), dim, meta, quarantined)
        if stored != dim:
            raise dimension_error(stored, dim)

    # -- async twins (the work is short and already thread-safe) ------------------------
    async def asave(self, records: list[Any]) -> None:
        self.save(records)

    async def adelete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        return self.delete(scope_prefix, categories, record_ids, older_than, metadata_filter)
