"""What a store holds, read from the database (not the index): records by id or scope, scopes, categories, counts.

Split out of ``_storage``: these reads need no vectors, so they neither sync the index nor
take the store's lock (each is one read of the database).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._filters import json_list, normalised
from ._mirror import IndexMirror
from ._records import from_row, memory_types


class RecordListing(IndexMirror):
    """The listing part of :class:`~crewai_rust.memory.RustMemoryStorage` (a mixin: it sets up nothing)."""

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
        return [from_row(r) for r in self._store.list_rows(normalised(scope_prefix), limit, offset)]

    def get_scope_info(self, scope: str) -> Any:
        """Record count, categories, date range and immediate children of a scope."""
        self._check_open()
        scope = scope.rstrip("/") or "/"
        prefix = normalised(scope)
        ScopeInfo = memory_types().ScopeInfo
        count, oldest, newest = self._store.scope_summary(prefix)
        if not count or oldest is None or newest is None:
            return ScopeInfo(path=scope, record_count=0, categories=[], child_scopes=[])
        cats: set[str] = set()
        for cat_json, _ in self._store.category_counts(prefix):
            cats.update(json_list(cat_json))
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
        for cat_json, n in self._store.category_counts(normalised(scope_prefix)):
            for c in json_list(cat_json):
                counts[c] = counts.get(c, 0) + int(n)
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        """Records in a scope and its subscopes (all when None)."""
        self._check_open()
        return self._store.count(normalised(scope_prefix))
