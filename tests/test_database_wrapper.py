"""RustSQLiteWrapper under both twins: API, transactions, errors that change nothing, threads."""

from __future__ import annotations

import os
import sqlite3
import threading
import warnings
from pathlib import Path

import pytest

from crewai_rust.database import ExecResult, RustSQLiteWrapper


@pytest.fixture
def db(tmp_path: Path, use_rust: bool) -> RustSQLiteWrapper:
    wrapper = RustSQLiteWrapper(tmp_path / "t.db", use_rust=use_rust)
    wrapper.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL, blob BLOB)")
    yield wrapper
    wrapper.close()


def _count(db: RustSQLiteWrapper) -> int:
    return db.query_one("SELECT count(*) FROM t")[0]


def test_implementation_is_the_requested_twin(db: RustSQLiteWrapper, use_rust: bool) -> None:
    assert db.implementation == ("rust" if use_rust else "python")


def test_execute_query_and_row_shapes(db: RustSQLiteWrapper) -> None:
    first = db.execute("INSERT INTO t (name, score, blob) VALUES (?, ?, ?)", ("a", 1.5, b"\x00\x01"))
    assert first == ExecResult(rowcount=1, lastrowid=1)
    assert db.executemany("INSERT INTO t (name, score) VALUES (:n, :s)", [{"n": "b", "s": 2}, {"n": "c", "s": None}]) == 2
    assert db.query("SELECT id, name, score, blob FROM t ORDER BY id") == [
        (1, "a", 1.5, b"\x00\x01"),
        (2, "b", 2.0, None),
        (3, "c", None, None),
    ]
    assert db.query("SELECT name, score FROM t WHERE id = ?", [2], as_dict=True) == [{"name": "b", "score": 2.0}]
    assert db.query_one("SELECT name FROM t WHERE id = 3", as_dict=True) == {"name": "c"}
    assert db.query_one("SELECT name FROM t WHERE id = 99") is None
    assert db.execute("UPDATE t SET score = 0").rowcount == 3
    assert db.execute("SELECT 1").rowcount == -1


def test_file_is_wal_and_shared_with_plain_sqlite3(tmp_path: Path, use_rust: bool) -> None:
    path = tmp_path / "shared.db"
    db = RustSQLiteWrapper(path, use_rust=use_rust)
    db.execute("CREATE TABLE t (name TEXT)")
    db.execute("INSERT INTO t (name) VALUES ('x')")
    db.close()
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert plain.execute("SELECT name FROM t").fetchall() == [("x",)]
        plain.execute("INSERT INTO t (name) VALUES ('from-stdlib')")
    plain.close()
    db = RustSQLiteWrapper(path, use_rust=use_rust)
    assert db.query("SELECT name FROM t ORDER BY rowid") == [("x",), ("from-stdlib",)]
    db.close()


def test_file_prefixed_path_names_the_file_stdlib_would_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_rust: bool
) -> None:
    # sqlite3.connect("file:...") reads a URI or a literal name depending on how the
    # library was built (SQLITE_USE_URI); both twins must land on the file stdlib opens.
    monkeypatch.chdir(tmp_path)
    name = "file:odd.db"
    db = RustSQLiteWrapper(name, use_rust=use_rust)
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    db.close()
    with sqlite3.connect(name) as plain:
        assert plain.execute("SELECT x FROM t").fetchall() == [(1,)]
    plain.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) in (
        ["odd.db"],
        ["file:odd.db"],
    )


def test_transaction_commits_and_rolls_back(db: RustSQLiteWrapper) -> None:
    with db.transaction():
        db.execute("INSERT INTO t (name) VALUES ('kept')")
    with pytest.raises(sqlite3.IntegrityError):
        with db.transaction():
            db.execute("INSERT INTO t (name) VALUES ('lost')")
            db.execute("INSERT INTO t (name) VALUES ('kept')")  # UNIQUE violation
    assert db.query("SELECT name FROM t") == [("kept",)]


def test_nested_transaction_is_a_savepoint(db: RustSQLiteWrapper) -> None:
    with db.transaction():
        db.execute("INSERT INTO t (name) VALUES ('outer')")
        with pytest.raises(KeyError):
            with db.transaction():
                db.execute("INSERT INTO t (name) VALUES ('inner')")
                raise KeyError("undo inner only")
    assert db.query("SELECT name FROM t") == [("outer",)]


def test_transaction_is_invisible_to_other_threads_until_commit(db: RustSQLiteWrapper) -> None:
    seen: list[int] = []
    with db.transaction():
        db.execute("INSERT INTO t (name) VALUES ('pending')")
        reader = threading.Thread(target=lambda: seen.append(_count(db)))
        reader.start()
        reader.join()
        assert _count(db) == 1  # this thread sees its own write
    assert seen == [0]
    assert _count(db) == 1


