"""The memory-mapped vector snapshot: a reopen maps it and replays only the log after its stamp.

Every test proves which path ran from ``snapshot_stats`` (restored / full loads /
rejected), never from timings, and checks the index against the database row by row.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_memory_crew import _crew

from crewai_rust.memory import RustMemoryStorage
from crewai_rust.memory import _snapshot

DIM = 24


def _record(i: int, *, seed: int = 0, scope: str | None = None, dim: int = DIM) -> Any:
    from crewai.memory.types import MemoryRecord

    rng = np.random.default_rng(seed * 100_003 + i)
    return MemoryRecord(
        id=f"rec-{i}", content=f"memory {i} v{seed}", scope=scope or f"/crew/{i % 3}",
        categories=["even"] if i % 2 == 0 else ["odd", f"c{i % 5}"], metadata={"i": i % 4, "v": seed},
        embedding=rng.normal(size=dim).astype(np.float32).tolist(),
    )


def _index_rows(store: RustMemoryStorage) -> dict[str, tuple[Any, ...]]:
    """id -> (seq, scope, categories, metadata, embedding bytes) as the in-RAM index holds it."""
    idx = store._index
    return {
        rid: (int(idx.seqs[row]), idx.scopes.values[idx.scope_codes[row]],
              _key(idx.categories, idx.category_codes[row]), _key(idx.metadata, idx.metadata_codes[row]),
              idx.matrix[row].tobytes(), float(idx.sqnorms[row]))
        for row, rid in enumerate(idx.ids[: idx.n])
    }


def _key(interner: Any, code: int) -> str:
    return next(k for k, c in interner.codes.items() if c == code)


def assert_index_is_the_database(store: RustMemoryStorage) -> None:
    """Every row of the index is the database's current row (no stale vector, nothing missing)."""
    store.refresh()
    _, _, batches = store._store.load_index_rows()
    db = {r[1]: r for rows in batches for r in rows}
    got = _index_rows(store)
    assert sorted(got) == sorted(db)
    for rid, (seq, scope, cats, meta, blob, sqnorm) in got.items():
        dseq, _, dscope, dcats, dmeta, demb = db[rid]
        assert (seq, scope, cats, meta, blob) == (int(dseq), dscope, dcats, dmeta, bytes(demb)), rid
        vector = np.frombuffer(blob, dtype=np.float32)
        assert sqnorm == pytest.approx(float(np.dot(vector, vector)), rel=1e-6)
    assert_shadow_is_the_matrix(store)


def assert_shadow_is_the_matrix(store: RustMemoryStorage) -> None:
    """A kept float16 shadow is the one built from the float32 rows now (never a stale or zeroed row)."""
    from crewai_rust.memory import _vector_py

    idx = store._index
    if not idx.shadow_enabled:
        return
    n = idx.n
    want = _vector_py.shadow_rows(idx.matrix[:n])
    got = [a[:n] for a in idx.shadow()]
    assert np.array_equal(got[0].view(np.uint16), want[0].view(np.uint16))
    assert np.array_equal(got[1], want[1])
    for a, b in zip(got[2:], want[2:]):  # the twins round the bound sums up alike, to an ulp or two
        assert (np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64)) <= 2).all()


def _answers(store: RustMemoryStorage, seed: int = 7) -> list[Any]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3):
        query = rng.normal(size=DIM).tolist()
        for kwargs in ({}, {"scope_prefix": "/crew/1"}, {"categories": ["odd"]}, {"metadata_filter": {"i": 2}}):
            out.append([(r.id, r.content, s) for r, s in store.search(query, limit=7, **kwargs)])
    return out


def _reference(path: Path, use_rust: bool) -> list[Any]:
    """The same searches on the same database, loaded without a snapshot."""
    plain = RustMemoryStorage(path, use_rust=use_rust, snapshot=False)
    try:
        assert plain.snapshot_stats == {"enabled": False}
        return _answers(plain)
    finally:
        plain.close()


def _written(path: Path, use_rust: bool, count: int = 40) -> RustMemoryStorage:
    store = RustMemoryStorage(path, use_rust=use_rust, snapshot_after=1)
    store.save([_record(i) for i in range(count)])
    assert store.save_snapshot()
    assert store.snapshot_stats["last_stamp"] == store._seen
    return store


def test_reopen_maps_the_snapshot(tmp_path: Path, use_rust: bool) -> None:
    first = _written(tmp_path, use_rust)
    expected = _answers(first)
    first.close()
    assert (tmp_path / _snapshot.SQLITE_NAME).exists()

    again = RustMemoryStorage(tmp_path, use_rust=use_rust)
    stats = again.snapshot_stats
    assert (stats["restored"], stats["restored_rows"], stats["full_loads"], stats["replayed"]) == (1, 40, 0, 0)
    assert not again._index.matrix.flags.owndata  # a view of the mapped file, not a copy
    assert_index_is_the_database(again)
    assert _answers(again) == expected == _reference(tmp_path, use_rust)
    again.close()


