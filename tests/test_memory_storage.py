"""RustMemoryStorage on its own: bad input, lifecycle, several instances on one path, moving in."""

from __future__ import annotations

import asyncio
import sqlite3
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai.memory.storage.backend import EmbeddingDimensionMismatchError, StorageBackend  # noqa: E402
from crewai.memory.types import MemoryRecord  # noqa: E402

from crewai_rust.memory import MemoryStoreClosedError, RustMemoryStorage, StoreUnreadableError  # noqa: E402
from crewai_rust.memory import _persistence  # noqa: E402
from crewai_rust.memory._persistence import DB_FILENAME  # noqa: E402


def rec(i: int, dim: int = 8, **kw: object) -> MemoryRecord:
    vec = np.random.default_rng(i).normal(size=dim).tolist()
    return MemoryRecord(id=f"r{i}", content=f"memory {i}", embedding=vec, **kw)


@pytest.fixture
def store(tmp_path: Path, use_rust: bool) -> RustMemoryStorage:
    s = RustMemoryStorage(tmp_path, use_rust=use_rust)
    s.save([rec(i) for i in range(20)])
    yield s
    s.close()


def snapshot(s: RustMemoryStorage) -> list[tuple[str, str]]:
    return [(r.id, r.content) for r in s.list_records(limit=1000)]


def test_is_a_storage_backend(store: RustMemoryStorage, use_rust: bool) -> None:
    assert isinstance(store, StorageBackend)
    assert store.implementation == ("rust" if use_rust else "python")
    assert store.db_path.name == DB_FILENAME


def test_wrong_dimension_raises_crewai_error_and_keeps_everything(store: RustMemoryStorage) -> None:
    before = snapshot(store)
    with pytest.raises(EmbeddingDimensionMismatchError) as info:
        store.save([rec(100, dim=8), rec(101, dim=16)])
    assert (info.value.stored_dim, info.value.new_dim) == (8, 16)
    with pytest.raises(EmbeddingDimensionMismatchError) as info:
        store.save([rec(102, dim=4)])
    assert (info.value.stored_dim, info.value.new_dim) == (8, 4)
    with pytest.raises(EmbeddingDimensionMismatchError):
        store.update(rec(3, dim=5))
    with pytest.raises(EmbeddingDimensionMismatchError):
        store.search([0.0] * 9)
    assert snapshot(store) == before
    assert store.get_record("r3").embedding == pytest.approx(rec(3).embedding)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e39])
def test_non_finite_values_raise_and_nothing_is_written(store: RustMemoryStorage, bad: float) -> None:
    before = snapshot(store)
    poisoned = rec(200)
    poisoned.embedding[3] = bad
    with pytest.raises(ValueError, match="NaN or infinite|float32 range"):
        store.save([rec(201), poisoned])
    with pytest.raises(ValueError, match="NaN or infinite|float32 range"):
        store.search([bad] + [0.0] * 7)
    assert snapshot(store) == before


def test_empty_content_raises(store: RustMemoryStorage) -> None:
    before = snapshot(store)
    with pytest.raises(ValueError, match="empty content"):
        store.save([rec(300), MemoryRecord(content="  ", embedding=[0.0] * 8)])
    assert snapshot(store) == before


def test_closed_store_raises_clearly(tmp_path: Path, use_rust: bool) -> None:
    s = RustMemoryStorage(tmp_path, use_rust=use_rust)
    s.save([rec(1)])
    s.close()
    s.close()  # twice is fine
    for call in (lambda: s.save([rec(2)]), lambda: s.search([0.0] * 8), lambda: s.count(),
                 lambda: s.list_records(), lambda: s.delete(record_ids=["r1"]), lambda: s.get_record("r1")):
        with pytest.raises(MemoryStoreClosedError, match="closed"):
            call()
    again = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert again.count() == 1
    again.close()


def test_unreadable_database_raises_and_is_left_untouched(tmp_path: Path, use_rust: bool) -> None:
    garbage = b"this is not a sqlite database" * 100
    (tmp_path / DB_FILENAME).write_bytes(garbage)
    with pytest.raises(StoreUnreadableError, match="left untouched"):
        RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert (tmp_path / DB_FILENAME).read_bytes() == garbage


def test_declared_dimension_and_reset_forgets_it(tmp_path: Path, use_rust: bool) -> None:
    s = RustMemoryStorage(tmp_path, vector_dim=8, use_rust=use_rust)
    with pytest.raises(EmbeddingDimensionMismatchError):
        s.save([rec(1, dim=4)])
    assert s.search([0.0] * 8) == []
    s.save([rec(1)])
    s.reset()
    assert s.count() == 0
    s2 = RustMemoryStorage(tmp_path, use_rust=use_rust)
    s2.save([rec(2, dim=16)])  # a new embedder after a reset
    assert s2.vector_dim == 16 and s.search([0.0] * 16)[0][0].id == "r2"
    with pytest.raises(ValueError, match="metric"):
        RustMemoryStorage(tmp_path, metric="dot")
    s.close()
    s2.close()


