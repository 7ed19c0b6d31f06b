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


def _index_rows(start: int, block: np.ndarray) -> list[tuple[int, str, str, str, str, bytes]]:
    return [(start + i + 1, f"r{start + i}", "/s", "[]", "{}", row.tobytes()) for i, row in enumerate(block)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_POPULATE_WRITE is Linux only")
def test_a_grow_copies_into_the_doubled_arrays_prepared_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the spare rows run low the doubled matrix and shadow are prepared; the grow takes them,
    and the index holds what one grown on the save path holds (rows, shadow, zeroed spare rows)."""
    monkeypatch.setattr(_prefault, "REGROW_MIN_BYTES", 0)
    rng = np.random.default_rng(11)
    blocks = [rng.normal(size=(size, 64)).astype(np.float32) for size in (40, 20, 30)]
    index = VectorIndex(64, shadow=True)
    index.upsert_many(_index_rows(0, blocks[0]))  # 40 of 64 rows: 24 spare, under two saves of 40
    index.upsert_many(_index_rows(40, blocks[1]))  # 60 of 64: prepared ahead of the next save
    assert _prefault.settle()
    if not _prefault.enabled():
        pytest.skip("this kernel refuses MADV_POPULATE_WRITE (before 5.14)")
    prepared = {slot: index._next._ready[slot].ctypes.data for slot in (0, 1)}
    before = _prefault.prepared_grows
    index.upsert_many(_index_rows(60, blocks[2]))  # 90 rows: the grow to 128
    assert (index.matrix.ctypes.data, index.halves.ctypes.data) == (prepared[0], prepared[1])
    assert _prefault.prepared_grows == before + 2
    monkeypatch.setattr(_prefault, "REGROW_MIN_BYTES", 1 << 62)
    plain = VectorIndex(64, shadow=True)
    for start, block in zip((0, 40, 60), blocks):
        plain.upsert_many(_index_rows(start, block))
    assert len(index.seqs) == len(plain.seqs) == 128
    for name in ("matrix", "halves", "sqnorms", "seqs", "inv_scale", "shadow_norm", "shadow_err"):
        assert np.array_equal(getattr(index, name), getattr(plain, name)), name
    assert not index.matrix[90:].any() and not index.halves[90:].any()


def test_a_prepared_array_is_never_used_for_another_shape_or_after_a_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_prefault, "REGROW_MIN_BYTES", 0)
    nexts = _prefault.NextArrays()
    array = np.zeros((64, 8), dtype=np.float32)
    nexts.prepare(0, array, 60, 10)
    if not _prefault.enabled():
        pytest.skip("this kernel refuses MADV_POPULATE_WRITE (before 5.14)")
    assert nexts.take(0, (128, 8), np.float16) is None  # the wrong dtype drops it
    nexts.prepare(0, array, 60, 10)
    assert nexts.take(0, (256, 8), np.float32) is None  # a grow past double does not use it
    nexts.prepare(0, array, 10, 10)  # plenty of spare rows: nothing prepared
    assert nexts.take(0, (128, 8), np.float32) is None
    index = VectorIndex(8)
    index._next.prepare(0, array, 60, 10)
    index.clear(16)
    assert index._next.take(0, (128, 8), np.float32) is None


@pytest.mark.crew
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_POPULATE_WRITE is Linux only")
def test_a_crew_saving_into_a_nearly_full_index_grows_into_prepared_arrays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_rust: bool) -> None:
    """A store used before (64 memories: the index's first 64 rows full) and a crew that saves more:
    the save that outgrows the index copies into the arrays prepared after the earlier save."""
    from crewai import Agent, Crew, Task

    from crewai_rust.testing import ScriptedLLM, crew_embedder_config

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    monkeypatch.setattr(_prefault, "REGROW_MIN_BYTES", 0)
    crewai_rust.patch("memory")
    agent = Agent(role="Researcher", goal="learn about birds", backstory="a careful birder", llm=ScriptedLLM())
    crew = Crew(agents=[agent], tasks=[Task(description="Describe the barn owl", expected_output="a sentence",
                                            agent=agent)], memory=True, embedder=crew_embedder_config(64))
    store = crew._memory._storage
    assert isinstance(store, RustMemoryStorage)
    rng = np.random.default_rng(3)
    store.save([MemoryRecord.model_construct(
        id=f"earlier-{i}", content=f"an earlier note {i}", scope="/", categories=[], metadata={}, importance=0.5,
        created_at=datetime(2025, 1, 1), last_accessed=datetime(2025, 1, 1),
        embedding=rng.normal(size=64).astype(np.float32).tolist(), source=None, private=False) for i in range(64)])
    if not _prefault.enabled():
        pytest.skip("this kernel refuses MADV_POPULATE_WRITE (before 5.14)")
    before = _prefault.prepared_grows
    crew.kickoff()
    crew._memory.drain_writes()
    assert store._index.n > 64, "the crew's memories did not outgrow the index"
    assert _prefault.prepared_grows > before
    assert {r.id for r in store.list_records(limit=1000)} >= {f"earlier-{i}" for i in range(64)}


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


def _index_state(store: RustMemoryStorage) -> tuple[Any, ...]:
    index = store._index
    n = index.n
    return (n, list(index.ids[:n]), index.matrix[:n].tobytes(), index.sqnorms[:n].tobytes(),
            index.seqs[:n].tolist(), [index.scopes.code(s) for s in ("/s/0", "/s/1", "/s/2")], store._seen)


def test_a_save_puts_its_rows_into_the_index_beside_its_commit(tmp_path: Path, use_rust: bool) -> None:
    """The index update ran on the ``_beside`` helper while the COMMIT ran, and left exactly what a
    store loading the file builds (and what the update after the COMMIT built before)."""
    from crewai_rust.memory import _beside

    store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    try:
        store.save([_record(f"a-{i}", i) for i in range(30)])  # the first save fixes the dimension
        before = _beside.jobs_run
        store.save([_record(f"b-{i}", 100 + i) for i in range(30)] + [_record("a-3", 7, "updated")])
        assert _beside.jobs_run == before + 1
        mine = _rows_by_id(store)
        assert store.get_record("a-3").content == "updated" and store._seen == store._store.head()
    finally:
        store.close()
    other = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    try:
        assert _rows_by_id(other) == mine and other._index.n == 60
    finally:
        other.close()


def test_after_another_process_wrote_the_save_catches_up_after_its_commit(tmp_path: Path, use_rust: bool) -> None:
    """A write by another process since this one last looked: the index must read it from the log,
    so the update runs after the COMMIT as before (no helper job), and misses nothing."""
    from crewai_rust.memory import _beside

    mine = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    other = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    try:
        mine.save([_record(f"a-{i}", i) for i in range(10)])
        other.save([_record(f"o-{i}", 50 + i) for i in range(10)])
        before = _beside.jobs_run
        mine.save([_record(f"b-{i}", 100 + i) for i in range(10)])
        assert _beside.jobs_run == before
        assert sorted(mine._index.ids[: mine._index.n]) == sorted(
            [f"a-{i}" for i in range(10)] + [f"o-{i}" for i in range(10)] + [f"b-{i}" for i in range(10)])
        other.refresh()
        assert _rows_by_id(other) == _rows_by_id(mine)
    finally:
        mine.close()
        other.close()


def test_a_commit_that_fails_after_the_index_took_the_rows_leaves_the_index_as_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_rust: bool) -> None:
    """The COMMIT fails (a disk error, say) after the helper put the batch into the index: the save
    raises, and the index is rebuilt from the database, which holds nothing of the batch."""
    import sqlite3

    from crewai_rust.memory import _beside

    store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    try:
        store.save([_record(f"a-{i}", i) for i in range(20)])
        want = _index_state(store)
        real = _beside.beside
        ran: list[bool] = []

        def failing(job: Any, call: Any) -> Any:
            def commit() -> Any:
                while not _beside._done.is_set():  # let the job finish first: the worst case
                    _beside._done.wait(0.001)
                ran.append(True)
                store._store._conn.rollback()
                raise sqlite3.OperationalError("disk I/O error")

            return real(job, commit)

        monkeypatch.setattr(_beside, "beside", failing)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            store.save([_record(f"b-{i}", 100 + i) for i in range(20)])
        assert ran
        monkeypatch.setattr(_beside, "beside", real)
        assert _index_state(store) == want
        assert store.count() == 20 and store.get_record("b-0") is None
        store.save([_record(f"c-{i}", 200 + i) for i in range(5)])  # the store goes on
        assert store._index.n == 25 and store.count() == 25
    finally:
        store.close()


@pytest.mark.crew
def test_a_crew_saving_memories_updates_the_index_beside_the_commit_and_checkpoints_in_a_pause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    use_rust: bool) -> None:
    from crewai import Agent, Crew, Task

    from crewai_rust.memory import _beside
    from crewai_rust.testing import ScriptedLLM, crew_embedder_config

    import time

    from crewai_rust.memory import _checkpoint

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    monkeypatch.setattr(_checkpoint, "CHECKPOINT_BYTES", 1)  # a checkpoint is due after every save
    monkeypatch.setattr(_checkpoint, "QUIET_S", 0.05)
    crewai_rust.patch("memory")

    def extract(text: str) -> list[str]:
        return [f"fact {i} about the owl: {text[:40]}" for i in range(5)]

    tasks_llm = ScriptedLLM(extract_memories=extract)
    agent = Agent(role="Researcher", goal="learn about birds", backstory="a careful birder", llm=tasks_llm)
    tasks = [Task(description=f"Describe the barn owl's {part}", expected_output="a sentence", agent=agent)
             for part in ("wings", "call")]
    crew = Crew(agents=[agent], tasks=tasks, memory=True, embedder=crew_embedder_config(64))
    before = _beside.jobs_run
    crew.kickoff()
    crew._memory.drain_writes()
    store = crew._memory._storage
    assert isinstance(store, RustMemoryStorage)
    assert _beside.jobs_run > before  # a save after the first ran its index update beside its COMMIT
    checkpoints = store._store._checkpointer
    deadline = time.monotonic() + 10
    while checkpoints.runs == 0 and time.monotonic() < deadline:  # once the saves paused
        time.sleep(0.02)
    assert checkpoints.runs >= 1
    mine = _rows_by_id(store)
    other = RustMemoryStorage(store.path, use_rust=use_rust, snapshot=False)
    try:
        assert _rows_by_id(other) == mine
    finally:
        other.close()
