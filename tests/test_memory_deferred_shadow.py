"""A store that picks its kernels (``shadow=None``) checks a snapshot's float16 shadow after the open.

The open checks the float32 side only; a thread checks the shadow's halves beside the first
searches, and the index takes the mapped halves over once that check passed. Rows written in
between are rebuilt from their float32 rows; a damaged shadow is never scanned.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_memory_snapshot import (
    _answers,
    _flip,
    _halves_byte,
    _record,
    _reference,
    _written_with_shadow,
)

from crewai_rust.memory import RustMemoryStorage, _kernels, _snapshot


@pytest.fixture
def small_shadow(speedups: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores of a few rows keep the shadow too (the compiled twin, ``shadow=None``)."""
    monkeypatch.setattr(_kernels, "SHADOW_MIN_BYTES", 0)


def _checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Each ``checked_sums`` call: (thread name, regions)."""
    calls: list[tuple[str, int]] = []
    real = _snapshot.checked_sums

    def counted(*regions: np.ndarray, compiled: Any = None) -> list[np.ndarray]:
        calls.append((threading.current_thread().name, len(regions)))
        return real(*regions, compiled=compiled)

    monkeypatch.setattr(_snapshot, "checked_sums", counted)
    return calls


def _shadow_of_rows(store: RustMemoryStorage) -> tuple[np.ndarray, ...]:
    index = store._index
    built = store._kernels.shadow_rows(np.ascontiguousarray(index.matrix[: index.n]))
    return tuple(np.asarray(a) for a in built)


def _assert_shadow_matches_rows(store: RustMemoryStorage) -> None:
    index = store._index
    shadow = index.shadow()
    assert shadow is not None
    want = _shadow_of_rows(store)
    n = index.n
    assert shadow[0][:n].view(np.uint16).tolist() == want[0].view(np.uint16).tolist()
    for got, expected in zip(shadow[1:], want[1:]):
        assert got[:n].tolist() == expected.tolist()


def test_the_open_checks_float32_only_and_the_shadow_is_taken_over_after(
        tmp_path: Path, small_shadow: None, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _written_with_shadow(tmp_path, use_rust=True)
    expected = _answers(first)
    first.close()
    calls = _checks(monkeypatch)

    store = RustMemoryStorage(tmp_path, use_rust=True, snapshot_after=10**6)
    deferred = store._index.deferred_shadow
    assert deferred is not None
    assert calls[0] == (threading.current_thread().name, 1)  # the open: the float32 region alone
    stats = store.snapshot_stats
    assert (stats["restored"], stats["restored_shadow"], stats["full_loads"]) == (1, False, 0)
    assert store._index.shadow() is None
    deferred.join()
    assert calls[1:] == [("crewai_rust-memory-shadow-check", 1)]
    assert deferred.verdict()

    got = _answers(store)  # the first search takes the checked shadow over
    halves = store._index.halves
    assert not halves.flags.owndata and len(halves) > 40  # the file's mapping, not a rebuild
    assert store.snapshot_stats["restored_shadow"] and store._index.deferred_shadow is None
    assert got == expected == _reference(tmp_path, use_rust=True)
    _assert_shadow_matches_rows(store)
    store.close()


def test_rows_written_before_the_take_over_get_their_shadow_rebuilt(
        tmp_path: Path, small_shadow: None) -> None:
    first = _written_with_shadow(tmp_path, use_rust=True)
    first.close()
    store = RustMemoryStorage(tmp_path, use_rust=True, snapshot_after=10**6)
    assert store._index.deferred_shadow is not None
    store.save([_record(i, seed=1, scope="/moved") for i in range(0, 10)])  # overwritten in place
    store.delete(record_ids=[f"rec-{i}" for i in range(10, 15)])  # swap-removes move the last rows
    store.save([_record(i, seed=2) for i in range(40, 60)])  # appended past the file's rows
    assert store._index.shadow() is None  # still float32 only

    got = _answers(store)
    assert store._index.shadow() is not None and store.snapshot_stats["restored_shadow"]
    _assert_shadow_matches_rows(store)
    assert got == _reference(tmp_path, use_rust=True)
    store.save([_record(i, seed=3) for i in range(5, 25)])  # and it follows later writes
    _assert_shadow_matches_rows(store)
    assert _answers(store) == _reference(tmp_path, use_rust=True)
    store.close()


def test_a_damaged_shadow_is_never_scanned_and_the_file_is_rewritten(
        tmp_path: Path, small_shadow: None) -> None:
    first = _written_with_shadow(tmp_path, use_rust=True)
    expected = _answers(first)
    first.close()
    _flip(_halves_byte)(tmp_path / _snapshot.SQLITE_NAME)

    store = RustMemoryStorage(tmp_path, use_rust=True, snapshot_after=1)
    assert store.snapshot_stats["restored"] == 1  # the float32 side is sound: served from the file
    deferred = store._index.deferred_shadow
    assert deferred is not None and not deferred.verdict()
    assert _answers(store) == expected  # float32 scans, or a shadow built from the rows
    stats = store.snapshot_stats
    assert not stats["restored_shadow"] and stats["rejected"] == ["shadow checksum mismatch (damaged)"]
    assert store._index.deferred_shadow is None
    if store._index.shadow() is not None:
        _assert_shadow_matches_rows(store)
    store.save([_record(70)])  # the next change rewrites the file, whatever its stamp
    store._snapshots.wait()
    assert store.snapshot_stats["written"] == 1
    store.close()

    again = RustMemoryStorage(tmp_path, use_rust=True, shadow=True)  # checked in the open
    assert again.snapshot_stats["restored"] == 1 and not again.snapshot_stats["rejected"]
    assert again.count() == 41
    again.close()


def test_a_store_that_scans_the_shadow_at_once_still_checks_it_in_the_open(
        tmp_path: Path, small_shadow: None, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _written_with_shadow(tmp_path, use_rust=True)
    first.close()
    calls = _checks(monkeypatch)
    store = RustMemoryStorage(tmp_path, use_rust=True, shadow=True)
    assert calls == [(threading.current_thread().name, 2)]  # float32 and halves, before the open returns
    assert store._index.deferred_shadow is None and store.snapshot_stats["restored_shadow"]
    store.close()


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("save"), st.lists(st.integers(0, 70), min_size=1, max_size=12, unique=True), st.integers(1, 9)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 70), min_size=1, max_size=6, unique=True), st.just(0)),
    ),
    max_size=6,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_any_writes_before_the_take_over_leave_the_shadow_of_the_rows(
        tmp_path_factory: pytest.TempPathFactory, small_shadow: None, ops: list[tuple[str, list[int], int]]) -> None:
    path = tmp_path_factory.mktemp("deferred")
    first = _written_with_shadow(path, use_rust=True)
    first.close()
    store = RustMemoryStorage(path, use_rust=True, snapshot_after=10**6)
    assert store._index.deferred_shadow is not None
    for op, ids, seed in ops:
        if op == "save":
            store.save([_record(i, seed=seed) for i in ids])
        else:
            store.delete(record_ids=[f"rec-{i}" for i in ids])
    got = _answers(store)
    if store._index.n:
        _assert_shadow_matches_rows(store)
    assert got == _reference(path, use_rust=True)
    store.close()
