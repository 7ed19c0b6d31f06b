"""Exact nearest-record search over the mirrored index, filters applied inside the scan.

Split out of ``_storage``: the scan itself runs in ``_kernels`` (kernel chosen by timing);
this is the part of :class:`RustMemoryStorage` that checks the queries, selects the rows the
filters allow and turns ranked rows back into CrewAI records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._filters import normalised
from ._kernels import KernelSet, exact_top, exact_top_many
from ._mirror import IndexMirror
from ._embedding_rules import vector_f32
from ._records import dimension_error, from_row


class IndexSearch(IndexMirror):
    """The search part of :class:`~crewai_rust.memory.RustMemoryStorage` (a mixin: it sets up nothing)."""

    _kernels: KernelSet
    _metric_code: int

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
            rows = index.select_rows(normalised(scope_prefix), categories, metadata_filter)
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
            rows = index.select_rows(normalised(scope_prefix), categories, metadata_filter)
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

    # -- async twin (the work is short and already thread-safe) -------------------------
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
