"""Issue 12, DATABASE: SQL that sqlite3 refuses is refused by both twins before it runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crewai_rust.database import RustSQLiteWrapper


@pytest.fixture
def db(tmp_path: Path, use_rust: bool) -> RustSQLiteWrapper:
    wrapper = RustSQLiteWrapper(tmp_path / "t.db", use_rust=use_rust)
    wrapper.execute("CREATE TABLE t (a INTEGER)")
    wrapper.executemany("INSERT INTO t (a) VALUES (?)", [(i,) for i in range(10)])
    yield wrapper
    wrapper.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda db: db.execute("DELETE FROM t\x00 WHERE a = 1"),
        lambda db: db.executemany("DELETE FROM t\x00 WHERE a = ?", [(1,), (2,)]),
        lambda db: db.query("SELECT a FROM t\x00 WHERE a = 1"),
        lambda db: db.query_one("SELECT a FROM t\x00 WHERE a = 1"),
        lambda db: db.execute("\x00"),
    ],
    ids=["execute", "executemany", "query", "query_one", "only-nul"],
)
def test_nul_in_sql_is_refused_and_changes_nothing(db: RustSQLiteWrapper, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(sqlite3.ProgrammingError, match="null character"):
        call(db)
    assert db.query_one("SELECT count(*) FROM t")[0] == 10


def test_nul_inside_a_bound_value_is_data(db: RustSQLiteWrapper) -> None:
    db.execute("CREATE TABLE s (v TEXT)")
    db.execute("INSERT INTO s (v) VALUES (?)", ("a\x00b",))
    assert db.query_one("SELECT v FROM s")[0] == "a\x00b"


class _Resizer:
    """Adapts to 1, and resizes the parameter dict while the binder reads it."""

    def __init__(self, params: dict[str, object]) -> None:
        self.params = params

    def __conform__(self, protocol: object) -> int:
        self.params.clear()
        self.params.update({f"x{i}": i for i in range(5)})
        return 1


def test_a_conform_that_resizes_the_params_never_panics(db: RustSQLiteWrapper) -> None:
    params: dict[str, object] = {}
    params.update({"a": _Resizer(params), "b": 2})
    try:
        got = db.query("SELECT :a, :b", params)
    except sqlite3.Error:
        return  # the python twin reads :b after the resize: "You did not supply a value"
    assert got == [(1, 2)]  # the rust twin binds the dict as it was when the call began
