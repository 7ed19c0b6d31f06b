"""One SQLite library or two: the run-time check, and what each answer makes the twins do.

When both twins share one SQLite library instance, the Rust twin is the default
and may share CrewAI's files with stock (stdlib ``sqlite3``) code in-process;
the interleaved-writes scenario below is the one that lost half of its rows
while the Rust twin bundled its own SQLite. When they differ (monkeypatched
here), the Python twin is the default and cross-twin opens are refused.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import crewai_rust
from crewai_rust.database import RustSQLiteWrapper, _library, _shared, sqlite_library
from crewai_rust.database._library import LibrarySharing


def _require_shared() -> LibrarySharing:
    sharing = _library.library_sharing()
    if not sharing.shared:
        pytest.skip(f"this Python's SQLite is not shared with the Rust twin: {sharing.reason}")
    return sharing


@pytest.fixture
def separate_libraries(speedups: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[LibrarySharing]:
    """Make the process look like a Python that carries its own SQLite copy."""
    sharing = LibrarySharing(
        False, "test: separate SQLite copies", sqlite3.sqlite_version, speedups.sqlite_version(), 1, 2
    )
    monkeypatch.setattr(_library, "_cached", sharing)
    yield sharing
    _shared.close_all()


@pytest.fixture
def flows_settings() -> Iterator[None]:
    yield
    _shared.close_all()
    _shared.configure(use_rust=_shared.Settings().use_rust)


# -- detection -----------------------------------------------------------------------


def test_detection_compares_the_loaded_libraries(speedups: Any) -> None:
    report = sqlite_library()
    assert report["rust_sqlite"] == speedups.sqlite_version()
    assert report["python_sqlite"] == sqlite3.sqlite_version
    assert report["rust_address"] == speedups.sqlite_library_address() != 0
    assert report["python_address"] == _library.python_library_address()
    assert report["shared"] == (report["python_address"] == report["rust_address"])
    if report["shared"]:  # one library answers one version
        assert report["rust_sqlite"] == report["python_sqlite"]
        assert "one SQLite" in report["reason"]


def test_detection_says_why_when_libraries_differ(speedups: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_library, "python_library_address", lambda: speedups.sqlite_library_address() + 16)
    differ = _library._detect(speedups)
    assert not differ.shared and "different SQLite library copies" in differ.reason
    monkeypatch.setattr(_library, "python_library_address", lambda: None)
    hidden = _library._detect(speedups)
    assert not hidden.shared and "own SQLite copy" in hidden.reason


def test_detection_without_the_compiled_module_is_not_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_library, "_cached", None)
    monkeypatch.setenv("CREWAI_RUST_PUREPYTHON", "1")
    sharing = _library.library_sharing()
    assert not sharing.shared and "not running" in sharing.reason
    assert _library._cached is None  # not remembered: the module may run later
    assert _library.choose_rust(None) == (False, "the Rust twin is not running")


# -- shared library: the Rust twin is the default and shares files -------------------


def test_shared_library_makes_rust_the_default(tmp_path: Path, speedups: Any) -> None:
    _require_shared()
    db = RustSQLiteWrapper(tmp_path / "d.db")
    assert db.implementation == "rust" and "one SQLite" in db.implementation_reason
    db.close()
    state = crewai_rust.patch("database")["components"]["DATABASE"]
    assert state["implementation"] == "rust" and state["error"] is None
    assert _shared.current_settings().use_rust is True


def test_shared_library_lets_both_twins_open_one_file(tmp_path: Path, speedups: Any) -> None:
    _require_shared()
    path = tmp_path / "one.db"
    rust = RustSQLiteWrapper(path, use_rust=True)
    python = RustSQLiteWrapper(path, use_rust=False)  # refused only with separate libraries
    rust.execute("CREATE TABLE t (who TEXT, i INTEGER)")
    for i in range(50):
        rust.execute("INSERT INTO t VALUES ('rust', ?)", (i,))
        python.execute("INSERT INTO t VALUES ('python', ?)", (i,))
    expected = [("python", 50), ("rust", 50)]
    assert rust.query("SELECT who, count(*) FROM t GROUP BY who") == expected
    assert python.query("SELECT who, count(*) FROM t GROUP BY who") == expected
    python.close()
    rust.close()


def test_interleaved_writes_with_stock_code_lose_nothing(tmp_path: Path, use_rust: bool, flows_settings: None) -> None:
    """Our pool stays open while stock code opens and closes stdlib connections on the same files."""
    if use_rust:
        _require_shared()
    from crewai.flow.persistence.sqlite import SQLiteFlowPersistence

    from crewai_rust.database._flow_persistence import PooledFlowPersistence

    rounds = 60
    flows_path, raw_path = tmp_path / "flow_states.db", tmp_path / "raw.db"
    _shared.configure(use_rust=use_rust)
    ours, stock = PooledFlowPersistence(str(flows_path)), SQLiteFlowPersistence(str(flows_path))
    assert ours.implementation == ("rust" if use_rust else "python")
    raw = RustSQLiteWrapper(raw_path, use_rust=use_rust)
    raw.execute("CREATE TABLE t (who TEXT, i INTEGER)")
    for i in range(rounds):
        ours.save_state(f"ours-{i}", "step", {"i": i})
        stock.save_state(f"stock-{i}", "step", {"i": i})
        raw.execute("INSERT INTO t VALUES ('ours', ?)", (i,))
        with sqlite3.connect(raw_path) as plain:
            plain.execute("INSERT INTO t VALUES ('stdlib', ?)", (i,))
        plain.close()

    assert all(stock.load_state(f"ours-{i}") == {"i": i} for i in range(rounds))
    assert all(ours.load_state(f"stock-{i}") == {"i": i} for i in range(rounds))
    assert raw.query("SELECT who, count(*) FROM t GROUP BY who") == [("ours", rounds), ("stdlib", rounds)]
    raw.close()
    _shared.close_all()
    # A fresh process (its own SQLite, no shared state with ours) finds every row, intact.
    check = (
        "import sqlite3, sys\n"
        "for path, table in ((sys.argv[1], 'flow_states'), (sys.argv[2], 't')):\n"
        "    c = sqlite3.connect(path)\n"
        "    print(c.execute('PRAGMA integrity_check').fetchone()[0], "
        "c.execute('SELECT count(*) FROM ' + table).fetchone()[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check, str(flows_path), str(raw_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["ok", str(2 * rounds), "ok", str(2 * rounds)]


# -- separate libraries: the Python twin is the default, cross-twin opens refused ------


def test_separate_libraries_keep_python_the_default(
    tmp_path: Path, separate_libraries: LibrarySharing, caplog: pytest.LogCaptureFixture
) -> None:
    db = RustSQLiteWrapper(tmp_path / "d.db")
    assert db.implementation == "python" and separate_libraries.reason in db.implementation_reason
    db.close()
    with caplog.at_level(logging.INFO, logger="crewai_rust"):
        state = crewai_rust.patch("database")["components"]["DATABASE"]
    assert state["implementation"] == "python" and state["error"] is None
    assert _shared.current_settings().use_rust is False
    assert any(separate_libraries.reason in r.getMessage() for r in caplog.records)
    assert sqlite_library()["reason"] == separate_libraries.reason


def test_separate_libraries_forced_rust_warns(
    separate_libraries: LibrarySharing, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="crewai_rust"):
        state = crewai_rust.patch("database", database={"use_rust": True})["components"]["DATABASE"]
    assert state["implementation"] == "rust"
    assert any("stdlib sqlite3" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_separate_libraries_refuse_two_copies_on_one_file(tmp_path: Path, separate_libraries: LibrarySharing) -> None:
    path = tmp_path / "one.db"
    rust = RustSQLiteWrapper(path, use_rust=True)
    with pytest.raises(sqlite3.ProgrammingError, match="rust twin"):
        RustSQLiteWrapper(path, use_rust=False)
    second = RustSQLiteWrapper(path, use_rust=True)  # the same library twice is fine
    second.close()
    rust.close()
    RustSQLiteWrapper(path, use_rust=False).close()  # once closed, the other twin may open it