def test_changes_after_the_stamp_are_replayed(tmp_path: Path, use_rust: bool) -> None:
    first = _written(tmp_path, use_rust)
    first.close()
    # Another writer, snapshots off: updates (new vector, new scope), deletes and inserts after the stamp.
    other = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    other.save([_record(i, seed=1, scope="/moved") for i in range(0, 10)])
    other.delete(record_ids=[f"rec-{i}" for i in range(10, 15)])
    other.delete(scope_prefix="/crew/2", categories=["even"])
    other.save([_record(i, seed=2) for i in range(40, 50)])
    other.close()

    again = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot_after=10**6)
    stats = again.snapshot_stats
    assert stats["restored"] == 1 and stats["full_loads"] == 0
    assert stats["replayed"] > 0
    assert again.get_record("rec-3").scope == "/moved"
    assert again.get_record("rec-12") is None
    assert_index_is_the_database(again)
    # the updated vector is served, not the snapshot's
    row = again._index.row_of["rec-3"]
    assert again._index.matrix[row].tolist() == pytest.approx(_record(3, seed=1).embedding)
    assert _answers(again) == _reference(tmp_path, use_rust)
    again.close()


def test_writes_while_a_snapshot_is_written_never_reach_it(tmp_path: Path, use_rust: bool) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot_after=10**6)
    store.save([_record(i) for i in range(20)])
    index = store._index
    before = _index_rows(store)
    with store._lock:
        frozen = index.freeze(store._seen)
        # the index writes while the (would-be background) writer still holds the frozen arrays
        store.save([_record(i, seed=5) for i in range(5)])
        store.delete(record_ids=["rec-19"])
    assert store._snapshots._write_with_token(frozen, None)  # the file and its database token
    index.thaw(frozen)
    got = _snapshot.read_snapshot(store._snapshots.path, store._snapshots._store_id, DIM, store._store.head())
    assert got.stamp == frozen.stamp and got.n == 20
    for row, rid in enumerate(got.ids):
        assert got.matrix[row].tobytes() == before[rid][4]
    assert _index_rows(store) != before  # the live index did change
    store.close()
    again = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert again.snapshot_stats["restored"] == 1 and again.snapshot_stats["replayed"] == 6
    assert_index_is_the_database(again)
    again.close()


def test_new_records_saved_while_a_snapshot_is_written_go_in_place_and_never_reach_it(
        tmp_path: Path, use_rust: bool) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot_after=10**6)
    store.save([_record(i) for i in range(20)])
    index = store._index
    before = _index_rows(store)
    with store._lock:
        frozen = index.freeze(store._seen)
        matrix = index.matrix
        store.save([_record(i) for i in range(20, 30)])  # new ids: appended past the frozen rows
        assert index.matrix is matrix  # not copied
        store.save([_record(i) for i in range(30, 31)])  # one new record: the row-by-row path
        assert index.matrix is matrix
        store.save([_record(3, seed=5), _record(40)])  # an update reaches a frozen row: copied first
        assert index.matrix is not matrix
    assert frozen.matrix.base is matrix or frozen.matrix.base is matrix.base
    assert store._snapshots._write_with_token(frozen, None)  # the file and its database token
    index.thaw(frozen)
    got = _snapshot.read_snapshot(store._snapshots.path, store._snapshots._store_id, DIM, store._store.head())
    assert got.stamp == frozen.stamp and got.n == 20
    for row, rid in enumerate(got.ids):
        assert got.matrix[row].tobytes() == before[rid][4]
    assert index.n == 32
    store.close()
    again = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert again.snapshot_stats["restored"] == 1 and again.count() == 32
    assert_index_is_the_database(again)
    again.close()


def _flip(offset_of: Any) -> Any:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        at = offset_of(path, len(data))
        data[at] ^= 0x40
        path.write_bytes(bytes(data))

    return damage


def _data_offset(path: Path) -> int:
    header = _snapshot.read_header(path)
    assert header is not None
    text = len(_snapshot._prefix(header)) - _snapshot._PREFIX.size
    return -(-(_snapshot._PREFIX.size + text) // _snapshot.BLOCK) * _snapshot.BLOCK


def _matrix_byte(path: Path, size: int) -> int:
    header = _snapshot.read_header(path)
    assert header is not None
    return _data_offset(path) + header["matrix_offset"] + header["matrix_bytes"] - 100  # the last row


def _halves_byte(path: Path, size: int) -> int:
    header = _snapshot.read_header(path)
    assert header is not None
    return _data_offset(path) + header["halves_offset"] + header["n"] * header["dim"] - 7  # mid-shadow


def _shadow_column_byte(path: Path, size: int) -> int:
    header = _snapshot.read_header(path)
    assert header is not None
    start, nbytes = header["sections"]["shadow_err"]
    return _data_offset(path) + start + nbytes // 2


def _truncate(keep: Any) -> Any:
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: keep(len(data))])

    return damage


