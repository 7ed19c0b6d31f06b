"""The LISTEN wake-up on PostgreSQL: another process's commit is applied by the background catch-up
at once (not at the listener's next timeout) and even when the store was busy at that moment, so a
process can wait for it (``wait_for_change``) instead of polling."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from crewai.memory.types import MemoryRecord

from crewai_rust.memory import RustMemoryStorage, _mirror, _pg_persistence

DIM = 8


def rec(rid: str) -> MemoryRecord:
    vec = np.random.default_rng(abs(hash(rid)) % 2**32).normal(size=DIM).tolist()
    return MemoryRecord(id=rid, content=f"memory {rid}", embedding=vec)


@pytest.fixture(params=[0.0, 0.3], ids=["prompt", "slow-catch-up"])
def catch_up_delay(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> float:
    """A background catch-up that pauses between putting rows into the index and moving
    ``applied_change``: the window in which a test that waited for rows alone read a stale mark
    (CI failed on it twice: ``wait_for_change(mark)`` returned for the seed's change)."""
    delay: float = request.param
    if delay:
        real = _mirror.IndexMirror._applied

        def slow(self: Any, *args: Any, **kwargs: Any) -> int:
            if threading.current_thread() is not threading.main_thread():
                time.sleep(delay)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(_mirror.IndexMirror, "_applied", slow)
    return delay


@pytest.fixture
def pair(pg_url: str, use_rust: bool, catch_up_delay: float, monkeypatch: pytest.MonkeyPatch) -> Any:
    # A listener that woke only at its timeout would now sleep a minute: longer than the test waits.
    monkeypatch.setattr(_pg_persistence, "_LISTEN_TIMEOUT", 60.0)
    writer = RustMemoryStorage(url=pg_url, use_rust=use_rust)
    reader = RustMemoryStorage(url=pg_url, use_rust=use_rust)
    writer.save([rec("seed")])
    # Caught up means the reader's change number reached the seed's, not that the seed's row is
    # in its index: rows go in first, the number moves after (a mark read in between is stale).
    deadline = time.monotonic() + 30
    while reader._store._watcher.connects == 0 or reader.applied_change < writer.applied_change:
        assert time.monotonic() < deadline, "the listener never connected or never caught up"
        time.sleep(0.01)
    assert "seed" in reader._index.row_of
    yield writer, reader
    writer.close()
    reader.close()


def test_a_commit_is_applied_by_the_wake_up_without_a_read(pair: Any) -> None:
    writer, reader = pair
    for i in range(3):
        mark = reader.applied_change
        writer.save([rec(f"w{i}")])
        assert reader.wait_for_change(mark, timeout=30), "no wake-up applied the write"
        assert f"w{i}" in reader._index.row_of


def test_a_wake_up_while_the_store_is_busy_is_applied_when_it_is_free(pair: Any) -> None:
    writer, reader = pair
    mark = reader.applied_change
    with reader._lock:  # a search in progress: the wake-up arrives meanwhile
        writer.save([rec("during")])
        time.sleep(0.3)
        assert "during" not in reader._index.row_of
    assert reader.wait_for_change(mark, timeout=30), "the wake-up was dropped"
    assert "during" in reader._index.row_of


def test_wait_for_change_returns_at_once_when_already_past_and_on_close(pair: Any) -> None:
    _, reader = pair
    assert reader.wait_for_change(reader.applied_change - 1, timeout=0)
    assert not reader.wait_for_change(reader.applied_change, timeout=0.05)
    done = threading.Event()

    def waiter() -> None:
        reader.wait_for_change(reader.applied_change + 10**9, timeout=60)
        done.set()

    threading.Thread(target=waiter, daemon=True).start()
    reader.close()
    assert done.wait(30)


def test_a_wake_up_for_changes_already_applied_costs_no_read(pair: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every save notifies its new head; the saving process applied its rows itself, so its own
    wake-ups must not send the listener to read the log again (a round trip per save, competing
    with the next one). Another process's commit still is read, at once."""
    writer, reader = pair
    deadline = time.monotonic() + 30
    while writer._store._watcher.connects == 0:
        assert time.monotonic() < deadline, "the writer's listener never connected"
        time.sleep(0.01)
    background: list[int] = []
    real = writer._store.changes_since

    def counted(seq: int, after_own_write: bool = False) -> Any:
        if threading.current_thread() is not threading.main_thread():
            background.append(seq)
        return real(seq, after_own_write)

    monkeypatch.setattr(writer._store, "changes_since", counted)
    for i in range(5):
        writer.save([rec(f"own{i}")])
    mark = writer.applied_change
    reader.save([rec("from-reader")])  # notified after the writer's own wake-ups, in commit order
    assert writer.wait_for_change(mark, timeout=30), "another process's commit was not applied"
    assert "from-reader" in writer._index.row_of
    assert background == [mark]  # one read, for the other process's commit only


def test_close_wakes_the_listener_instead_of_waiting_out_its_timeout(pair: Any) -> None:
    """The listener sleeps in ``notifies()`` for up to its timeout (a minute here); close() must end
    that wait itself, or every close of a PostgreSQL store blocks until the timeout (or leaves the
    thread and its connection behind once the join gives up)."""
    writer, reader = pair
    watchers = [writer._store._watcher, reader._store._watcher]
    deadline = time.monotonic() + 30
    while any(w.connects == 0 for w in watchers):
        assert time.monotonic() < deadline, "a listener never connected"
        time.sleep(0.01)
    writer.close()
    reader.close()
    assert [w.is_alive() for w in watchers] == [False, False]
