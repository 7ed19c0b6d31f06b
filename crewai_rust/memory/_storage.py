"""``RustMemoryStorage``: CrewAI's ``StorageBackend`` on SQLite or PostgreSQL plus an exact in-RAM scan.

The database is the source of truth (a directory's SQLite file, or a
``postgresql://`` URL, chosen behind the seam in ``_seam``); the
:class:`VectorIndex` mirrors it and is brought up to date from the change log
before every read, so several processes (or machines) can share one store. Scope, category and metadata filters are applied inside
the scan, so a search returns ``min(limit, matching)`` hits.
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

import numpy as np

from .._selection import implementation_name, speedups_module
from .._selection import use_rust as resolve_use_rust
from . import _rerank
from ._index import VectorIndex
from ._kernels import THREADS_ENV, KernelSet, exact_top, exact_top_many, shadow_mode
from ._seam import RecordStore, is_url, open_record_store
from ._snapshot import SnapshotKeeper, SnapshotSettings, describe
from ._records import (
    BatchEncoder,
    Encoder,
    batch_dimension,
    encode_many_python,
    encode_python,
    dimension_error,
    from_row,
    memory_types,
    rust_batch_encoder,
    rust_encoder,
    to_micros,
    to_rows,
    utc_now_iso,
    vector_f32,
)

logger = logging.getLogger("crewai_rust.memory")

#: LanceDB's default when the first save carries no embedding at all.
DEFAULT_VECTOR_DIM = 3072
_METRICS = {"l2": _rerank.METRIC_L2, "cosine": _rerank.METRIC_COSINE}

__all__ = ["THREADS_ENV", "MemoryStoreClosedError", "RustMemoryStorage", "default_memory_dir"]


class MemoryStoreClosedError(RuntimeError):
    """An operation on a store after ``close()``."""


def default_memory_dir() -> Path:
    """Where CrewAI's default LanceDB store lives: ``$CREWAI_STORAGE_DIR/memory`` or the data dir."""
    storage_dir = os.environ.get("CREWAI_STORAGE_DIR")
    if storage_dir:
        return Path(storage_dir) / "memory"
    from crewai_core.paths import db_storage_path

    return Path(db_storage_path()) / "memory"




def _normalised(prefix: str | None) -> str | None:
    """LanceDB's listing normalisation: no trailing slash, a leading one; None for the root."""
    if prefix is None or not prefix.strip("/"):
        return None
    prefix = prefix.rstrip("/")
    return prefix if prefix.startswith("/") else "/" + prefix