def _foreign(path: Path) -> None:
    other = path.parent.parent / "other-store"
    store = RustMemoryStorage(other, snapshot_after=1)
    store.save([_record(i) for i in range(40)])
    store._snapshots.wait()
    store.close()
    shutil.copyfile(other / _snapshot.SQLITE_NAME, path)


DAMAGE = {
    "matrix bit flip": _flip(_matrix_byte),
    "column bit flip": _flip(lambda p, size: _snapshot.BLOCK + 3),
    "header bit flip": _flip(lambda p, size: 60),
    "truncated to half": _truncate(lambda size: size // 2),
    "truncated to the header": _truncate(lambda size: 100),
    "empty": _truncate(lambda size: 0),
    "another store's file": _foreign,
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_snapshot_is_ignored_and_rebuilt(tmp_path: Path, use_rust: bool, kind: str) -> None:
    path = tmp_path / "store"
    first = _written(path, use_rust)
    first.save([_record(i, seed=3) for i in range(30, 45)])  # the log tail the damaged file would need
    first._snapshots.wait()
    first.close()
    DAMAGE[kind](path / _snapshot.SQLITE_NAME)

    again = RustMemoryStorage(path, use_rust=use_rust, snapshot_after=10**6)
    stats = again.snapshot_stats
    assert stats["restored"] == 0 and stats["full_loads"] == 1 and len(stats["rejected"]) == 1, stats
    assert again.count() == 45
    assert_index_is_the_database(again)
    assert _answers(again) == _reference(path, use_rust)
    again._snapshots.wait()  # a rejected file is rewritten at once, whatever the threshold
    assert again.snapshot_stats["written"] == 1
    again.close()

    third = RustMemoryStorage(path, use_rust=use_rust)
    assert third.snapshot_stats["restored"] == 1 and third.snapshot_stats["restored_rows"] == 45
    assert_index_is_the_database(third)
    third.close()


def test_a_snapshot_newer_than_a_restored_database_is_ignored(tmp_path: Path, use_rust: bool) -> None:
    path = tmp_path / "store"
    store = RustMemoryStorage(path, use_rust=use_rust, snapshot_after=10**6)  # gives the store its id
    store.save([_record(i) for i in range(10)])
    store.close()
    backup = tmp_path / "backup.sqlite3"
    shutil.copyfile(path / "crewai_rust_memory.sqlite3", backup)
    later = _written(path, use_rust)  # 40 records, snapshot stamped past the backup's head
    later.close()
    shutil.copyfile(backup, path / "crewai_rust_memory.sqlite3")
    for suffix in ("-wal", "-shm"):
        (path / f"crewai_rust_memory.sqlite3{suffix}").unlink(missing_ok=True)

    again = RustMemoryStorage(path, use_rust=use_rust)
    assert again.snapshot_stats["restored"] == 0
    assert "past the store's change head" in again.snapshot_stats["rejected"][0]
    assert again.count() == 10
    assert_index_is_the_database(again)
    again.close()


def test_a_database_restored_from_a_backup_and_written_past_the_stamp_is_detected(tmp_path: Path,
                                                                                  use_rust: bool) -> None:
    """The head is past the stamp again, but the log entries up to it are not the ones the snapshot saw."""
    path = tmp_path / "store"
    db = path / "crewai_rust_memory.sqlite3"
    store = RustMemoryStorage(path, use_rust=use_rust, snapshot_after=10**6)
    store.save([_record(i) for i in range(10)])
    store.close()
    backup = tmp_path / "backup.sqlite3"
    shutil.copyfile(db, backup)
    lost = RustMemoryStorage(path, use_rust=use_rust, snapshot_after=10**6)
    lost.save([_record(i) for i in range(10, 20)])  # lost by the restore below
    lost.delete(record_ids=["rec-0"])
    assert lost.save_snapshot()
    stamp = lost.snapshot_stats["last_stamp"]
    lost.close()
    shutil.copyfile(backup, db)
    for suffix in ("-wal", "-shm"):
        (path / f"crewai_rust_memory.sqlite3{suffix}").unlink(missing_ok=True)
    writer = RustMemoryStorage(path, use_rust=use_rust, snapshot=False)  # leaves the snapshot file alone
    writer.save([_record(i, seed=3) for i in range(100, 115)])
    assert writer._store.head() > stamp  # written past the stamp: the head check alone cannot tell
    writer.close()

    again = RustMemoryStorage(path, use_rust=use_rust)
    stats = again.snapshot_stats
    assert stats["restored"] == 0 and stats["full_loads"] == 1, stats
    assert "does not hold its token" in stats["rejected"][0]
    assert again.count() == 25 and again.get_record("rec-15") is None and again.get_record("rec-0") is not None
    assert_index_is_the_database(again)
    assert {r.id for r, _ in again.search(_record(15).embedding, limit=50)} == {
        *(f"rec-{i}" for i in range(10)), *(f"rec-{i}" for i in range(100, 115))}
    again.close()


def test_a_log_trimmed_past_the_stamp_loads_everything(tmp_path: Path, use_rust: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai_rust.memory import _persistence

    first = _written(tmp_path, use_rust)
    first.close()
    monkeypatch.setattr(_persistence, "_CHANGES_KEPT", 5)
    monkeypatch.setattr(_persistence, "_TRIM_EVERY", 5)
    writer = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    for i in range(30):
        writer.save([_record(i, seed=4)])
    writer.close()

    again = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot_after=10**6)
    stats = again.snapshot_stats
    assert stats["restored"] == 0 and stats["full_loads"] == 1
    assert stats["rejected"] == ["the change log was trimmed past its stamp"]
    assert_index_is_the_database(again)
    assert _answers(again) == _reference(tmp_path, use_rust)
    again.close()


def test_a_reset_after_the_stamp_empties_the_index(tmp_path: Path, use_rust: bool) -> None:
    first = _written(tmp_path, use_rust)
    first.close()
    other = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    other.reset()
    other.close()
    again = RustMemoryStorage(tmp_path, use_rust=use_rust)
    assert again.snapshot_stats["restored"] == 1
    assert again._index.n == 0 and again.count() == 0
    again.save([_record(1, dim=8)])  # the reset forgot the dimension: a new one is accepted
    assert again.vector_dim == 8 and again._index.dim == 8
    assert_index_is_the_database(again)
    again.close()


def test_snapshots_written_in_the_background_after_enough_changes(tmp_path: Path, use_rust: bool) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot_after=25)
    for i in range(24):
        store.save([_record(i)])
    store._snapshots.wait()
    assert store.snapshot_stats["written"] == 0 and not (tmp_path / _snapshot.SQLITE_NAME).exists()
    store.save([_record(24)])
    store._snapshots.wait()
    assert store.snapshot_stats["written"] == 1 and store.snapshot_stats["last_stamp"] == 25
    store.close()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_snapshot_off_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_snapshot.SNAPSHOT_ENV, "0")
    store = RustMemoryStorage(tmp_path, snapshot_after=1)
    store.save([_record(i) for i in range(5)])
    assert store.save_snapshot() is False and store.snapshot_stats == {"enabled": False}
    store.close()
    assert not (tmp_path / _snapshot.SQLITE_NAME).exists()
    monkeypatch.setenv(_snapshot.SNAPSHOT_ENV, "1")
    monkeypatch.setenv(_snapshot.SNAPSHOT_AFTER_ENV, "3")
    store = RustMemoryStorage(tmp_path)
    assert store.snapshot_stats["after"] == 3
    store.close()
    with pytest.raises(ValueError, match="snapshot_after"):
        RustMemoryStorage(tmp_path, snapshot_after=0)
    monkeypatch.setenv(_snapshot.SNAPSHOT_AFTER_ENV, "zero")
    with pytest.raises(ValueError, match=_snapshot.SNAPSHOT_AFTER_ENV):
        RustMemoryStorage(tmp_path)


