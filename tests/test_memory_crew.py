"""A real offline crew with ``memory=True`` stores and recalls through RustMemoryStorage under patch()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import crewai_rust

pytestmark = pytest.mark.crew


def _crew(topic: str) -> Any:
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM, crew_embedder_config

    llm = ScriptedLLM()
    agent = Agent(role="Researcher", goal="learn about birds", backstory="a careful birder", llm=llm)
    tasks = [
        Task(description=f"Describe the {topic} of the barn owl", expected_output="a sentence", agent=agent),
        Task(description=f"Summarise what we know about {topic}", expected_output="a sentence", agent=agent),
    ]
    return Crew(agents=[agent], tasks=tasks, memory=True, embedder=crew_embedder_config(64))


def test_crew_memory_goes_through_rust_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               use_rust: bool) -> None:
    from crewai_rust.memory import RustMemoryStorage
    from crewai_rust.memory._activation import open_stores

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    state = crewai_rust.patch("memory")
    assert state["components"]["MEMORY"]["implementation"] == ("rust" if use_rust else "python")

    first = _crew("hunting")
    first.kickoff()
    memory = first._memory
    memory.drain_writes()
    store = memory._storage
    assert isinstance(store, RustMemoryStorage)
    assert store.implementation == ("rust" if use_rust else "python")
    assert store.path == tmp_path / "memory"
    assert list(open_stores().values()) == [store]  # one store however often Memory was rebuilt
    saved = store.count()
    assert saved > 0

    # A second crew (new Memory objects) gets the same open store and recalls what the first saved.
    hits: list[int] = []
    original = store.search

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        hits.append(len(result))
        return result

    monkeypatch.setattr(store, "search", spy)
    # the float64 re-rank of every search is the compiled twin's under rust
    reranked: list[int] = []
    twin = store._kernels.rerank
    assert twin.__name__ == ("rust_rerank" if use_rust else "rerank")

    def counted(*args: Any) -> Any:
        reranked.append(len(args[2]))
        return twin(*args)

    monkeypatch.setattr(store._kernels, "rerank", counted)
    second = _crew("hunting")
    second.kickoff()
    second._memory.drain_writes()
    assert second._memory._storage is store
    assert hits and max(hits) > 0
    assert reranked and max(reranked) > 0
    assert store.count() >= saved

    # The memories are on disk: an independent open of the directory sees them all.
    ids = {r.id for r in store.list_records(limit=1000)}
    crewai_rust.unpatch()
    assert store.closed
    reopened = RustMemoryStorage(tmp_path / "memory", use_rust=use_rust)
    try:
        assert {r.id for r in reopened.list_records(limit=1000)} == ids
        assert all(r.scope.startswith("/crew/") for r in reopened.list_records(limit=1000))
    finally:
        reopened.close()


def test_factory_serves_paths_declines_qdrant_and_unpatch_restores(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import crewai.memory.storage.factory as factory

    from crewai_rust.memory import RustMemoryStorage

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    before = factory._factory
    crewai_rust.patch("memory", memory={"metric": "cosine"})
    assert factory.resolve_memory_storage("qdrant-edge") is None
    default = factory.resolve_memory_storage("lancedb")
    assert isinstance(default, RustMemoryStorage) and default.metric == "cosine"
    assert default.path == tmp_path / "memory"
    custom = factory.resolve_memory_storage(str(tmp_path / "elsewhere"))
    assert custom is factory.resolve_memory_storage(str(tmp_path / "elsewhere" / "."))
    assert custom is not default
    default.close()  # what Memory.close() does: must not close the shared store
    assert not default.closed
    crewai_rust.unpatch()
    assert factory._factory is before
    assert default.closed and custom.closed


def test_unknown_option_is_an_error() -> None:
    state = crewai_rust.patch("memory", memory={"metrc": "l2"})
    assert "metrc" in state["components"]["MEMORY"]["error"]


def test_a_crew_saves_its_extracted_memories_through_the_bulk_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   use_rust: bool) -> None:
    """CrewAI's path: the agent executor extracts memories, ``Memory.remember_many`` runs the EncodingFlow
    in the save pool, and its ``storage.save(records)`` is one call for the batch: here one encoding
    call (the Rust twin's ``embeddings_f32_bytes_many`` or the numpy twin) and one transaction."""
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM, crew_embedder_config

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    crewai_rust.patch("memory")
    encoded: list[int] = []
    written: list[int] = []

    def extract(text: str) -> list[str]:
        return [f"fact {i} of {len(text)}: {text[:60]}" for i in range(6)]

    llm = ScriptedLLM(extract_memories=extract)
    agent = Agent(role="Researcher", goal="learn about birds", backstory="a careful birder", llm=llm)
    task = Task(description="Describe the wings of the barn owl", expected_output="a sentence", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], memory=True, embedder=crew_embedder_config(64))
    store = crew._memory._storage
    real_encode, real_upsert = store._encode_many, store._store.upsert

    def encode_spy(embeddings: list[Any]) -> Any:
        encoded.append(len(embeddings))
        return real_encode(embeddings)

    def upsert_spy(rows: Any, *args: Any, **kwargs: Any) -> Any:
        written.append(len(rows))
        return real_upsert(rows, *args, **kwargs)

    monkeypatch.setattr(store, "_encode_many", encode_spy)
    monkeypatch.setattr(store, "_encode", None)  # the one-at-a-time encoder must not run
    monkeypatch.setattr(store._store, "upsert", upsert_spy)
    if use_rust:
        from crewai_rust import _speedups

        assert real_encode is _speedups.embeddings_f32_bytes_many
    crew.kickoff()
    crew._memory.drain_writes()
    assert 6 in written, written  # the six extracted memories in one transaction
    assert encoded == written  # one encoding call per save, for the whole batch
    texts = {r.content for r in store.list_records(limit=100)}
    assert sum(t.startswith("fact ") for t in texts) == 6
