"""The bulk save's own bookkeeping: the index rows a save hands over without reading them back
(found by one range read of the rows it inserted, plus id lookups for rows it updated), and the
spare rows the index has populated ahead of the next saves on a background thread.

Both must leave exactly what the database holds: an index built from the handed-over rows equals
one loaded from the file by another process, and populating never changes a row.
"""

from __future__ import annotations

import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai.memory.types import MemoryRecord  # noqa: E402

import crewai_rust  # noqa: E402
from crewai_rust.memory import RustMemoryStorage, _prefault  # noqa: E402
from crewai_rust.memory._index import VectorIndex  # noqa: E402

DIM = 24


def _record(rid: str, seed: int, content: str = "a memory") -> Any:
    vec = np.random.default_rng(seed).normal(size=DIM).astype(np.float32).tolist()
    return MemoryRecord.model_construct(
        id=rid, content=content, scope=f"/s/{seed % 3}", categories=["c"], metadata={"k": seed % 2},
        importance=0.5, created_at=datetime(2025, 1, 1), last_accessed=datetime(2025, 1, 1),
        embedding=vec, source=None, private=False)


def _rows_by_id(store: RustMemoryStorage) -> dict[str, tuple[int, bytes, int]]:
    index = store._index
    return {rid: (int(index.seqs[i]), index.matrix[i].tobytes(), int(index.scope_codes[i] >= 0))
            for i, rid in enumerate(index.ids[: index.n])}


def test_a_mixed_batch_hands_over_the_rows_the_database_holds(tmp_path: Path, use_rust: bool) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    try:
        store.save([_record(f"old-{i}", i) for i in range(40)])
        # updates of existing ids (their seq stays), new ids, and an id given twice (the last wins)
        batch = [_record(f"old-{i}", 1000 + i, "updated") for i in range(0, 40, 3)]
        batch += [_record(f"new-{i}", 2000 + i) for i in range(25)]
        batch += [_record("new-3", 3003, "second copy"), _record("old-0", 3000, "second copy")]
        read_back: list[str] = []
        real_query = store._store.query

        def spy(sql: str, params: Any = ()) -> Any:
            read_back.append(sql)
            return real_query(sql, params)

        store._store.query = spy  # type: ignore[method-assign]
        store.save(batch)
        store._store.query = real_query  # type: ignore[method-assign]
        assert not [sql for sql in read_back if "embedding" in sql]  # the rows were handed over
        mine = _rows_by_id(store)
        assert store.get_record("new-3").content == "second copy"
        assert store.get_record("old-0").content == "second copy"
    finally:
        store.close()
    other = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)  # what another process loads
    try:
        assert _rows_by_id(other) == mine
        assert other._index.n == 65
    finally:
        other.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_POPULATE_WRITE is Linux only")
def test_spare_rows_are_populated_ahead_and_no_row_changes() -> None:
    before = _prefault.populated_bytes
    index = VectorIndex(1024)
    rng = np.random.default_rng(7)
    blocks = [rng.normal(size=(100, 1024)).astype(np.float32) for _ in range(3)]
    for k, block in enumerate(blocks):
        index.upsert_many([(k * 100 + i + 1, f"r{k}-{i}", "/s", "[]", "{}", block[i].tobytes())
                           for i in range(100)])
        assert _prefault.settle()
    if not _prefault.enabled():
        pytest.skip("this kernel refuses MADV_POPULATE_WRITE (before 5.14)")
    assert _prefault.populated_bytes > before
    assert np.array_equal(index.matrix[:300], np.concatenate(blocks))
    assert not index.matrix[300:].any()  # populated spare rows still read as zeros
    one = rng.normal(size=1024).astype(np.float32)
    index.upsert(301, "single", "/s", "[]", "{}", one.tobytes())
    assert _prefault.settle()
    assert np.array_equal(index.matrix[300], one) and not index.matrix[301:].any()


@pytest.mark.crew
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_POPULATE_WRITE is Linux only")
def test_a_crew_saving_memories_gets_its_spare_rows_populated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              use_rust: bool) -> None:
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM, crew_embedder_config

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    crewai_rust.patch("memory")
    before = _prefault.populated_bytes
    agent = Agent(role="Researcher", goal="learn about birds", backstory="a careful birder", llm=ScriptedLLM())
    crew = Crew(agents=[agent], tasks=[Task(description="Describe the barn owl", expected_output="a sentence",
                                            agent=agent)], memory=True, embedder=crew_embedder_config(64))
    crew.kickoff()
    crew._memory.drain_writes()
    store = crew._memory._storage
    assert isinstance(store, RustMemoryStorage) and store.count() > 0
    assert _prefault.settle()
    if not _prefault.enabled():
        pytest.skip("this kernel refuses MADV_POPULATE_WRITE (before 5.14)")
    assert _prefault.populated_bytes > before  # the crew's saves asked for their next rows


@pytest.mark.crew
def test_a_crew_saving_a_large_batch_reads_its_embeddings_on_two_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speedups: Any) -> None:
    """24 extracted memories x 3072 floats is past the two-thread size: the Rust twin's batch encoder
    reads them on two threads, and the records saved are the embedder's vectors exactly."""
    import os

    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM, crew_embedder_config, hash_embed

    if (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) < 2:
        pytest.skip("one usable CPU: the batch is read on the calling thread")
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    crewai_rust.patch("memory")
    before = speedups.embedding_parallel_reads()

    def extract(text: str) -> list[str]:
        return [f"fact {i} about the owl: {text[:40]}" for i in range(24)]

    agent = Agent(role="Researcher", goal="learn about birds", backstory="a careful birder",
                  llm=ScriptedLLM(extract_memories=extract))
    crew = Crew(agents=[agent], tasks=[Task(description="Describe the barn owl", expected_output="a sentence",
                                            agent=agent)], memory=True, embedder=crew_embedder_config(3072))
    crew.kickoff()
    crew._memory.drain_writes()
    store = crew._memory._storage
    assert isinstance(store, RustMemoryStorage) and store.implementation == "rust"
    assert speedups.embedding_parallel_reads() > before
    facts = [r for r in store.list_records(limit=100) if r.content.startswith("fact ")]
    assert len(facts) == 24
    for record in facts:
        want = np.asarray(hash_embed(record.content, 3072), dtype=np.float32)
        assert np.array_equal(np.asarray(record.embedding, dtype=np.float32), want)
