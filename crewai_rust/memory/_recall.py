"""Deep recall's searches as batches: one ``search_many`` per scope instead of a search per (query, scope).

CrewAI's ``RecallFlow._do_search`` searches every (sub-query embedding, candidate
scope) pair, on a thread pool when there are several. There is no public seam
for it, so this replaces that one method (restored by ``unpatch()``) with the same
steps: the same filters after the search (time cutoff, private records), the same
composite score, a failed search logged and skipped. What changes: all embeddings
of one scope are scored in one pass over the vectors (``search_many``), and the
findings come in task order (CrewAI's pool returns them in completion order).
Storages without ``search_many`` run CrewAI's original method.

One more saving, invisible in what a recall returns: **re_search without a change
re-uses the first search.** Deep recall's ``re_search`` runs ``_do_search`` again on
the same query embeddings and scopes after the LLM exploration; when no write was
committed to the store in between (its change head, read *before* the first search,
is the same), the same records come back, so the first answers are reused (fresh
lists; the filters after the search run again). Any committed write, from any
process, means a fresh search. (The deep copy CrewAI makes of the state for the
finished event is RUNTIME's ``state_dump``.)
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

RECALL_FLOW = "crewai.memory.recall_flow:RecallFlow"
logger = logging.getLogger("crewai_rust.memory")

#: flow -> (search inputs, store head read before the search, raw answers): the last search of each running recall
_LAST_SEARCH: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], int, dict[tuple[int, int], list[Any]]]] = (
    weakref.WeakKeyDictionary()
)


def _store_head(storage: Any) -> int | None:
    """The store's committed change number (None: unknown, so nothing is reused)."""
    store = getattr(storage, "_store", None)
    head = getattr(store, "head", None)
    if head is None:
        return None
    try:
        return int(head())
    except Exception:  # a read that failed: search afresh (the search reports any real fault)
        return None


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
        inputs = (id(storage), embeddings, scopes, categories, limit)
        head = _store_head(storage)  # before the search: a commit during it changes the head
        last = _LAST_SEARCH.get(self)
        if head is not None and last is not None and last[0] == inputs and last[1] == head:
            # re_search, and nothing committed since the first search: the same records (fresh lists of them)
            answers = {key: list(raw) for key, raw in last[2].items()}
        else:
            answers = _search_all(storage, search_many, embeddings, scopes, categories, limit)
        if head is not None and state.exploration_budget > 0:  # a re_search may follow
            _LAST_SEARCH[self] = (inputs, head, answers)
        else:
            _LAST_SEARCH.pop(self, None)
        return _findings(self, recall_flow, state, embeddings, scopes, answers)

    _do_search.__doc__ = "crewai_rust: " + (original.__doc__ or "RecallFlow._do_search with batched searches")
    return _do_search


def _search_all(storage: Any, search_many: Any, embeddings: list[Any], scopes: list[str],
                categories: Any, limit: int) -> dict[tuple[int, int], list[Any]]:
    """Raw answers per (embedding, scope): one ``search_many`` per scope; a failed search logged and skipped."""
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
    return answers


def _findings(self: Any, recall_flow: Any, state: Any, embeddings: list[Any], scopes: list[str],
              answers: dict[tuple[int, int], list[Any]]) -> list[dict[str, Any]]:
    """CrewAI's filters after the search and its composite top score, in task order; sets the state."""
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
