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
    second = _crew("hunting")
    second.kickoff()
    second._memory.drain_writes()
    assert second._memory._storage is store
    assert hits and max(hits) > 0
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
