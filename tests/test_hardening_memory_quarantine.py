"""Issue 12, finding 2: a record that cannot be read back is quarantined, never fatal.

Stock CrewAI writes NaN, Infinity, integers past 64 bits and lone surrogates
into LanceDB metadata; before the fix importing such a table committed and
every later open failed. A row whose metadata is not an object made the store
unopenable too, and ``save`` of such a record raised only after its commit.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

from crewai.memory.types import MemoryRecord  # noqa: E402

from _subprocess_env import child_env  # noqa: E402

from crewai_rust.memory import RustMemoryStorage  # noqa: E402
from crewai_rust.memory._persistence import DB_FILENAME  # noqa: E402

DIM = 8


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crewai_rust", "memory", *args], capture_output=True, text=True,
                          env=child_env())


def rec(name: str, **kw: object) -> MemoryRecord:
    vec = np.random.default_rng(abs(hash(name)) % 2**32).normal(size=DIM).tolist()
    return MemoryRecord(id=name, content=f"memory {name}", embedding=vec, **kw)


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def test_stock_lancedb_metadata_imports_losslessly(tmp_path: Path, use_rust: bool,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    lance = LanceDBStorage(path=tmp_path)
    odd = {"nan": float("nan"), "inf": float("inf"), "big": 2**70, "s": "a\ud800b"}
    lance.save([rec("odd", metadata=odd), rec("plain", metadata={"k": 1})])
    caplog.set_level(logging.WARNING, "crewai_rust.memory")
    for _ in range(2):  # the first open imports, the second must open as well
        store = RustMemoryStorage(tmp_path, use_rust=use_rust)
        try:
            assert store.count() == 2
            got = store.get_record("odd").metadata
            assert math.isnan(got["nan"]) and got["inf"] == math.inf
            assert got["big"] == 2**70 and got["s"] == "a\ud800b"
            hits = store.search(rec("odd").embedding, metadata_filter={"big": 2**70}, limit=5)
            assert [r.id for r, _ in hits] == ["odd"]
        finally:
            store.close()
    assert len(_warnings(caplog, "'odd'")) == 1, caplog.text


def test_a_non_object_metadata_row_is_quarantined(tmp_path: Path, use_rust: bool,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    lance = LanceDBStorage(path=tmp_path)
    lance.save([rec("good"), MemoryRecord.model_construct(**{**rec("bad").__dict__, "metadata": [1, 2]})])
    caplog.set_level(logging.WARNING, "crewai_rust.memory")
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    try:
        assert [r.id for r in store.list_records()] == ["good"]
        assert store.search(rec("bad").embedding, metadata_filter={"k": 1}, limit=3) == []
    finally:
        store.close()
    assert len(_warnings(caplog, "'bad'")) == 1, caplog.text
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:
        assert conn.execute("SELECT id, metadata FROM quarantine").fetchall() == [("bad", "[1, 2]")]
    conn.close()


def test_a_foreign_row_found_at_open_is_moved_aside_once(tmp_path: Path, use_rust: bool,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    store.save([rec("a"), rec("b")])
    store.close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:  # a foreign writer
        conn.execute("UPDATE records SET metadata = 'not json' WHERE id = 'b'")
    conn.close()
    caplog.set_level(logging.WARNING, "crewai_rust.memory")
    for _ in range(2):
        store = RustMemoryStorage(tmp_path, use_rust=use_rust)
        try:
            assert [r.id for r in store.list_records()] == ["a"]
        finally:
            store.close()
    assert len(_warnings(caplog, "'b'")) == 1, caplog.text
    out = _cli("check", str(tmp_path))
    assert out.returncode == 1 and "b" in out.stdout and "metadata is not JSON" in out.stdout, out
    out = _cli("check", "--repair", str(tmp_path))
    assert out.returncode == 0, out
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    try:
        assert sorted(r.id for r in store.list_records()) == ["a", "b"]
        assert store.get_record("b").metadata == {"unparsed_metadata": "not json"}
    finally:
        store.close()


def test_save_refuses_non_dict_metadata_before_the_commit(tmp_path: Path, use_rust: bool) -> None:
    store = RustMemoryStorage(tmp_path, use_rust=use_rust)
    try:
        store.save([rec("keep", metadata={"k": 1})])
        bad = MemoryRecord.model_construct(**{**rec("bad").__dict__, "metadata": [1]})
        with pytest.raises(ValueError, match="not a dict"):
            store.save([bad])
        assert [r.id for r in store.list_records()] == ["keep"]
        assert [r.id for r, _ in store.search(rec("keep").embedding, metadata_filter={"k": 1})] == ["keep"]
    finally:
        store.close()
