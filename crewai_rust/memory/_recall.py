"""Deep recall's searches as batches: one ``search_many`` per scope instead of a search per (query, scope).

CrewAI's ``RecallFlow._do_search`` searches every (sub-query embedding, candidate
scope) pair, on a thread pool when there are several. There is no public seam
for it, so this replaces that one method (restored by ``unpatch()``) with the same
steps: the same filters after the search (time cutoff, private records), the same
composite score, a failed search logged and skipped. What changes: all embeddings
of one scope are scored in one pass over the vectors (``search_many``), and the
findings come in task order (CrewAI's pool returns them in completion order).
Storages without ``search_many`` run CrewAI's original method.
"""

from __future__ import annotations

import logging
from typing import Any

RECALL_FLOW = "crewai.memory.recall_flow:RecallFlow"
logger = logging.getLogger("crewai_rust.memory")


def make_do_search(original: Any) -> Any:
    """The replacement ``RecallFlow._do_search``; ``original`` runs for other storages."""

    def _do_search(self: Any) -> list[dict[str, Any]]:
        storage = self._storage
        search_many = getattr(storage, "search_many", None)
        if search_many is None:
            return original(self)
        from crewai.memory import recall_flow

        state = self.state
        categories = self._merged_categories()
        limit = state.limit * recall_flow._RECALL_OVERSAMPLE_FACTOR
        embeddings = [embedding for _query_text, embedding in state.query_embeddings]
        scopes = list(state.candidate_scopes)
        answers: dict[tuple[int, int], list[Any]] = {}
        for si, scope in enumerate(scopes):
            if len(embeddings) == 1:  # nothing to batch: the single search (and its float16 shadow scan)
                try:
                    answers[(0, si)] = storage.search(
                        embeddings[0], scope_prefix=scope, categories=categories, limit=limit, min_score=0.0
                    )
                except Exception:
                    logger.warning("Storage search failed in recall flow, skipping scope", exc_info=True)
                continue
            try:
                batch = search_many(embeddings, scope_prefix=scope, categories=categories, limit=limit, min_score=0.0)
            except Exception:
                # as CrewAI: each (query, scope) search that fails is logged and skipped, the others kept
                for ei, embedding in enumerate(embeddings):
                    try:
                        answers[(ei, si)] = storage.search(
                            embedding, scope_prefix=scope, categories=categories, limit=limit, min_score=0.0
                        )
                    except Exception:
                        logger.warning("Storage search failed in recall flow, skipping scope", exc_info=True)
                continue
            for ei, raw in enumerate(batch):
                answers[(ei, si)] = raw

        findings: list[dict[str, Any]] = []
        for ei in range(len(embeddings)):
            for si, scope in enumerate(scopes):
                raw = answers.get((ei, si))
                if raw is None:
                    continue
                if state.time_cutoff and raw:
                    raw = [(r, s) for r, s in raw if r.created_at >= state.time_cutoff]
                if not state.include_private and raw:
                    raw = [
                        (r, s)
                        for r, s in raw
                        # as CrewAI: a private record only for its own source, never via None == None
                        if not r.private or (state.source is not None and r.source == state.source)
                    ]
                if raw:
                    top, _ = recall_flow.compute_composite_score(raw[0][0], raw[0][1], self._config)
                    findings.append({"scope": scope, "results": raw, "top_score": top})
        state.chunk_findings = findings
        state.confidence = max((f["top_score"] for f in findings), default=0.0)
        return findings

    _do_search.__doc__ = "crewai_rust: " + (original.__doc__ or "RecallFlow._do_search with batched searches")
    return _do_search


def patch_recall(patcher: Any) -> None:
    """Route deep recall's searches through ``search_many`` (restored by ``unpatch()``)."""
    cls = patcher.resolve(RECALL_FLOW)
    if cls is None:
        return
    original = vars(cls).get("_do_search")
    if original is None:
        patcher.report_missing(f"{RECALL_FLOW}._do_search", "RecallFlow has no _do_search")
        return
    patcher.replace(RECALL_FLOW, "_do_search", make_do_search(original))
