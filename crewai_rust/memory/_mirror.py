"""The in-RAM index kept in step with the database: full load, snapshot restore, change-log catch-up.

Split out of ``_storage`` (one concern: what the index holds and when it is brought up to
date); :class:`RustMemoryStorage` inherits :class:`IndexMirror`, so the state stays the store's
own attributes. The database is the source of truth: before every read the index applies the
deltas any process committed since this one last looked.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from ._index import VectorIndex
from ._seam import ChangeSet, RecordStore
from ._snapshot import SnapshotKeeper, describe


class MemoryStoreClosedError(RuntimeError):
    """An operation on a store after ``close()``."""


class IndexMirror:
    """The index-mirror part of :class:`~crewai_rust.memory.RustMemoryStorage` (a mixin: it sets up nothing)."""

    _store: RecordStore
    _index: VectorIndex
    _declared_dim: int | None
    _lock: threading.RLock
    _changed: threading.Condition  # notified when ``_seen`` moves
    _closed: bool
    _seen: int
    _snapshots: SnapshotKeeper | None

    @property
    def location(self) -> str:
        """The database file, or the PostgreSQL URL (password redacted) and namespace."""
        return self._store.location

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
            # the file's float16 shadow is taken where this store keeps one (it costs nothing then)
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
            self._index.load(count, (readable(rows, dim, bad) for rows in batches), dim)
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
        bad = self._apply(changes, self._index.dim or self._store.get_dim(), trusted)
        return self._applied(changes.head, bad, after_restore)

    def _apply(self, changes: ChangeSet, dim: int | None, trusted: dict[str, bytes] | None) -> list[tuple[str, str]]:
        """The index's part of a catch-up, with no database access (a save runs it beside its COMMIT,
        on the ``_beside`` helper); returns the rows that could not be read back, as (id, reason)."""
        index = self._index
        if changes.reset:
            index.clear(None)
        for record_id in changes.deleted:
            index.remove(record_id)
        bad: list[tuple[str, str]] = []
        index.upsert_many(readable(changes.upserted, dim, bad, trusted))
        return bad

    def _applied(self, head: int, bad: list[tuple[str, str]], after_restore: bool = False) -> int:
        """The bookkeeping after :meth:`_apply` brought the index to change ``head``; the entries applied."""
        applied = head - self._seen
        self._set_seen(head)
        if bad:  # written by another process that skipped validation
            for record_id, _ in bad:
                self._index.remove(record_id)
            self._quarantine(bad)
        if self._snapshots is not None and not after_restore:
            self._snapshots.applied(applied)
            self._snapshot_if_due()
        return applied

    def _on_hint(self, head: int | None = None) -> None:
        """A process may have committed (a LISTEN wake-up announcing change ``head``): catch up now.

        Waits for a caller holding the store (a search that read the head just before the
        commit would otherwise leave the write unapplied until the next read), in short
        slices so that ``close()`` never waits on this thread. A wake-up for changes this
        index has applied already (this process's own saves: each applies its rows itself)
        costs no read; ``head`` None (after a reconnect) always reads.
        """
        while not self._closed:
            if self._lock.acquire(timeout=0.05):
                try:
                    if not self._closed and (head is None or head > self._seen):
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


def hint_for(ref: "weakref.ref[IndexMirror]") -> Callable[[int | None], bool]:
    """The wake-up callback, holding the store weakly so a dropped store can still be collected."""

    def hint(head: int | None = None) -> bool:
        store = ref()
        if store is None or store.closed:
            return False
        store._on_hint(head)
        return True

    return hint


def readable(
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
