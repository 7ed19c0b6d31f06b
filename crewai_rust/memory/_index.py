"""The in-RAM side of the store: one contiguous float32 matrix plus what filters need.

Rows are kept in step with every committed write (delete = swap-remove, so the
matrix stays dense). With ``shadow=True`` a float16 copy of the matrix and its
per-row bound terms are kept in step too (the exact half-traffic scan). Scopes, category lists and metadata dicts are interned:
a filter is evaluated once per distinct value and gathered into a row mask,
instead of once per row in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from ._prefault import NextArrays, Prefault
from ._rerank import Shadow
from ._vector_py import shadow_rows
from ._quarantine import load_stored

if TYPE_CHECKING:
    from ._deferred_shadow import DeferredShadow

V = TypeVar("V")

_MIN_CAPACITY = 64
_MISSING = object()


class _Interner(Generic[V]):
    """Distinct values by key, each with a small integer code."""

    def __init__(self, parse: Callable[[str], V]) -> None:
        self._parse = parse
        self.codes: dict[str, int] = {}
        self.values: list[V] = []

    def code(self, key: str) -> int:
        code = self.codes.get(key)
        if code is None:
            code = self.codes[key] = len(self.values)
            self.values.append(self._parse(key))
        return code

    def table(self, predicate: Callable[[V], bool]) -> np.ndarray:
        """Boolean lookup table: entry ``c`` says whether value ``c`` passes."""
        return np.fromiter((predicate(v) for v in self.values), dtype=bool, count=len(self.values))


def _identity(s: str) -> str:
    return s


class VectorIndex:
    """Embeddings and filter columns of every stored record, row-aligned."""

    def __init__(self, dim: int | None = None, shadow: bool = False) -> None:
        self.shadow_enabled = shadow
        #: builds the shadow of float32 rows; the storage installs the Rust twin when it runs
        self.shadow_builder: Callable[[np.ndarray], Shadow] = shadow_rows
        #: searches served at a size that wants the shadow, before it was built (``_kernels.prepare``)
        self.searches_without_shadow = 0
        #: the snapshot writer's view of the index (``freeze``): the arrays it reads and how many rows
        self._frozen_by: Any = None
        self._frozen_arrays: dict[str, np.ndarray] = {}
        self._frozen_rows = 0
        #: populates the spare rows ahead of the next saves on a background thread (``_prefault``)
        self._prefault = Prefault()
        #: the doubled matrix (and shadow) the next grow copies into, prepared ahead (``_prefault``)
        self._next = NextArrays()
        self.clear(dim)

    def clear(self, dim: int | None = None) -> None:
        """Drop every row; ``dim`` may change (after a reset)."""
        self.dim = dim
        self.n = 0
        self._next.drop()
        cap = _MIN_CAPACITY
        self.matrix = np.zeros((cap, dim or 0), dtype=np.float32)
        self.sqnorms = np.zeros(cap, dtype=np.float32)
        self.seqs = np.zeros(cap, dtype=np.int64)
        self.scope_codes = np.zeros(cap, dtype=np.int32)
        self.category_codes = np.zeros(cap, dtype=np.int32)
        self.metadata_codes = np.zeros(cap, dtype=np.int32)
        self._clear_shadow(cap)
        #: a snapshot's shadow mapped at the open, taken over once checked (``_deferred_shadow``)
        self._deferred: DeferredShadow | None = None
        self.ids: list[str] = []
        self._row_of: dict[str, int] | None = {}
        self._selections: dict[str, Any] = {}  # filter key -> rows, until the next write
        self.scopes: _Interner[str] = _Interner(_identity)
        self.categories: _Interner[list[str]] = _Interner(lambda s: list(load_stored(s)))
        self.metadata: _Interner[dict[str, Any]] = _Interner(lambda s: dict(load_stored(s)))

    def __len__(self) -> int:
        return self.n

    @property
    def row_of(self) -> dict[str, int]:
        """id -> row; after :meth:`adopt` built on first use (hashing 100k ids is 10 ms of an open
        that a search never needs: it goes from rows to ids)."""
        row_of = self._row_of
        if row_of is None:
            row_of = self._row_of = dict(zip(self.ids, range(self.n)))
        return row_of

    @row_of.setter
    def row_of(self, value: dict[str, int]) -> None:
        self._row_of = value

    # -- float16 shadow ------------------------------------------------------------
    _SHADOW_COLUMNS = ("inv_scale", "shadow_norm", "shadow_err")

    def _clear_shadow(self, cap: int) -> None:
        width = (self.dim or 0) if self.shadow_enabled else 0
        rows = cap if self.shadow_enabled else 0
        self.halves = np.zeros((rows, width), dtype=np.float16)
        self.inv_scale = np.zeros(rows, dtype=np.float32)
        self.shadow_norm = np.zeros(rows, dtype=np.float32)
        self.shadow_err = np.zeros(rows, dtype=np.float32)

    def _shadow_set(self, start: int, block: np.ndarray) -> None:
        if not self.shadow_enabled:
            return
        end = start + len(block)
        halves, inv_scale, norm, err = self.shadow_builder(block)
        self.halves[start:end] = halves
        self.inv_scale[start:end] = inv_scale
        self.shadow_norm[start:end] = norm
        self.shadow_err[start:end] = err

    def set_shadow(self, on: bool) -> None:
        """Start (taking over a deferred snapshot shadow, or building it for the rows present) or
        stop keeping the float16 shadow."""
        if on == self.shadow_enabled:
            return
        deferred, self._deferred = self._deferred, None
        self.shadow_enabled = on
        self._clear_shadow(len(self.seqs))
        if not on:
            return
        built_from = 0
        if deferred is not None:
            ok = deferred.verdict()
            if ok:
                built_from = self._take_shadow(deferred)
            deferred.report(ok)
        for start in range(built_from, self.n, 4096):
            self._shadow_set(start, self.matrix[start : min(start + 4096, self.n)])

    def defer_shadow(self, deferred: DeferredShadow) -> None:
        """Keep ``deferred`` (a snapshot's shadow of the rows just adopted) until :meth:`set_shadow`."""
        self._deferred = deferred

    @property
    def deferred_shadow(self) -> DeferredShadow | None:
        return self._deferred

    def discard_deferred_shadow(self) -> None:
        """Forget a deferred shadow whose check failed (reported as damaged)."""
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            deferred.report(False)

    def _take_shadow(self, deferred: DeferredShadow) -> int:
        """Install a checked snapshot shadow and rebuild its rows written since; the first row it does not cover."""
        halves, inv_scale, norm, err = deferred.arrays
        m = min(self.n, deferred.n)
        if halves.shape == self.halves.shape:
            self.halves = halves  # the mapping, spare rows included (the index did not grow)
        else:
            self.halves[:m] = halves[:m]
        for name, values in zip(self._SHADOW_COLUMNS, (inv_scale, norm, err)):
            getattr(self, name)[:m] = values[:m]
        stale = np.flatnonzero(deferred.touched[:m])
        if len(stale):
            got = self.shadow_builder(np.ascontiguousarray(self.matrix[stale]))
            self.halves[stale] = got[0]
            for name, values in zip(self._SHADOW_COLUMNS, got[1:]):
                getattr(self, name)[stale] = values
        return m

    def shadow(self) -> Shadow | None:
        """(halves, inv_scale, norm, err) when the shadow is kept, else None."""
        if not self.shadow_enabled:
            return None
        return self.halves, self.inv_scale, self.shadow_norm, self.shadow_err

    # -- writes ------------------------------------------------------------------
    def _grow(self, needed: int) -> None:
        cap = len(self.seqs)
        if needed <= cap:
            return
        new_cap = max(needed, cap * 2)
        shape = (new_cap, self.dim or 0)
        matrix = self._next.zeros(0, shape, np.float32)
        matrix[: self.n] = self.matrix[: self.n]
        self.matrix = matrix
        names = ["sqnorms", "seqs", "scope_codes", "category_codes", "metadata_codes"]
        if self.shadow_enabled:
            halves = self._next.zeros(1, shape, np.float16)
            halves[: self.n] = self.halves[: self.n]
            self.halves = halves
            names.extend(self._SHADOW_COLUMNS)
        for name in names:
            old = getattr(self, name)
            new = np.zeros(new_cap, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def load(self, count: int, batches: Iterable[list[tuple[int, str, str, str, str, bytes]]], dim: int | None) -> None:
        """Replace everything with ``count`` rows (seq, id, scope, categories, metadata, embedding bytes)."""
        self.clear(dim)
        if count == 0:
            for _ in batches:  # drain: closes the read snapshot
                pass
            return
        if dim is None:
            raise ValueError("rows without a stored dimension")
        self._grow(count)
        n = 0
        for rows in batches:
            end = n + len(rows)
            if end > len(self.seqs):
                self._grow(end)
            flat = np.frombuffer(b"".join(r[5] for r in rows), dtype=np.float32)
            block = self.matrix[n:end]
            block[:] = flat.reshape(len(rows), dim)
            self.sqnorms[n:end] = np.einsum("ij,ij->i", block, block)
            self._shadow_set(n, block)
            self.seqs[n:end] = [r[0] for r in rows]
            self.scope_codes[n:end] = [self.scopes.code(r[2]) for r in rows]
            self.category_codes[n:end] = [self.categories.code(r[3]) for r in rows]
            self.metadata_codes[n:end] = [self.metadata.code(r[4]) for r in rows]
            self.ids.extend(r[1] for r in rows)
            n = end
        self.row_of = {rid: i for i, rid in enumerate(self.ids)}
        self.n = n

    def upsert(self, seq: int, record_id: str, scope: str, categories: str, metadata: str, embedding: bytes) -> None:
        """Insert a row, or overwrite the row of an existing id."""
        self._selections.clear()
        vector = np.frombuffer(embedding, dtype=np.float32)
        if self.dim is None:
            self.clear(len(vector))
        if len(vector) != self.dim:
            raise ValueError(f"stored embedding of {len(vector)} values in a {self.dim}-d index")
        row = self.row_of.get(record_id)
        self._unshare(self.n if row is None else row)
        if row is None:
            self._grow(self.n + 1)
            row = self.n
            self.n += 1
            self.ids.append(record_id)
            self.row_of[record_id] = row
        if self._deferred is not None:
            self._deferred.touch(row)
        self.matrix[row] = vector
        self.sqnorms[row] = np.dot(vector, vector)
        self._shadow_set(row, self.matrix[row : row + 1])
        self.seqs[row] = seq
        self.scope_codes[row] = self.scopes.code(scope)
        self.category_codes[row] = self.categories.code(categories)
        self.metadata_codes[row] = self.metadata.code(metadata)
        self._populate_ahead(1)

    def _populate_ahead(self, batch: int) -> None:
        """Have the pages the next saves will append to faulted in off the save path (``_prefault``)."""
        self._prefault.ahead(0, self.matrix, self.n, batch)
        self._next.prepare(0, self.matrix, self.n, batch)
        if self.shadow_enabled:
            self._prefault.ahead(1, self.halves, self.n, batch)
            self._next.prepare(1, self.halves, self.n, batch)

    def upsert_many(self, rows: list[tuple[int, str, str, str, str, bytes]]) -> None:
        """:meth:`upsert` of every row (seq, id, scope, categories, metadata, embedding), in order, as block writes.

        A save of many records lands here: one matrix scatter, one norm pass and one
        shadow build for the batch instead of one of each per row. The result is the
        row-by-row loop's (ids repeated within ``rows`` go through that loop).
        """
        count = len(rows)
        ids = [r[1] for r in rows]
        if count < 2 or len(set(ids)) != count:
            for row in rows:
                self.upsert(*row)
            return
        if self.dim is None:
            self.clear(len(rows[0][5]) // 4)
        dim = self.dim or 0
        blobs = [r[5] for r in rows]
        flat = np.frombuffer(b"".join(blobs), dtype=np.float32)
        if len(flat) != count * dim or any(len(b) != dim * 4 for b in blobs):
            bad = next(b for b in blobs if len(b) != dim * 4)
            raise ValueError(f"stored embedding of {len(bad) // 4} values in a {self.dim}-d index")
        self._selections.clear()
        block = flat.reshape(count, dim)
        row_of = self.row_of
        at: slice | np.ndarray
        if not any(rid in row_of for rid in ids):  # a save of new records: one block at the end
            self._unshare(self.n)  # a background snapshot writer may still read the rows before
            start = self.n
            self._grow(start + count)
            at = slice(start, start + count)
            self.ids.extend(ids)
            row_of.update(zip(ids, range(start, start + count)))
            self.n = start + count
        else:
            self._unshare(min(row_of.get(rid, self.n) for rid in ids))
            self._grow(self.n + sum(rid not in row_of for rid in ids))
            at = np.empty(count, dtype=np.int64)
            for i, rid in enumerate(ids):
                pos = row_of.get(rid)
                if pos is None:
                    pos = row_of[rid] = self.n
                    self.n += 1
                    self.ids.append(rid)
                at[i] = pos
        if self._deferred is not None:
            self._deferred.touch(at)
        self.matrix[at] = block
        self.sqnorms[at] = np.einsum("ij,ij->i", block, block)
        if self.shadow_enabled:
            halves, inv_scale, norm, err = self.shadow_builder(np.ascontiguousarray(block))
            self.halves[at] = halves
            self.inv_scale[at] = inv_scale
            self.shadow_norm[at] = norm
            self.shadow_err[at] = err
        self.seqs[at] = [r[0] for r in rows]
        scope, categories, metadata = self.scopes.code, self.categories.code, self.metadata.code
        self.scope_codes[at] = [scope(r[2]) for r in rows]
        self.category_codes[at] = [categories(r[3]) for r in rows]
        self.metadata_codes[at] = [metadata(r[4]) for r in rows]
        self._populate_ahead(count)

    def remove(self, record_id: str) -> bool:
        """Swap-remove the row of ``record_id``; False when it is not here."""
        row = self.row_of.pop(record_id, None)
        if row is None:
            return False
        self._selections.clear()
        self._unshare(row)
        if self._deferred is not None:
            self._deferred.touch(row)
        last = self.n - 1
        if row != last:
            moved = self.ids[last]
            self.ids[row] = moved
            self.row_of[moved] = row
            self.matrix[row] = self.matrix[last]
            for arr in (self.sqnorms, self.seqs, self.scope_codes, self.category_codes, self.metadata_codes):
                arr[row] = arr[last]
            if self.shadow_enabled:
                self.halves[row] = self.halves[last]
                for name in self._SHADOW_COLUMNS:
                    arr = getattr(self, name)
                    arr[row] = arr[last]
        self.ids.pop()
        self.n = last
        return True

    # -- snapshots (``_snapshot``) -------------------------------------------------------
    _SHARED = ("matrix", "sqnorms", "seqs", "scope_codes", "category_codes", "metadata_codes")

    def freeze(self, stamp: int) -> Any:
        """The rows as they are now, for a background snapshot writer, without copying the matrix.

        The writer gets write-protected views of the first ``n`` rows; until :meth:`thaw` a
        write to one of those rows copies the arrays first (:meth:`_unshare`), so the writer
        never sees a later change. Rows appended past them (a save of new records) are
        written in place: the writer never reads there, and a bulk save no longer copies the
        whole matrix whenever a snapshot is being written.
        """
        from ._snapshot import Frozen

        n = self.n
        views = {}
        names = self._shared_names()
        for name in names:
            view = getattr(self, name)[:n]
            view.flags.writeable = False
            views[name] = view
        self._frozen_rows = n
        self._frozen_arrays = {name: getattr(self, name) for name in names}
        tables = {"scopes": list(self.scopes.codes), "categories": list(self.categories.codes),
                  "metadata": list(self.metadata.codes)}
        columns = {name: views[name] for name in self._SHARED[1:]}
        shadow = None
        if self.shadow_enabled:
            shadow = (views["halves"], *(views[name] for name in self._SHADOW_COLUMNS))
        frozen = Frozen(stamp, n, int(self.dim or 0), views["matrix"], columns, list(self.ids), tables, shadow)
        self._frozen_by = frozen
        return frozen

    def thaw(self, frozen: Any) -> None:
        """The writer is done with ``frozen``: its rows may be written in place again."""
        if self._frozen_by is frozen:
            self._frozen_by = None
            self._frozen_arrays = {}
            self._frozen_rows = 0

    def _unshare(self, lowest: int = 0) -> None:
        """Copy the arrays a snapshot writer still reads before a write reaching down to row ``lowest``.

        A read-only array (a write-protected mapping) is always copied before a write.
        """
        shared = self._frozen_arrays
        below = lowest < self._frozen_rows
        for name in self._shared_names():
            arr = getattr(self, name)
            if not arr.flags.writeable or (below and shared.get(name) is arr):
                setattr(self, name, arr.copy())

    def _shared_names(self) -> tuple[str, ...]:
        """The arrays a snapshot writer reads: the float32 side, and the shadow's when it is kept."""
        if self.shadow_enabled:
            return self._SHARED + ("halves",) + self._SHADOW_COLUMNS
        return self._SHARED

    def adopt(self, matrix: np.ndarray, n: int, columns: dict[str, np.ndarray], ids: list[str],
              tables: dict[str, list[str]], shadow: Shadow | None = None) -> None:
        """Take over a snapshot's rows; ``matrix`` (a private mapping of the file) may hold spare rows past ``n``.

        ``shadow``: the file's float16 shadow (halves mapped like the matrix, ``cap`` rows; the
        bound columns ``n`` rows): the index keeps it from now on, without building it.
        """
        cap, dim = matrix.shape
        if len(ids) != n or cap < n:
            raise ValueError("rows and ids disagree")
        if shadow is not None and (shadow[0].shape != matrix.shape or any(len(c) != n for c in shadow[1:])):
            raise ValueError("shadow and rows disagree")
        self.shadow_enabled = self.shadow_enabled or shadow is not None
        self.clear(dim)
        self.matrix = matrix
        for name in self._SHARED[1:]:
            arr = np.zeros(max(cap, _MIN_CAPACITY), dtype=getattr(self, name).dtype)
            arr[:n] = columns[name]
            setattr(self, name, arr)
        if cap < _MIN_CAPACITY:
            self.matrix = np.zeros((_MIN_CAPACITY, dim), dtype=np.float32)
            self.matrix[:n] = matrix[:n]
        self._clear_shadow(len(self.seqs))
        if shadow is not None:
            halves = shadow[0]
            if cap < _MIN_CAPACITY:
                self.halves[:n] = halves[:n]
            else:
                self.halves = halves
            for name, values in zip(self._SHADOW_COLUMNS, shadow[1:]):
                getattr(self, name)[:n] = values
        elif self.shadow_enabled:  # kept, but the file holds none: built from the rows
            for start in range(0, n, 4096):
                self._shadow_set(start, self.matrix[start : min(start + 4096, n)])
        interners: tuple[tuple[_Interner[Any], str, str], ...] = (
            (self.scopes, "scopes", "scope_codes"), (self.categories, "categories", "category_codes"),
            (self.metadata, "metadata", "metadata_codes"))
        for interner, key, codes in interners:
            keys = tables[key]
            used = getattr(self, codes)[:n]
            if n and (int(used.min()) < 0 or int(used.max()) >= len(keys)):
                raise ValueError(f"{key} codes out of range")
            interner.codes = dict(zip(keys, range(len(keys))))
            interner.values = [interner._parse(k) for k in keys]
        self.ids = list(ids)
        # built when first needed; the file's ids are checked (its digest) and were the keys of a row map
        self._row_of = None
        self.n = n

    # -- filters -----------------------------------------------------------------
    def select_rows(
        self,
        scope_prefix: str | None,
        categories: Iterable[str] | None,
        metadata_filter: dict[str, Any] | None,
    ) -> np.ndarray | None:
        """Ascending row numbers passing every filter, or None when no filter applies.

        Memory recalls the same scope over and over: the answer is cached until the next write.
        """
        if not (scope_prefix or categories or metadata_filter):
            return None
        meta = sorted((repr(k), type(v).__name__, repr(v)) for k, v in (metadata_filter or {}).items())
        key = repr((scope_prefix, tuple(categories or ()), meta))
        cached = self._selections.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        rows = self._select(scope_prefix, categories, metadata_filter)
        if len(self._selections) >= 64:
            self._selections.clear()
        self._selections[key] = rows
        return rows

    def _select(
        self,
        scope_prefix: str | None,
        categories: Iterable[str] | None,
        metadata_filter: dict[str, Any] | None,
    ) -> np.ndarray | None:
        n = self.n
        mask: np.ndarray | None = None
        if scope_prefix:
            child = scope_prefix + "/"  # path-aware, as in SQL: /a matches /a and /a/b, never /ab
            table = self.scopes.table(lambda s: s == scope_prefix or s.startswith(child))
            mask = table[self.scope_codes[:n]]
        if categories:
            wanted = list(categories)
            table = self.categories.table(lambda cats: any(c in cats for c in wanted))
            got = table[self.category_codes[:n]]
            mask = got if mask is None else mask & got
        if metadata_filter:
            items = list(metadata_filter.items())
            table = self.metadata.table(lambda meta: all(meta.get(k) == v for k, v in items))
            got = table[self.metadata_codes[:n]]
            mask = got if mask is None else mask & got
        if mask is None:
            return None
        return np.flatnonzero(mask).astype(np.int64)