def test_records_without_embedding_get_zeros_like_lancedb(store: RustMemoryStorage) -> None:
    store.save([MemoryRecord(id="plain", content="no vector")])
    hits = store.search([0.0] * 8, limit=1)
    assert hits[0][0].id == "plain" and hits[0][1] == 1.0


def test_other_instances_see_writes_without_reloading(tmp_path: Path, use_rust: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    a = RustMemoryStorage(tmp_path, use_rust=use_rust)
    b = RustMemoryStorage(tmp_path, use_rust=use_rust)
    a.save([rec(i) for i in range(10)])
    query = rec(4).embedding
    assert b.search(query, limit=1)[0][0].id == "r4"
    reloads = []
    monkeypatch.setattr(b, "_reload", lambda: reloads.append(1))
    a.delete(record_ids=["r4"])
    a.save([rec(4, scope="/x").model_copy(update={"id": "r4b"})])
    assert [r.id for r, _ in b.search(query, limit=2)][0] == "r4b"
    assert b._index.n == 10 and not reloads  # applied the deltas, did not reload
    a.reset(scope_prefix="/x")
    assert b.search(query, limit=20) and "r4b" not in {r.id for r, _ in b.search(query, limit=20)}
    a.reset()
    assert b.search(query) == [] and b._index.n == 0
    a.close()
    b.close()


def test_a_reader_behind_a_trimmed_log_reloads(tmp_path: Path, use_rust: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_persistence, "_TRIM_EVERY", 5)
    monkeypatch.setattr(_persistence, "_CHANGES_KEPT", 3)
    a = RustMemoryStorage(tmp_path, use_rust=use_rust)
    b = RustMemoryStorage(tmp_path, use_rust=use_rust)
    for i in range(30):
        a.save([rec(i)])
    a.delete(record_ids=["r0", "r1"])
    assert b.count() == 28 and b._index.n == 0  # count reads SQLite; the index is still stale
    assert len(b.search(rec(5).embedding, limit=100)) == 28
    assert sorted(b._index.ids) == sorted(f"r{i}" for i in range(2, 30))
    a.close()
    b.close()


def test_cosine_metric(tmp_path: Path, use_rust: bool) -> None:
    s = RustMemoryStorage(tmp_path, metric="cosine", use_rust=use_rust)
    s.save([MemoryRecord(id="x", content="x", embedding=[1.0, 0.0]),
            MemoryRecord(id="y", content="y", embedding=[0.0, 5.0]),
            MemoryRecord(id="z", content="z", embedding=[0.0, 0.0])])
    hits = s.search([3.0, 3.0], limit=3)
    assert [r.id for r, _ in hits] == ["x", "y", "z"]  # x and y tie: earlier insertion first
    assert [sc for _, sc in hits] == pytest.approx([2**-0.5, 2**-0.5, 0.0])
    s.close()


def test_async_twins_and_touch(store: RustMemoryStorage) -> None:
    async def go() -> tuple[int, int]:
        await store.asave([rec(50)])
        hits = await store.asearch(rec(50).embedding, limit=1)
        gone = await store.adelete(record_ids=["r1"])
        return len(hits), gone

    assert asyncio.run(go()) == (1, 1)
    before = store.get_record("r2").last_accessed
    store.touch_records(["r2", "nope"])
    assert store.get_record("r2").last_accessed > before
    assert store.search(rec(2).embedding, limit=1)[0][0].last_accessed > before


def test_swap_remove_keeps_index_and_database_in_step(tmp_path: Path, use_rust: bool) -> None:
    rng = np.random.default_rng(0)
    s = RustMemoryStorage(tmp_path, use_rust=use_rust)
    live: dict[str, list[float]] = {}
    for step in range(300):
        i = int(rng.integers(0, 60))
        if rng.random() < 0.35 and live:
            victim = sorted(live)[int(rng.integers(0, len(live)))]
            assert s.delete(record_ids=[victim]) == 1
            del live[victim]
        else:
            r = rec(step, scope=f"/s{i % 4}").model_copy(update={"id": f"id{i}"})
            s.save([r])
            live[r.id] = r.embedding
    q = rng.normal(size=8)
    want = sorted(live, key=lambda k: float(((np.float32(live[k]) - q) ** 2).sum()))
    assert [r.id for r, _ in s.search(q.tolist(), limit=len(live))] == want
    fresh = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert [r.id for r, _ in fresh.search(q.tolist(), limit=100)] == want
    s.close()
    fresh.close()


def test_lancedb_store_is_imported_on_first_open(tmp_path: Path, use_rust: bool,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    lance = LanceDBStorage(path=tmp_path)
    records = [rec(i, scope="/imported", categories=["c"], metadata={"k": i}) for i in range(12)]
    lance.save(records)
    RustMemoryStorage(tmp_path, import_lancedb=False).close()  # a first open that died before importing
    with caplog.at_level("INFO", logger="crewai_rust.memory"):
        s = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert any("imported 12 records" in r.getMessage() for r in caplog.records)
    assert s.count() == 12
    assert [r.model_dump() for r in s.list_records()] == [r.model_dump() for r in lance.list_records()]
    q = rec(99).embedding
    assert [r.id for r, _ in s.search(q, limit=5)] == [r.id for r, _ in lance.search(q, limit=5)]
    s.close()
    lance.save([rec(500)])
    again = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert again.count() == 12  # imported once only
    again.close()


def test_cli_import_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from crewai_rust._cli import main

    LanceDBStorage(path=tmp_path / "lance").save([rec(i, scope=f"/p{i % 2}") for i in range(5)])
    assert main(["memory", "import-lancedb", str(tmp_path / "lance")]) == 0
    assert "imported 5 records" in capsys.readouterr().out
    assert main(["memory", "stats", str(tmp_path / "lance")]) == 0
    out = capsys.readouterr().out
    assert "records:    5" in out and "dimension:  8" in out and "/p1" in out
    assert main(["memory", "stats", str(tmp_path / "empty")]) == 1
    assert main(["memory", "import-lancedb", str(tmp_path / "empty")]) == 1


def test_database_is_plain_sqlite_with_float32_blobs(store: RustMemoryStorage) -> None:
    conn = sqlite3.connect(str(store.db_path))
    blob, = conn.execute("SELECT embedding FROM records WHERE id='r5'").fetchone()
    assert np.frombuffer(blob, dtype=np.float32).tolist() == pytest.approx(rec(5).embedding, rel=1e-6)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_older_than_accepts_aware_datetimes(store: RustMemoryStorage) -> None:
    from datetime import timezone

    assert store.delete(older_than=datetime(2000, 1, 1, tzinfo=timezone.utc)) == 0
    assert store.delete(older_than=datetime(2999, 1, 1, tzinfo=timezone.utc)) == 20


def test_cached_selections_follow_writes(store: RustMemoryStorage) -> None:
    q = rec(0).embedding
    store.save([rec(400, scope="/deep/a", metadata={"v": [1, 2]})])
    assert [r.id for r, _ in store.search(q, scope_prefix="/deep")] == ["r400"]
    assert [r.id for r, _ in store.search(q, metadata_filter={"v": [1, 2]})] == ["r400"]
    assert store.search(q, metadata_filter={"v": (1, 2)}) == []  # a tuple never equals the stored list
    store.save([rec(401, scope="/deep/b")])
    assert {r.id for r, _ in store.search(q, scope_prefix="/deep")} == {"r400", "r401"}
    store.delete(record_ids=["r400"])
    assert [r.id for r, _ in store.search(q, scope_prefix="/deep")] == ["r401"]


def test_metadata_goes_through_crewai_rust_json(store: RustMemoryStorage) -> None:
    """Metadata is encoded by crewai_rust.serialization: CrewJSONEncoder's conversions, NaN refused."""
    from uuid import UUID

    from crewai_rust.serialization import JSONEncodeError

    when = datetime(2026, 1, 2, 3, 4, 5)
    uid = UUID("12345678-1234-5678-1234-567812345678")
    store.save([rec(1, metadata={"when": when, "id": uid, "n": 3})])
    got = store.get_record(rec(1).id)
    assert got is not None
    assert got.metadata == {"when": when.isoformat(), "id": str(uid), "n": 3}
    before = snapshot(store)
    with pytest.raises(JSONEncodeError, match="metadata|NaN|nan|finite"):
        store.save([rec(2, metadata={"score": float("nan")})])
    assert snapshot(store) == before


def test_dropped_store_releases_its_connection(tmp_path: Path, use_rust: bool) -> None:
    """A store collected without close() closes its SQLite connection (no 3.13 ResourceWarning)."""
    import gc

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        dropped = RustMemoryStorage(tmp_path, use_rust=use_rust)
        dropped.save([rec(1)])
        del dropped
        gc.collect()
    reopened = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert [r.id for r in reopened.list_records()] == ["r1"]
    reopened.close()
