"""``python -m crewai_rust memory check PATH|URL``: a sound store passes every check; each kind of damage
(an unreadable row, a NaN embedding, a write nobody logged, a gap in the log, an index out of step)
is named, on SQLite and on PostgreSQL alike; the URL's password never reaches the output."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai_rust._cli import main  # noqa: E402
from crewai_rust.memory import RustMemoryStorage  # noqa: E402
from crewai_rust.memory._check import Report, _pg_snapshot, _sqlite_snapshot, run_check  # noqa: E402
from crewai_rust.memory._persistence import DB_FILENAME  # noqa: E402

from test_memory_parity import make_records  # noqa: E402


class Backend:
    """One store target and raw SQL on its tables (what a foreign writer would do)."""

    def __init__(self, target: str, raw: Callable[[str, tuple[Any, ...]], None], table: Callable[[str], str],
                 secret: str | None = None) -> None:
        self.target, self.raw, self.table, self.secret = target, raw, table, secret


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        def raw(sql: str, params: tuple[Any, ...] = ()) -> None:
            with sqlite3.connect(tmp_path / DB_FILENAME) as conn:
                conn.execute(sql.replace("%s", "?"), params)
            conn.close()

        yield Backend(str(tmp_path), raw, lambda name: name)
        return
    pg_server = request.getfixturevalue("pg_server")
    url = request.getfixturevalue("pg_url") + "?namespace=checked"
    import psycopg

    plain = url.split("?")[0]

    def raw_pg(sql: str, params: tuple[Any, ...] = ()) -> None:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(sql, params)

    yield Backend(url, raw_pg, lambda name: f"checked.{name}", getattr(pg_server, "password", None))


def _cli(capsys: pytest.CaptureFixture[str], backend: Backend, *argv: str) -> tuple[int, str]:
    code = main(["memory", "check", backend.target, *argv])
    captured = capsys.readouterr()
    if backend.secret:
        assert backend.secret not in captured.out + captured.err
    return code, captured.out


def _filled(backend: Backend, use_rust: bool, n: int = 30) -> list[Any]:
    records = make_records(n, seed=5)
    store = RustMemoryStorage(backend.target, use_rust=use_rust)
    try:
        store.save(records)
        store.delete(record_ids=[records[0].id])
    finally:
        store.close()
    return records


def test_a_sound_store_passes_every_check(backend: Backend, use_rust: bool, capsys: pytest.CaptureFixture[str]) -> None:
    records = _filled(backend, use_rust)
    code, out = _cli(capsys, backend)
    assert code == 0, out
    assert f"ok       rows: all {len(records) - 1} decode" in out
    assert "ok       change log: " in out and "numbered without gaps" in out
    assert f"ok       index: {len(records) - 1} rows, the same records" in out
    assert "ok       change log agrees with the table" in out
    assert "PROBLEM" not in out and f"{len(records) - 1} records, 0 quarantined, 0 problems" in out


def test_a_row_written_without_a_log_entry_is_named(backend: Backend, use_rust: bool,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _filled(backend, use_rust)
    # A foreign writer copies a record under a new id without logging it: other processes never see it.
    columns = ("content, scope, categories, metadata, importance, created_at, created_us, last_accessed, "
               "source, private, embedding")
    backend.raw(f"INSERT INTO {backend.table('records')} (id, {columns}) SELECT 'smuggled', {columns} "
                f"FROM {backend.table('records')} LIMIT 1", ())
    code, out = _cli(capsys, backend)
    assert code == 1
    assert "PROBLEM  change log disagrees with the table" in out and "'smuggled' stored" in out, out
    assert "ok       rows:" in out  # the row itself is fine


def test_a_gap_in_the_change_log_is_named(backend: Backend, use_rust: bool, capsys: pytest.CaptureFixture[str]) -> None:
    _filled(backend, use_rust, n=5)
    num = "num" if backend.target.startswith("postgresql") else "seq"
    backend.raw(f"DELETE FROM {backend.table('changes')} WHERE {num} = 2", ())
    code, out = _cli(capsys, backend)
    assert code == 1 and "PROBLEM  change log: numbers are not a gap-free run" in out, out


def test_a_nan_embedding_is_named(backend: Backend, use_rust: bool, capsys: pytest.CaptureFixture[str]) -> None:
    records = _filled(backend, use_rust, n=5)
    bad = np.array(records[2].embedding, dtype=np.float32)
    bad[1] = np.nan
    backend.raw(f"UPDATE {backend.table('records')} SET embedding = %s WHERE id = %s", (bad.tobytes(), records[2].id))
    code, out = _cli(capsys, backend)
    assert code == 1 and "PROBLEM  dimension: 1 embeddings hold NaN or infinity" in out, out
    assert repr(records[2].id) in out


def test_an_unreadable_row_is_quarantined_listed_and_repaired(backend: Backend, use_rust: bool,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    records = _filled(backend, use_rust, n=6)
    victim = records[3].id
    backend.raw(f"UPDATE {backend.table('records')} SET metadata = 'not json' WHERE id = %s", (victim,))
    code, out = _cli(capsys, backend)
    assert code == 1 and repr(victim) in out and "metadata is not JSON" in out and "1 quarantined" in out, out
    assert "PROBLEM" not in out  # set aside at open: what remains is sound
    code, out = _cli(capsys, backend, "--repair")
    assert code == 0 and "[repaired]" in out and "0 quarantined, 0 problems" in out, out


def test_an_index_out_of_step_with_the_table_is_named(backend: Backend, use_rust: bool) -> None:
    records = _filled(backend, use_rust, n=6)
    store = RustMemoryStorage(backend.target, use_rust=use_rust)
    try:
        row = store._index.row_of[records[4].id]
        store._index.matrix[row, 0] += 1.0  # what a stale snapshot or a missed change would leave
        report = Report()
        snapshot = (_pg_snapshot(backend.target, None) if backend.target.startswith("postgresql")
                    else _sqlite_snapshot(Path(backend.target)))
        with snapshot as snap:
            run_check(store, snap, report)
    finally:
        store.close()
    assert any(f"{records[4].id!r} differs between the table and the index" in p for p in report.problems), report


def test_a_missing_store_is_said_without_the_password(pg_server: Any, pg_url: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["memory", "check", pg_url, "--namespace", "nobody_here"])
    out = capsys.readouterr().out
    assert code == 1 and "no crewai_rust memory store" in out and "nobody_here" in out
    assert getattr(pg_server, "password", "\0") not in out
