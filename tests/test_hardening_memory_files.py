"""Issue 12: a store whose file vanished refuses writes; errors say transient from damage, with the path."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai.memory.types import MemoryRecord  # noqa: E402

from crewai_rust.memory import RustMemoryStorage, StoreDamagedError, StoreFileGoneError  # noqa: E402
from crewai_rust.memory._persistence import DB_FILENAME, advice  # noqa: E402


def rec(i: int) -> MemoryRecord:
    return MemoryRecord(id=f"r{i}", content=f"memory {i} " + "x" * 300,
                        embedding=np.random.default_rng(i).normal(size=64).tolist())


@pytest.mark.parametrize("how", ["unlinked", "replaced"])
def test_a_write_after_the_file_vanished_is_refused(tmp_path: Path, use_rust: bool, how: str) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    try:
        store.save([rec(1)])
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / (DB_FILENAME + suffix)).unlink(missing_ok=True)
        if how == "replaced":
            sqlite3.connect(tmp_path / DB_FILENAME).close()
        with pytest.raises(StoreFileGoneError, match=str(tmp_path / DB_FILENAME)):
            store.save([rec(2)])
        with pytest.raises(StoreFileGoneError):
            store.delete(record_ids=["r1"])
    finally:
        store.close()


def test_damage_found_after_the_open_names_the_file(tmp_path: Path, use_rust: bool) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    store.save([rec(i) for i in range(400)])
    store.close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    path = tmp_path / DB_FILENAME
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(page * 3, len(data) - page, page * 2):  # damage interior pages, keep the schema page
        data[start : start + page] = b"\xff" * page
    path.write_bytes(bytes(data))
    with pytest.raises(StoreDamagedError) as info:
        store = RustMemoryStorage(tmp_path, use_rust=use_rust)
        store.list_records(limit=1000)
        store.count()
    assert str(path) in str(info.value) and "damaged" in str(info.value)


@pytest.mark.parametrize(
    "error, transient",
    [
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("attempt to write a readonly database"), True),
        (sqlite3.OperationalError("unable to open database file"), True),
        (sqlite3.DatabaseError("file is not a database"), False),
        (sqlite3.DatabaseError("database disk image is malformed"), False),
    ],
)
def test_advice_moves_the_file_only_for_damage(error: Exception, transient: bool) -> None:
    text = advice(error)
    assert ("move it away" in text) is (not transient), text
    assert "left untouched" in text