class RustMemoryStorage:
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
        self._encode: Encoder = rust_encoder(module) if module is not None else encode_python
        self._encode_many: BatchEncoder = rust_batch_encoder(module) if module is not None else encode_many_python
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
        self._seen = 0
        self._snapshots: SnapshotKeeper | None = None
        try:
            settings = SnapshotSettings.resolve(snapshot, snapshot_dir, snapshot_after)
            if settings.enabled:
                self._snapshots = SnapshotKeeper(self._store, settings, self._lock)
            if import_lancedb and self.path is not None:
                from ._lancedb_import import import_if_present

                import_if_present(self)
            self._reload()
        except BaseException:
            self._store.close()
            raise
        self._store.watch(_hint_for(weakref.ref(self)))

    # -- bookkeeping -----------------------------------------------------------------
    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._index.n} records"
        return f"RustMemoryStorage({self.location!r}, metric={self.metric!r}, {self.implementation}, {state})"

    @property
    def location(self) -> str:
        """The database file, or the PostgreSQL URL (password redacted) and namespace."""
        return self._store.location

    @property
    def db_path(self) -> Path | str:
        """The SQLite file (a Path); for PostgreSQL, :attr:`location`."""
        return getattr(self._store, "path", None) or self._store.location

    @property
    def vector_dim(self) -> int | None:
        """The store's embedding size (None until the first save when not declared)."""
        return self._store.get_dim() or self._declared_dim

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise MemoryStoreClosedError(f"RustMemoryStorage at {self.location} is closed")

    def _reload(self) -> None:
        """Rebuild the index: from the vector snapshot plus the log after its stamp, else from the database."""
        keeper = self._snapshots
        if keeper is not None:
            stamp = keeper.restore(self._index, self._store)
            if stamp is not None:
                self._set_seen(stamp)
                keeper.replayed(self._sync(after_restore=True))
                self._snapshot_if_due()
                return
        self._load_all()

    def _load_all(self) -> None:
        keeper = self._snapshots
        head, count, batches = self._store.load_index_rows()
        dim = self._store.get_dim()
        bad: list[tuple[str, str]] = []
        try:
            self._index.load(count, (_readable(rows, dim, bad) for rows in batches), dim)
        finally:
            batches.close()  # ends the read snapshot even when loading failed
        self._set_seen(head)
        if keeper is not None:
            keeper.full_load(self._index.n)
        if bad:
            self._quarantine(bad)
        self._snapshot_if_due()

    def _snapshot_if_due(self) -> None:
        """Write a snapshot in the background once enough changes are not in the file (lock held)."""
        keeper = self._snapshots
        if keeper is not None and keeper.due():
            keeper.start(self._index, self._seen)

    def save_snapshot(self) -> bool:
        """Write the vector snapshot now and wait for it (before a planned shutdown, say); False when off."""
        keeper = self._snapshots
        if keeper is None:
            self._check_open()
            return False
        while True:
            keeper.wait()
            with self._lock:
                self._check_open()
                self._sync()
                if self._index.dim is None or keeper.closing:
                    return False
                job = keeper.begin(self._index, self._seen, force=True)
            if job is not None:
                return keeper.finish(self._index, job)  # written outside the lock: searches go on

    @property
    def snapshot_stats(self) -> dict[str, Any]:
        """What the vector snapshot did in this process: restored, replayed, rejected, written."""
        return describe(self._snapshots)

    def _set_seen(self, head: int) -> None:
        self._seen = head
        with self._changed:
            self._changed.notify_all()

    def _quarantine(self, bad: list[tuple[str, str]]) -> None:
        """Move unreadable rows aside (one WARNING each); the index already skipped them."""
        from ._quarantine import warn

        for record_id, reason in bad:
            warn(record_id, reason, self.location)
        self._store.quarantine(bad)
        self._sync()

    def _sync(self, trusted: dict[str, bytes] | None = None, after_restore: bool = False) -> int:
        """Apply the deltas committed (by any process) since this process last looked; the entries applied.

        ``trusted``: id -> embedding bytes of the rows this process has just validated and
        written; a row carrying exactly that bytes object skips the read-back check.
        ``after_restore``: replaying the log tail past a snapshot's stamp at open.
        """
        changes = self._store.changes_since(self._seen, after_own_write=trusted is not None)
        if changes.stale:
            if after_restore and self._snapshots is not None:
                self._snapshots.outdated()  # the log was trimmed past the snapshot's stamp
                self._load_all()
            else:
                self._reload()
            return 0
        if changes.head <= self._seen:
            return 0
        applied = changes.head - self._seen
        index = self._index
        if changes.reset:
            index.clear(None)
        for record_id in changes.deleted:
            index.remove(record_id)
        bad: list[tuple[str, str]] = []
        index.upsert_many(_readable(changes.upserted, index.dim or self._store.get_dim(), bad, trusted))
        self._set_seen(changes.head)
        if bad:  # written by another process that skipped validation
            for record_id, _ in bad:
                index.remove(record_id)
            self._quarantine(bad)
        if self._snapshots is not None and not after_restore:
            self._snapshots.applied(applied)
            self._snapshot_if_due()
        return applied

    def _on_hint(self) -> None:
        """Another process may have committed (a LISTEN wake-up): catch up now.

        Waits for a caller holding the store (a search that read the head just before the
        commit would otherwise leave the write unapplied until the next read), in short
        slices so that ``close()`` never waits on this thread.
        """
        while not self._closed:
            if self._lock.acquire(timeout=0.05):
                try:
                    if not self._closed:
                        self._sync()
                finally:
                    self._lock.release()
                return

    @property
    def applied_change(self) -> int:
        """The change number this process's index is up to date with."""
        return self._seen

    def wait_for_change(self, after: int, timeout: float | None = None) -> bool:
        """Block until the index applied a change numbered above ``after`` (True) or ``timeout`` passed.

        On PostgreSQL another process's commit wakes the background catch-up (LISTEN), so
        a process can wait for new memories without polling; SQLite has no wake-up: there
        only this process's own reads and writes move the number.
        """
        with self._changed:
            return self._changed.wait_for(lambda: self._seen > after or self._closed, timeout)

    def refresh(self) -> None:
        """Pick up other processes' writes now (reads do this on their own)."""
        with self._lock:
            self._check_open()
            self._sync()

    # -- writes ------------------------------------------------------------------------
    def save(self, records: list[Any]) -> None:
        """Insert or replace records by id in one transaction; all validated before anything is written.

        The batch is encoded in one call (the Rust twin's ``embeddings_f32_bytes_many``)
        and lands in the index as block writes. The store's size is known from the
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
            rows = to_rows(records, dim, self._encode_many)
            stored_now = self._store.upsert(rows, dim)
            if stored_now != dim:  # another process fixed a different size meanwhile
                raise dimension_error(stored_now, dim)
            self._sync({r.id: r.embedding for r in rows})

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
            scope = _normalised(scope_prefix)
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
                    return _matches(cat_json, meta_json, categories, metadata_filter)
            deleted = self._store.delete_matching(scope, older_us, keep, ids)
            self._sync()
            return deleted

    def reset(self, scope_prefix: str | None = None) -> None:
        """Delete everything (and forget the dimension), or everything in a scope and its subscopes."""
        with self._lock:
            self._check_open()
            prefix = _normalised(scope_prefix)
            if prefix is None:
                self._store.reset_all()
            else:
                self._store.delete_matching(prefix)  # one transaction: a concurrent move survives
            self._sync()

    # -- search ------------------------------------------------------------------------
    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[Any, float]]:
        """Exact nearest records, best first; filters applied inside the scan."""
        with self._lock:
            self._check_open()
            self._sync()
            index = self._index
            dim = index.dim or self.vector_dim
            if dim is None:
                return []
            query = vector_f32(query_embedding, "query embedding")
            if len(query) != dim:
                raise dimension_error(dim, len(query))
            if limit <= 0 or index.n == 0:
                return []
            rows = index.select_rows(_normalised(scope_prefix), categories, metadata_filter)
            if rows is not None and len(rows) == 0:
                return []
            ranked, scores = exact_top(self._kernels, index, query, rows, limit, self._metric_code)
            hits = [(index.ids[r], float(s)) for r, s in zip(ranked.tolist(), scores.tolist()) if s >= min_score]
            hits = hits[:limit]
            found = self._store.fetch([rid for rid, _ in hits])
        return [(from_row(found[rid]), score) for rid, score in hits if rid in found]

    def search_many(
        self,
        query_embeddings: Sequence[list[float]],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[list[tuple[Any, float]]]:
        """:meth:`search` for each query (same filters), the batch scored in one pass over the vectors."""
        with self._lock:
            self._check_open()
            self._sync()
            index = self._index
            dim = index.dim or self.vector_dim
            if dim is None:
                return [[] for _ in query_embeddings]
            queries = [vector_f32(q, "query embedding") for q in query_embeddings]
            for query in queries:
                if len(query) != dim:
                    raise dimension_error(dim, len(query))
            if limit <= 0 or index.n == 0 or not queries:
                return [[] for _ in queries]
            rows = index.select_rows(_normalised(scope_prefix), categories, metadata_filter)
            if rows is not None and len(rows) == 0:
                return [[] for _ in queries]
            batch = np.ascontiguousarray(np.stack(queries), dtype=np.float32)
            answers = exact_top_many(self._kernels, index, batch, rows, limit, self._metric_code)
            per_query = [
                [(index.ids[r], float(sc)) for r, sc in zip(ranked.tolist(), scores.tolist()) if sc >= min_score][:limit]
                for ranked, scores in answers
            ]
            found = self._store.fetch(sorted({rid for hits in per_query for rid, _ in hits}))
        return [[(from_row(found[rid]), score) for rid, score in hits if rid in found] for hits in per_query]

    # -- reads -------------------------------------------------------------------------
    def get_record(self, record_id: str) -> Any:
        """The record with this id, or None."""
        self._check_open()
        found = self._store.fetch([str(record_id)])
        row = found.get(str(record_id))
        return None if row is None else from_row(row)

    def list_records(self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0) -> list[Any]:
        """Records in a scope, newest first (ties: last inserted first)."""
        self._check_open()
        if limit <= 0 or offset < 0:
            return []
        return [from_row(r) for r in self._store.list_rows(_normalised(scope_prefix), limit, offset)]

    def get_scope_info(self, scope: str) -> Any:
        """Record count, categories, date range and immediate children of a scope."""
        self._check_open()
        scope = scope.rstrip("/") or "/"
        prefix = _normalised(scope)
        ScopeInfo = memory_types().ScopeInfo
        count, oldest, newest = self._store.scope_summary(prefix)
        if not count or oldest is None or newest is None:
            return ScopeInfo(path=scope, record_count=0, categories=[], child_scopes=[])
        cats: set[str] = set()
        for cat_json, _ in self._store.category_counts(prefix):
            cats.update(_json_list(cat_json))
        child_prefix = (prefix + "/") if prefix else "/"
        children = set()
        for sc in self._store.distinct_scopes(prefix):
            if sc.startswith(child_prefix):
                first = sc[len(child_prefix) :].split("/", 1)[0]
                if first:
                    children.add(child_prefix + first)
        return ScopeInfo(
            path=scope,
            record_count=int(count),
            categories=sorted(cats),
            oldest_record=datetime.fromisoformat(oldest),
            newest_record=datetime.fromisoformat(newest),
            child_scopes=sorted(children),
        )

    def list_scopes(self, parent: str = "/") -> list[str]:
        """Immediate child scope paths under ``parent``."""
        self._check_open()
        parent = parent.rstrip("/") or ""
        prefix = (parent + "/") if parent else "/"
        children = set()
        for sc in self._store.distinct_scopes(prefix.rstrip("/") or None):
            if sc.startswith(prefix) and sc != (prefix.rstrip("/") or "/"):
                first = sc[len(prefix) :].split("/", 1)[0]
                if first:
                    children.add(prefix + first)
        return sorted(children)

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        """Category -> number of records carrying it, within a scope."""
        self._check_open()
        counts: dict[str, int] = {}
        for cat_json, n in self._store.category_counts(_normalised(scope_prefix)):
            for c in _json_list(cat_json):
                counts[c] = counts.get(c, 0) + int(n)
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        """Records in a scope and its subscopes (all when None)."""
        self._check_open()
        return self._store.count(_normalised(scope_prefix))

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

    async def asearch(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[Any, float]]:
        return self.search(query_embedding, scope_prefix, categories, metadata_filter, limit, min_score)

    async def adelete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        return self.delete(scope_prefix, categories, record_ids, older_than, metadata_filter)


def _hint_for(ref: "weakref.ref[RustMemoryStorage]") -> Callable[[], bool]:
    """The wake-up callback, holding the store weakly so a dropped store can still be collected."""

    def hint() -> bool:
        store = ref()
        if store is None or store.closed:
            return False
        store._on_hint()
        return True

    return hint


def _readable(
    rows: list[Any], dim: int | None, bad: list[tuple[str, str]], trusted: dict[str, bytes] | None = None
) -> list[Any]:
    """The index rows that can be read back; the others are appended to ``bad`` as (id, reason).

    Rows in ``trusted`` (this process validated them before writing: same id, the very
    same embedding object) are not checked again.
    """
    from ._quarantine import problem

    good = []
    for row in rows:
        if trusted is not None and trusted.get(row[1]) is row[5]:
            good.append(row)
            continue
        reason = problem(row[1], row[3], row[4], row[5], dim)
        if reason is None:
            good.append(row)
        else:
            bad.append((row[1], reason))
    return good


def _json_list(text: str) -> list[str]:
    from ._quarantine import load_stored

    try:
        value = load_stored(text or "[]")
    except ValueError:
        return []
    return list(value) if isinstance(value, list) else []


def _matches(cat_json: str, meta_json: str, categories: list[str] | None, metadata_filter: dict[str, Any] | None) -> bool:
    from ._quarantine import load_stored

    if categories:
        have = _json_list(cat_json)
        if not any(c in have for c in categories):
            return False
    if metadata_filter:
        meta = load_stored(meta_json or "{}")
        if not isinstance(meta, dict) or not all(meta.get(k) == v for k, v in metadata_filter.items()):
            return False
    return True