def test_patch_passes_the_snapshot_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crewai_rust
    from crewai.memory.unified_memory import Memory

    from crewai_rust.testing import HashEmbedder, ScriptedLLM

    state = crewai_rust.patch("memory", memory={"snapshot_after": 7, "snapshot_dir": str(tmp_path / "snaps")})
    assert state["components"]["MEMORY"]["enabled"], state
    try:
        memory = Memory(storage=str(tmp_path / "mem"), embedder=HashEmbedder(DIM), llm=ScriptedLLM())
        stats = memory._storage.snapshot_stats
        assert stats["after"] == 7 and Path(stats["path"]).parent == tmp_path / "snaps"
    finally:
        crewai_rust.unpatch()


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path: Path) -> None:
    target = tmp_path / _snapshot.SQLITE_NAME
    dead = tmp_path / f".{target.name}.999999999.deadbeef.tmp"  # no such process
    mine = tmp_path / f".{target.name}.{os.getpid()}.cafecafe.tmp"
    dead.write_bytes(b"partial")
    mine.write_bytes(b"in progress")
    assert _snapshot.remove_stale_temps(target) == 1
    assert not dead.exists() and mine.exists()


# -- PostgreSQL: the snapshot lives in a per-host cache directory ----------------------------
def test_postgres_store_reopens_from_its_cached_snapshot(pg_url: str, pg_server: Any, tmp_path: Path,
                                                         use_rust: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_snapshot.SNAPSHOT_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = RustMemoryStorage(url=pg_url, namespace="snap_a", use_rust=use_rust, snapshot_after=1)
    first.save([_record(i) for i in range(40)])
    assert first.save_snapshot()
    path = Path(first.snapshot_stats["path"])
    assert path.parent == tmp_path / "cache" / "crewai_rust" / "memory-snapshots"
    expected = _answers(first)
    first.close()
    # nothing of the URL (least of all the password) is in the name or the file
    blob = path.read_bytes()
    password = pg_server.password
    assert password and password.encode() not in blob and password not in path.name
    assert b"snap_a" not in blob and b"postgresql" not in blob

    # another process (snapshots off) writes after the stamp: updates, deletes, inserts
    other = RustMemoryStorage(url=pg_url, namespace="snap_a", use_rust=use_rust, snapshot=False)
    other.save([_record(i, seed=1, scope="/moved") for i in range(5)])
    other.delete(record_ids=["rec-7", "rec-8"])
    other.save([_record(i, seed=2) for i in range(40, 44)])
    expected_after = _answers(other)
    other.close()
    assert expected_after != expected

    again = RustMemoryStorage(url=pg_url, namespace="snap_a", use_rust=use_rust)
    stats = again.snapshot_stats
    assert (stats["restored"], stats["restored_rows"], stats["full_loads"]) == (1, 40, 0)
    assert stats["replayed"] == 11
    assert_index_is_the_database(again)
    assert _answers(again) == expected_after
    again.close()

    # another namespace of the same database has its own file
    tenant = RustMemoryStorage(url=pg_url, namespace="snap_b", use_rust=use_rust, snapshot_after=1)
    tenant.save([_record(1)])
    assert tenant.save_snapshot() and Path(tenant.snapshot_stats["path"]) != path
    tenant.close()


def _pg_tables(url: str, namespace: str, to: str) -> None:
    """Copy the store's tables (and its row sequence) from ``namespace`` to ``to``: a backup, or its restore."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{to}"')
        for table in ("meta", "head", "records", "changes", "quarantine"):
            if conn.execute("SELECT to_regclass(%s)", (f"{to}.{table}",)).fetchone()[0] is None:
                conn.execute(f'CREATE TABLE "{to}".{table} AS SELECT * FROM "{namespace}".{table}')
            else:
                conn.execute(f'DELETE FROM "{to}".{table}')
                conn.execute(f'INSERT INTO "{to}".{table} SELECT * FROM "{namespace}".{table}')
        seq = conn.execute(f'SELECT last_value FROM "{namespace}".record_seq').fetchone()[0]
        conn.execute(f'CREATE SEQUENCE IF NOT EXISTS "{to}".record_seq')
        conn.execute("SELECT setval(%s, %s)", (f"{to}.record_seq", seq))


def test_postgres_restored_backup_written_past_the_stamp_is_detected(pg_url: str, tmp_path: Path,
                                                                      use_rust: bool) -> None:
    first = RustMemoryStorage(url=pg_url, namespace="snap_r", use_rust=use_rust, snapshot_dir=tmp_path,
                              snapshot_after=10**6)
    first.save([_record(i) for i in range(10)])
    first.close()
    _pg_tables(pg_url, "snap_r", "snap_r_backup")
    lost = RustMemoryStorage(url=pg_url, namespace="snap_r", use_rust=use_rust, snapshot_dir=tmp_path,
                             snapshot_after=10**6)
    lost.save([_record(i) for i in range(10, 20)])  # lost by the restore below
    lost.delete(record_ids=["rec-0"])
    assert lost.save_snapshot()
    stamp = lost.snapshot_stats["last_stamp"]
    lost.close()
    _pg_tables(pg_url, "snap_r_backup", "snap_r")  # the restore
    writer = RustMemoryStorage(url=pg_url, namespace="snap_r", use_rust=use_rust, snapshot=False)
    writer.save([_record(i, seed=3) for i in range(100, 115)])
    assert writer._store.head() > stamp
    writer.close()

    again = RustMemoryStorage(url=pg_url, namespace="snap_r", use_rust=use_rust, snapshot_dir=tmp_path)
    stats = again.snapshot_stats
    assert stats["restored"] == 0 and stats["full_loads"] == 1, stats
    assert "does not hold its token" in stats["rejected"][0]
    assert again.count() == 25 and again.get_record("rec-15") is None and again.get_record("rec-0") is not None
    assert_index_is_the_database(again)
    assert again._snapshots.wait(30) and again.snapshot_stats["written"] == 1  # rebuilt at once
    again.close()
    third = RustMemoryStorage(url=pg_url, namespace="snap_r", use_rust=use_rust, snapshot_dir=tmp_path)
    assert third.snapshot_stats["restored"] == 1 and third.snapshot_stats["restored_rows"] == 25
    assert_index_is_the_database(third)
    third.close()


def test_postgres_damaged_snapshot_is_rebuilt(pg_url: str, tmp_path: Path, use_rust: bool) -> None:
    first = RustMemoryStorage(url=pg_url, use_rust=use_rust, snapshot_after=1, snapshot_dir=tmp_path)
    first.save([_record(i) for i in range(30)])
    assert first.save_snapshot()
    path = Path(first.snapshot_stats["path"])
    first.close()
    _flip(_matrix_byte)(path)
    again = RustMemoryStorage(url=pg_url, use_rust=use_rust, snapshot_dir=tmp_path)
    assert again.snapshot_stats["restored"] == 0 and again.snapshot_stats["rejected"] == [
        "data checksum mismatch (damaged)"]
    assert_index_is_the_database(again)
    assert again._snapshots.wait(30) and again.snapshot_stats["written"] == 1
    again.close()
    third = RustMemoryStorage(url=pg_url, use_rust=use_rust, snapshot_dir=tmp_path)
    assert third.snapshot_stats["restored"] == 1
    assert_index_is_the_database(third)
    third.close()


# -- a real offline crew: its memory reopens from the snapshot -------------------------------
@pytest.mark.crew
def test_a_crew_reopens_its_memory_from_the_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     use_rust: bool) -> None:
    import crewai_rust
    from crewai_rust.memory._activation import open_stores

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    monkeypatch.setenv(_snapshot.SNAPSHOT_AFTER_ENV, "1")
    crewai_rust.patch("memory")
    first = _crew("hunting")
    first.kickoff()
    first._memory.drain_writes()
    store = first._memory._storage
    assert isinstance(store, RustMemoryStorage) and store.count() > 0
    assert store._snapshots.wait(30)
    assert store.snapshot_stats["written"] >= 1  # written in the background as the crew saved
    saved = {r.id for r in store.list_records(limit=1000)}
    crewai_rust.unpatch()

    # a new process would do the same: patch, build a crew, kick it off; its memory opens from the file
    crewai_rust.patch("memory")
    hits: list[int] = []
    second = _crew("hunting")
    reopened = next(iter(open_stores().values()), None) or second._memory._storage
    assert reopened is not store
    stats = reopened.snapshot_stats
    assert stats["restored"] == 1 and stats["full_loads"] == 0
    assert stats["restored_rows"] > 0 and reopened.count() == len(saved)
    original = reopened.search

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        hits.append(len(result))
        return result

    monkeypatch.setattr(reopened, "search", spy)
    second.kickoff()
    second._memory.drain_writes()
    assert hits and max(hits) > 0  # the second crew recalled the first crew's memories
    assert saved <= {r.id for r in reopened.list_records(limit=1000)}
    assert_index_is_the_database(reopened)
    crewai_rust.unpatch()


# -- any history: snapshot at random points, reopen, the index is the database -----------------
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("save"), st.lists(st.integers(0, 30), min_size=1, max_size=6), st.integers(0, 3)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 30), min_size=1, max_size=4), st.just(0)),
        st.tuples(st.just("scope"), st.lists(st.integers(0, 2), min_size=1, max_size=1), st.just(0)),
        st.tuples(st.just("snapshot"), st.just([]), st.just(0)),
        st.tuples(st.just("reopen"), st.just([]), st.just(0)),
        st.tuples(st.just("reset"), st.just([]), st.just(0)),
    ),
    min_size=1, max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_any_history_reopens_to_the_database(tmp_path_factory: pytest.TempPathFactory, use_rust: bool,
                                            ops: list[tuple[str, list[int], int]]) -> None:
    path = tmp_path_factory.mktemp("history")
    store = RustMemoryStorage(path, use_rust=use_rust, snapshot_after=10**6)
    try:
        for op, ids, seed in ops:
            if op == "save":
                store.save([_record(i, seed=seed) for i in ids])
            elif op == "delete":
                store.delete(record_ids=[f"rec-{i}" for i in ids])
            elif op == "scope":
                store.delete(scope_prefix=f"/crew/{ids[0]}")
            elif op == "reset":
                store.reset()
            elif op == "snapshot":
                store.save_snapshot()
            else:
                store.close()
                store = RustMemoryStorage(path, use_rust=use_rust, snapshot_after=10**6)
                assert not store.snapshot_stats["rejected"]
                assert_index_is_the_database(store)
        store.close()
        store = RustMemoryStorage(path, use_rust=use_rust, snapshot_after=10**6)
        assert not store.snapshot_stats["rejected"]
        assert_index_is_the_database(store)
        if store.count():
            assert _answers(store) == _reference(path, use_rust)
    finally:
        store.close()


def test_a_snapshot_of_one_twin_serves_the_other(tmp_path: Path, speedups: Any) -> None:
    del speedups
    writer = _written(tmp_path, use_rust=True)
    writer.close()
    for flag in (False, True):
        store = RustMemoryStorage(tmp_path, use_rust=flag)
        assert store.snapshot_stats["restored"] == 1
        assert_index_is_the_database(store)
        assert _answers(store) == _reference(tmp_path, flag)
        store.close()


# -- the float16 shadow in the snapshot (format 2) -----------------------------------------------
def _written_with_shadow(path: Path, use_rust: bool, count: int = 40) -> RustMemoryStorage:
    store = RustMemoryStorage(path, use_rust=use_rust, shadow=True, snapshot_after=10**6)
    store.save([_record(i) for i in range(count)])
    store.search(_record(0).embedding, limit=3)  # "on" builds the shadow at the first search
    assert store._index.shadow() is not None
    assert store.save_snapshot()
    return store


def test_the_shadow_is_restored_from_the_snapshot_not_rebuilt(tmp_path: Path, use_rust: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai_rust.memory import _index, _vector_py

    first = _written_with_shadow(tmp_path, use_rust)
    expected = _answers(first)
    first.close()
    assert _snapshot.read_header(tmp_path / _snapshot.SQLITE_NAME)["halves_offset"] > 0

    def no_build(block: np.ndarray) -> Any:
        raise AssertionError("the shadow was rebuilt")

    monkeypatch.setattr(_vector_py, "shadow_rows", no_build)
    monkeypatch.setattr(_index, "shadow_rows", no_build)
    again = RustMemoryStorage(tmp_path, use_rust=use_rust, shadow=True)
    again._index.shadow_builder = no_build
    stats = again.snapshot_stats
    assert (stats["restored"], stats["restored_shadow"], stats["full_loads"]) == (1, True, 0)
    halves = again._index.halves
    assert not halves.flags.owndata and len(halves) > 40  # a view of the mapped file, spare rows included
    got = _answers(again)
    assert again._kernels.last in ("rust-f16", "numpy-f16")  # the first search scanned the restored shadow
    monkeypatch.undo()
    assert got == expected == _reference(tmp_path, use_rust)
    assert_index_is_the_database(again)
    again.close()

    off = RustMemoryStorage(tmp_path, use_rust=use_rust, shadow=False)  # a store without the shadow ignores it
    assert off.snapshot_stats["restored"] == 1 and not off.snapshot_stats["restored_shadow"]
    assert off._index.shadow() is None
    assert _answers(off) == expected
    off.close()


def test_a_restored_shadow_follows_the_log_tail_and_later_writes(tmp_path: Path, use_rust: bool) -> None:
    first = _written_with_shadow(tmp_path, use_rust)
    first.close()
    other = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    other.save([_record(i, seed=1, scope="/moved") for i in range(0, 10)])
    other.delete(record_ids=[f"rec-{i}" for i in range(10, 15)])
    other.save([_record(i, seed=2) for i in range(40, 140)])  # grows past the file's spare rows
    other.close()
    again = RustMemoryStorage(tmp_path, use_rust=use_rust, shadow=True, snapshot_after=10**6)
    assert again.snapshot_stats["restored_shadow"] and again.snapshot_stats["replayed"] > 0
    assert_index_is_the_database(again)
    again.save([_record(i, seed=3) for i in range(5, 25)])
    again.delete(record_ids=["rec-30", "rec-41"])
    assert_index_is_the_database(again)
    assert _answers(again) == _reference(tmp_path, use_rust)
    again.close()


def test_a_reload_of_an_index_keeping_its_shadow_rebuilds_it(tmp_path: Path, use_rust: bool) -> None:
    """A stale change log makes a store reload from the snapshot while its index keeps a shadow."""
    writer = RustMemoryStorage(tmp_path, use_rust=use_rust, shadow=False, snapshot_after=10**6)
    writer.save([_record(i) for i in range(40)])
    assert writer.save_snapshot()  # by a store without the shadow: the file holds none
    writer.close()
    store = RustMemoryStorage(tmp_path, use_rust=use_rust, shadow=True, snapshot_after=10**6)
    assert not store.snapshot_stats["restored_shadow"]
    store.search(_record(0).embedding, limit=3)
    assert store._index.shadow() is not None
    with store._lock:
        store._reload()
    assert store.snapshot_stats["restored"] == 2 and not store.snapshot_stats["restored_shadow"]
    assert store._index.shadow() is not None
    assert_index_is_the_database(store)
    assert _answers(store) == _reference(tmp_path, use_rust)
    store.close()


def _old_format(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:12] = (1).to_bytes(4, "little")  # what a format-1 writer put there
    path.write_bytes(bytes(data))


SHADOW_DAMAGE = {
    "format 1 (before the shadow)": _old_format,
    "halves bit flip": _flip(_halves_byte),
    "shadow column bit flip": _flip(_shadow_column_byte),
    "matrix bit flip": _flip(_matrix_byte),
    "truncated inside the halves": _truncate(lambda size: size - size // 6),
    "spare rows cut off": _truncate(lambda size: size - 4096),
}


@pytest.mark.parametrize("kind", sorted(SHADOW_DAMAGE))
def test_an_old_or_damaged_snapshot_with_a_shadow_is_refused_once_and_rebuilt(tmp_path: Path, use_rust: bool,
                                                                             kind: str) -> None:
    path = tmp_path / "store"
    first = _written_with_shadow(path, use_rust)
    first.save([_record(i, seed=3) for i in range(30, 45)])
    first.close()
    SHADOW_DAMAGE[kind](path / _snapshot.SQLITE_NAME)

    again = RustMemoryStorage(path, use_rust=use_rust, shadow=True, snapshot_after=10**6)
    stats = again.snapshot_stats
    assert stats["restored"] == 0 and stats["full_loads"] == 1 and len(stats["rejected"]) == 1, stats
    if kind.startswith("format"):
        assert stats["rejected"] == [f"format 1, expected {_snapshot.VERSION}"]
    assert again.count() == 45
    assert_index_is_the_database(again)
    assert _answers(again) == _reference(path, use_rust)
    again._snapshots.wait()  # rewritten at once, with the shadow the search built
    assert again.snapshot_stats["written"] == 1
    again.close()

    third = RustMemoryStorage(path, use_rust=use_rust, shadow=True)
    stats = third.snapshot_stats
    assert (stats["restored"], stats["restored_rows"], stats["rejected"]) == (1, 45, [])
    assert stats["restored_shadow"]
    assert_index_is_the_database(third)
    third.close()


_WORDS = st.lists(st.integers(0, 2**64 - 1), max_size=600)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=_WORDS, block=st.sampled_from([1, 3, 8, 32, 33, 64, 4096]), threads=st.integers(1, 3))
def test_compiled_block_sums_are_the_numpy_twins(speedups: Any, words: list[int], block: int, threads: int) -> None:
    """The Rust file check sums each block exactly as ``_snapshot.block_sums`` (wrapping uint64)."""
    array = np.array(words, dtype=np.uint64)
    got = np.frombuffer(speedups.snapshot_block_sums(array, block, threads), dtype="<u8")
    padded = np.zeros(-(-len(words) // block) * block, dtype=np.uint64)
    padded[: len(words)] = array
    want = padded.reshape(-1, block).sum(axis=1, dtype=np.uint64) if len(words) else np.zeros(0, np.uint64)
    assert got.tolist() == want.tolist()
    if block == _snapshot._WORDS and len(words) == block:
        assert got.tolist() == _snapshot.block_sums(array).tolist()


def test_compiled_block_sums_reject_bad_input(speedups: Any) -> None:
    with pytest.raises(ValueError):
        speedups.snapshot_block_sums(np.zeros((2, 4), dtype=np.uint64), 4)
    with pytest.raises(ValueError):
        speedups.snapshot_block_sums(np.zeros(8, dtype=np.uint64), 0)
    with pytest.raises((ValueError, TypeError, BufferError)):
        speedups.snapshot_block_sums(np.zeros(8, dtype=np.float64), 4)


def test_both_twins_check_a_snapshot_alike(tmp_path: Path, speedups: Any) -> None:
    """The Rust twin checks the file with the compiled sums, the Python twin with numpy's, to the same verdict."""
    first = _written_with_shadow(tmp_path, use_rust=True, count=3000)
    first.close()
    path = tmp_path / _snapshot.SQLITE_NAME
    store = RustMemoryStorage(tmp_path, use_rust=True, shadow=True)
    assert store._snapshots._sums is not None and store.snapshot_stats["restored_shadow"]
    store.close()
    sid = store._snapshots._store_id
    for sums in (None, _snapshot.compiled_block_sums(speedups)):
        got = _snapshot.read_snapshot(path, sid, DIM, 10**9, shadow=True, sums=sums)
        assert got.n == 3000 and got.shadow is not None
    _flip(_halves_byte)(path)
    for sums in (None, _snapshot.compiled_block_sums(speedups)):
        with pytest.raises(_snapshot.SnapshotRejected, match="shadow checksum"):
            _snapshot.read_snapshot(path, sid, DIM, 10**9, shadow=True, sums=sums)
