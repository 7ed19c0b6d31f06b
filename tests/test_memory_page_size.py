"""New SQLite memory stores use 16 KiB pages (a 3072-float record fills one page, no overflow chain);
stores created before keep the page size they were made with, open unchanged, and hold the same rows.
"""

from __future__ import annotations

import sqlite3
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai.memory.types import MemoryRecord  # noqa: E402

from crewai_rust.memory import RustMemoryStorage  # noqa: E402
from crewai_rust.memory import _persistence  # noqa: E402
from crewai_rust.memory._checkpoint import WRITER_AUTOCHECKPOINT_BYTES  # noqa: E402

DIM = 3072


def _records(seed: int, n: int = 30) -> list[MemoryRecord]:
    rng = np.random.default_rng(seed)
    base = datetime(2025, 3, 1)
    return [MemoryRecord(id=f"p{seed}-{i}", content=f"page test {i}", scope=f"/crew/s{i % 3}",
                         categories=["a", f"c{i % 2}"], metadata={"k": i, "t": "x"}, importance=(i % 10) / 10,
                         created_at=base + timedelta(seconds=i), last_accessed=base,
                         embedding=rng.normal(size=DIM).tolist())
            for i in range(n)]


def _page_size(path: Path) -> int:
    conn = sqlite3.connect(str(path / _persistence.DB_FILENAME))
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def _tables(path: Path) -> Any:
    conn = sqlite3.connect(str(path / _persistence.DB_FILENAME))
    try:
        return (conn.execute("SELECT * FROM records ORDER BY seq").fetchall(),
                conn.execute("SELECT * FROM changes ORDER BY seq").fetchall(),
                conn.execute("SELECT key, value FROM meta WHERE key != 'snapshot_store_id' ORDER BY key").fetchall())
    finally:
        conn.close()


def test_a_new_store_has_16k_pages_and_a_64mb_writer_autocheckpoint(tmp_path: Path, use_rust: bool) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    try:
        store.save(_records(1))
        assert store._store.page_size == _persistence.NEW_STORE_PAGE_SIZE == 16_384
        pages = store._store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert pages * 16_384 == WRITER_AUTOCHECKPOINT_BYTES
    finally:
        store.close()
    assert _page_size(tmp_path) == 16_384


def test_an_existing_4k_store_keeps_its_pages_and_its_records(tmp_path: Path, use_rust: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(_persistence, "NEW_STORE_PAGE_SIZE", 4096)  # a store made before 16 KiB pages
        old = RustMemoryStorage(tmp_path, use_rust=use_rust)
        old.save(_records(2))
        old.close()
    assert _page_size(tmp_path) == 4096
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    try:
        assert store._store.page_size == 4096
        assert store._store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] * 4096 == WRITER_AUTOCHECKPOINT_BYTES
        assert store.count() == 30
        store.save(_records(3))
        hits = store.search(_records(2)[7].embedding, limit=1)
        assert hits[0][0].id == "p2-7" and hits[0][1] == pytest.approx(1.0)
    finally:
        store.close()
    assert _page_size(tmp_path) == 4096


def test_the_page_size_changes_no_stored_row(tmp_path: Path, use_rust: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = {}
    for pages in (4096, 16_384):
        with monkeypatch.context() as m:
            m.setattr(_persistence, "NEW_STORE_PAGE_SIZE", pages)
            dirs[pages] = tmp_path / f"p{pages}"
            store = RustMemoryStorage(dirs[pages], use_rust=use_rust)
            try:
                store.save(_records(4, 100))
                store.save(_records(4, 10))  # the same ids again: replaced in place
                store.delete(record_ids=["p4-50"])
            finally:
                store.close()
    assert _page_size(dirs[4096]) == 4096 and _page_size(dirs[16_384]) == 16_384
    assert _tables(dirs[4096]) == _tables(dirs[16_384])


def test_the_background_checkpoint_waits_for_a_pause_in_the_saves(tmp_path: Path, use_rust: bool,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Saves back to back never have a checkpoint beside them; once they pause it runs and
    copies the WAL into the file."""
    import time

    from crewai_rust.memory import _checkpoint

    monkeypatch.setattr(_checkpoint, "CHECKPOINT_BYTES", 1)  # due after every save
    monkeypatch.setattr(_checkpoint, "QUIET_S", 0.5)
    store = RustMemoryStorage(tmp_path, use_rust=use_rust, snapshot=False)
    try:
        keeper = store._store._checkpointer
        start = time.monotonic()
        for k in range(8):
            store.save(_records(100 + k, 5))
            if time.monotonic() - start < 0.45:  # still inside the burst (a loaded machine may pause)
                assert keeper.runs == 0
        deadline = time.monotonic() + 10
        while keeper.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert keeper.runs >= 1
        assert store.count() == 40
    finally:
        store.close()
