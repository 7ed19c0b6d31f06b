"""``python -m crewai_rust memory stats URL`` and ``memory copy SRC DST``: SQLite and LanceDB into
PostgreSQL and back, record for record."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai_rust._cli import main  # noqa: E402
from crewai_rust.memory import RustMemoryStorage  # noqa: E402
from crewai_rust.memory._pg_persistence import store_exists  # noqa: E402

from _subprocess_env import child_env  # noqa: E402
from test_memory_parity import assert_same_records, make_records  # noqa: E402


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["memory", *argv])
    return code, capsys.readouterr().out


def test_sqlite_to_postgres_and_back(pg_server: Any, pg_url: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    records = make_records(80, seed=11)
    src = RustMemoryStorage(tmp_path / "src")
    src.save(records)
    want = src.list_records(limit=1000)
    src.close()
    url = pg_url + "?namespace=moved"

    code, out = _cli(capsys, "copy", str(tmp_path / "src"), url)
    assert code == 0 and "copied 80 records" in out and pg_server.password not in out
    code, out = _cli(capsys, "stats", url, "--json")
    assert code == 0 and pg_server.password not in out
    info = json.loads(out)
    assert info["records"] == 80 and info["vector_dim"] == 12 and "namespace moved" in info["path"]
    assert info["scopes"] == sorted({r.scope for r in records})

    code, out = _cli(capsys, "copy", str(tmp_path / "src"), url)  # refuses to double a store
    assert code == 1 and "--merge" in out
    code, out = _cli(capsys, "copy", str(tmp_path / "src"), url, "--merge")
    assert code == 0 and "(80 records there now)" in out

    code, out = _cli(capsys, "copy", url, str(tmp_path / "back"))
    assert code == 0 and "copied 80 records" in out
    back = RustMemoryStorage(tmp_path / "back")
    try:
        assert_same_records(back.list_records(limit=1000), want)
        query = records[3].embedding
        pg = RustMemoryStorage(url)
        try:
            assert [(r.id, s) for r, s in pg.search(query, limit=10)] == [(r.id, s) for r, s in back.search(query, limit=10)]
        finally:
            pg.close()
    finally:
        back.close()


def test_lancedb_to_postgres_and_back_to_lancedb(pg_url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("lancedb")
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    records = make_records(50, seed=12)
    lance = LanceDBStorage(path=str(tmp_path / "lance"))
    lance.save(records)
    code, out = _cli(capsys, "copy", str(tmp_path / "lance"), pg_url)
    assert code == 0 and "copied 50 records" in out and "(LanceDB)" in out
    code, out = _cli(capsys, "copy", pg_url, str(tmp_path / "lance2"), "--lancedb")
    assert code == 0 and "copied 50 records" in out
    again = LanceDBStorage(path=str(tmp_path / "lance2"))
    assert_same_records(again.list_records(limit=1000), lance.list_records(limit=1000))


def test_stats_of_a_missing_store_creates_nothing(pg_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _cli(capsys, "stats", pg_url, "--namespace", "nothing_here")
    assert code == 1 and "no crewai_rust memory store" in out
    assert not store_exists(pg_url, "nothing_here")
    code, out = _cli(capsys, "copy", pg_url + "?namespace=nothing_here", str(tmp_path / "x"))
    assert code == 1 and not store_exists(pg_url, "nothing_here")


def test_module_entry_point_prints_stats(pg_url: str, pg_server: Any) -> None:
    RustMemoryStorage(pg_url).close()
    proc = subprocess.run([sys.executable, "-m", "crewai_rust", "memory", "stats", pg_url],
                          capture_output=True, text=True, timeout=120, env=child_env())
    assert proc.returncode == 0, proc.stderr
    assert "records:    0" in proc.stdout and pg_server.password not in proc.stdout + proc.stderr