def test_failing_executemany_changes_nothing(db: RustSQLiteWrapper) -> None:
    db.execute("INSERT INTO t (name) VALUES ('a')")
    with pytest.raises(sqlite3.IntegrityError):
        db.executemany("INSERT INTO t (name) VALUES (?)", [("b",), ("c",), ("a",)])
    assert db.query("SELECT name FROM t") == [("a",)]


@pytest.mark.parametrize(
    ("sql", "params", "error"),
    [
        ("SELEC 1", (), sqlite3.OperationalError),
        ("SELECT * FROM missing", (), sqlite3.OperationalError),
        ("SELECT ?", (1, 2), sqlite3.ProgrammingError),
        ("SELECT 1; SELECT 2", (), sqlite3.ProgrammingError),
        ("SELECT ?", ([1],), sqlite3.ProgrammingError),
        ("SELECT :a", {"b": 1}, sqlite3.ProgrammingError),
        ("SELECT ?", (2**63,), OverflowError),
        ("SELECT ?", 5, sqlite3.ProgrammingError),
    ],
)
def test_bad_sql_raises_sqlite3_errors_and_changes_nothing(
    db: RustSQLiteWrapper, sql: str, params: object, error: type[Exception]
) -> None:
    db.execute("INSERT INTO t (name) VALUES ('a')")
    with pytest.raises(error):
        db.query(sql, params)
    with pytest.raises(error):
        db.execute(sql, params)
    assert db.query("SELECT name FROM t") == [("a",)]


def test_unopenable_path_names_the_path(tmp_path: Path, use_rust: bool) -> None:
    bad = tmp_path / "no-such-dir" / "x.db"
    with pytest.raises(sqlite3.OperationalError, match="unable to open database file") as info:
        RustSQLiteWrapper(bad, use_rust=use_rust)
    assert str(bad) in str(info.value)
    assert not bad.parent.exists()


def test_non_database_file_is_refused_and_left_unchanged(tmp_path: Path, use_rust: bool) -> None:
    path = tmp_path / "notes.txt"
    content = b"these are notes, not a database\n" * 100
    path.write_bytes(content)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        RustSQLiteWrapper(path, use_rust=use_rust)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_closed_wrapper_refuses_work(tmp_path: Path, use_rust: bool) -> None:
    wrapper = RustSQLiteWrapper(tmp_path / "c.db", use_rust=use_rust)
    wrapper.close()
    assert wrapper.closed
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        wrapper.query("SELECT 1")


def test_memory_database_is_one_shared_connection(use_rust: bool) -> None:
    wrapper = RustSQLiteWrapper(":memory:", pool_size=4, use_rust=use_rust)
    wrapper.execute("CREATE TABLE m (x)")
    threads = [threading.Thread(target=wrapper.execute, args=("INSERT INTO m VALUES (1)",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrapper.query_one("SELECT count(*) FROM m") == (4,)


def test_bad_arguments_are_refused(tmp_path: Path, use_rust: bool) -> None:
    with pytest.raises(ValueError, match="pool_size"):
        RustSQLiteWrapper(tmp_path / "a.db", pool_size=0, use_rust=use_rust)
    with pytest.raises(sqlite3.ProgrammingError, match="synchronous"):
        RustSQLiteWrapper(tmp_path / "a.db", synchronous="SOMETIMES", use_rust=use_rust)
    wrapper = RustSQLiteWrapper(tmp_path / "a.db", use_rust=use_rust)
    with pytest.raises(ValueError, match="mode"):
        with wrapper.transaction("later"):
            pass


def test_eight_threads_write_and_read_without_lost_rows(db: RustSQLiteWrapper) -> None:
    errors: list[BaseException] = []
    per_thread = 60

    def work(n: int) -> None:
        try:
            for i in range(per_thread):
                if i % 3 == 0:
                    with db.transaction():
                        db.execute("INSERT INTO t (name) VALUES (?)", (f"{n}-{i}",))
                        db.query_one("SELECT count(*) FROM t")
                else:
                    db.execute("INSERT INTO t (name) VALUES (?)", (f"{n}-{i}",))
                db.query("SELECT id FROM t WHERE name = ?", (f"{n}-{i}",))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(db) == 8 * per_thread


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_use_after_fork_is_a_clear_error(db: RustSQLiteWrapper) -> None:
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns about fork with threads alive (r2d2's)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: must refuse the parent's connections
        try:
            db.query("SELECT 1")
            os.write(write, b"no error")
        except sqlite3.ProgrammingError as exc:
            os.write(write, b"ok" if "fork" in str(exc) else str(exc).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    assert os.read(read, 200) == b"ok"
    assert _count(db) == 0  # the parent's pool still works
