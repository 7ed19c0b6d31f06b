"""Deep recall under patch(): ``re_search`` re-uses the first search only while nothing was committed
to the store (SQLite or PostgreSQL); the same matches as stock throughout."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from crewai.memory.types import MemoryRecord
    from crewai.memory.unified_memory import Memory

import crewai_rust  # noqa: E402
from crewai_rust.memory import RustMemoryStorage  # noqa: E402
from crewai_rust.testing import HashEmbedder, ScriptedLLM  # noqa: E402

DIM = 48
QUERY = "owls at dusk"


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store directory, or a PostgreSQL database: the head that guards the reuse is each backend's own."""
    return str(tmp_path) if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


def _store(path: str | Path, use_rust: bool) -> RustMemoryStorage:
    store = RustMemoryStorage(path, use_rust=use_rust)
    rng = np.random.default_rng(3)  # unrelated to the query: low confidence, so deep recall explores and re-searches
    store.save([MemoryRecord(content=f"note {i}", scope="/notes", embedding=rng.standard_normal(DIM).tolist())
                for i in range(80)])
    return store


def _counting(store: RustMemoryStorage) -> list[int]:
    calls: list[int] = []
    search = store.search

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return search(*args, **kwargs)

    store.search = spy  # type: ignore[method-assign]
    return calls


def _recall(store: RustMemoryStorage, llm: ScriptedLLM | None = None) -> list[tuple[str, float]]:
    memory = Memory(storage=store, embedder=HashEmbedder(DIM), llm=llm or ScriptedLLM())
    found = memory.recall(QUERY, limit=6, depth="deep")
    return sorted((m.record.id, round(m.score, 6)) for m in found)  # recency moves scores by ~1e-9 between calls


def test_re_search_reuses_the_first_search_when_nothing_was_committed(target: str, use_rust: bool) -> None:
    store = _store(target, use_rust)
    calls = _counting(store)
    try:
        stock = _recall(store)
        assert len(calls) == 2  # CrewAI: search_chunks, then re_search after the exploration
        calls.clear()
        crewai_rust.patch("memory")
        ours = _recall(store)
        assert len(calls) == 1 and ours == stock and ours
        calls.clear()
        assert _recall(store) == stock and len(calls) == 1  # a new recall searches afresh
    finally:
        crewai_rust.unpatch()
        store.close()


def test_a_write_committed_during_the_exploration_is_found_by_re_search(target: str, use_rust: bool) -> None:
    """Another store on the same directory or database (another process, as far as the store can tell) saves the
    best match while the LLM explores: the head moved, so re_search searches again and finds it."""
    store = _store(target, use_rust)
    other = RustMemoryStorage(target, use_rust=use_rust)
    calls = _counting(store)
    best = HashEmbedder(DIM)([QUERY])[0]

    def writer(tag: str) -> ScriptedLLM:
        def respond(messages: Any, tools: Any) -> str:
            other.save([MemoryRecord(id=f"late-{tag}", content="owls hunt at dusk", scope="/notes", embedding=best)])
            return "nothing is missing"

        return ScriptedLLM(respond)

    try:
        stock = _recall(store, writer("stock"))
        assert len(calls) == 2 and "late-stock" in {rid for rid, _ in stock}
        store.delete(record_ids=["late-stock"])
        calls.clear()
        crewai_rust.patch("memory")
        ours = _recall(store, writer("ours"))
        assert len(calls) == 2  # the first answers were not reused
        assert [(rid.replace("ours", "stock"), s) for rid, s in ours] == stock
    finally:
        crewai_rust.unpatch()
        other.close()
        store.close()
