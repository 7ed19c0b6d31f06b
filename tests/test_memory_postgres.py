"""RustMemoryStorage on PostgreSQL, in one process: the URL forms, namespaces, path scopes, dimensions,
commit-ordered change numbers, restarts, and secrets kept out of messages.

The parity suite against LanceDB (``test_memory_parity.py``) runs on this backend too.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from typing import Any

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai.memory.storage.backend import EmbeddingDimensionMismatchError  # noqa: E402
from crewai.memory.types import MemoryRecord  # noqa: E402

import crewai_rust  # noqa: E402
from crewai_rust._postgres import PostgresUnavailableError  # noqa: E402
from crewai_rust.memory import RustMemoryStorage  # noqa: E402
from crewai_rust.memory._pg_persistence import PostgresRecordStore  # noqa: E402

DIM = 8


def rec(rid: str, scope: str = "/", seed: int | None = None, dim: int = DIM, **kw: Any) -> MemoryRecord:
    rng = np.random.default_rng(abs(hash(rid)) % 2**32 if seed is None else seed)
    return MemoryRecord(id=rid, content=f"memory {rid}", scope=scope, embedding=rng.normal(size=dim).tolist(), **kw)


@pytest.fixture
def opened(use_rust: bool) -> Any:
    stores: list[RustMemoryStorage] = []

    def open_(*args: Any, **kwargs: Any) -> RustMemoryStorage:
        store = RustMemoryStorage(*args, use_rust=use_rust, **kwargs)
        stores.append(store)
        return store

    yield open_
    for store in stores:
        store.close()


def test_url_as_path_as_url_and_query_namespace_are_one_store(pg_url: str, opened: Any) -> None:
    a = opened(url=pg_url, namespace="tenant_a")
    b = opened(pg_url + "?namespace=tenant_a")
    c = opened(url=pg_url, namespace="tenant_b")
    a.save([rec("r1", "/x"), rec("r2", "/y")])
    assert b.count() == 2 and {r.id for r, _ in b.search(rec("r1").embedding, limit=5)} == {"r1", "r2"}
    assert c.count() == 0 and c.search(rec("r1").embedding) == []  # another tenant, same database
    c.save([rec("r1", "/other")])
    assert a.get_record("r1").scope == "/x" and c.get_record("r1").scope == "/other"
    assert b.path is None and "tenant_a" in b.location and isinstance(b._store, PostgresRecordStore)


def test_scopes_are_paths(pg_url: str, opened: Any) -> None:
    store = opened(url=pg_url)
    store.save([rec("u1", "/user/1"), rec("u1x", "/user/1/notes"), rec("u10", "/user/10"), rec("u", "/user"),
                rec("nul", "/user/1\x00x")])
    want = {"u1", "u1x"}
    assert {r.id for r, _ in store.search(rec("u1").embedding, scope_prefix="/user/1", limit=50)} == want
    assert {r.id for r in store.list_records("/user/1", limit=50)} == want
    assert store.count("/user/1") == 2 and store.count("/user/10") == 1 and store.count("/user") == 5
    assert store.list_scopes("/user") == ["/user/1", "/user/1\x00x", "/user/10"]
    assert store.delete(scope_prefix="/user/1") == 2
    assert store.count("/user/10") == 1 and store.get_record("nul").scope == "/user/1\x00x"


def test_dimension_fixed_by_another_process_is_a_clear_error(pg_url: str, opened: Any) -> None:
    first = opened(url=pg_url)
    second = opened(url=pg_url)  # both opened while the store had no dimension yet
    first.save([rec("a", dim=DIM)])
    with pytest.raises(EmbeddingDimensionMismatchError) as info:
        second.save([rec("b", dim=4)])
    assert "8" in str(info.value) and "4" in str(info.value)
    assert first.count() == 1 and second.get_record("b") is None
    with pytest.raises(EmbeddingDimensionMismatchError):
        second.search([0.0] * 4)
    # The seam's own check inside the write transaction: a stale view of the dimension is caught there.
    second._store.get_dim = lambda: None  # type: ignore[method-assign]
    head = second._store.head()
    with pytest.raises(EmbeddingDimensionMismatchError) as info:
        second.save([rec("c", dim=4)])
    assert "8-dimensional" in str(info.value)  # the size the server reported
    assert first.count() == 1 and second._store.head() == head  # rolled back: no log entry either
    second.save([rec("d", dim=DIM)])  # the connection that saw the failure is still good
    assert first.count() == 2


def test_every_write_is_seen_by_the_next_read_of_another_store(pg_url: str, opened: Any) -> None:
    writer, reader = opened(url=pg_url), opened(url=pg_url)
    reader.count()
    for i in range(30):
        writer.save([rec(f"w{i}")])
        hits = reader.search(rec(f"w{i}").embedding, limit=1)
        assert hits[0][0].id == f"w{i}"
        if i % 7 == 0:
            writer.delete(record_ids=[f"w{i}"])
            assert all(r.id != f"w{i}" for r, _ in reader.search(rec(f"w{i}").embedding, limit=3))
    writer.reset()
    assert reader.search(rec("w1").embedding) == [] and reader._index.n == 0


def _waiting_on_lock(pg_url: str) -> bool:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crewai_rust-memory'"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


def test_a_transaction_that_commits_after_a_later_one_is_never_missed(pg_url: str, opened: Any) -> None:
    """Writer A starts first and is held open inside its write; writer B starts later and finishes
    meanwhile (or, as here, queues behind A); a reader syncs in between. With a change log numbered
    by a plain sequence, A's lower number commits after the reader moved past B's higher one and A's
    record is never seen. Numbered under the head-row lock, numbers follow commit order."""
    a, b, reader = opened(url=pg_url), opened(url=pg_url), opened(url=pg_url)
    a.save([rec("seed")])
    reader.search(rec("seed").embedding)
    inside, release = threading.Event(), threading.Event()
    real_send = a._store._send_upsert

    def held_send(*args: Any) -> Any:  # inside the save's transaction, the head row locked
        result = real_send(*args)
        inside.set()
        assert release.wait(60)
        return result

    a._store._send_upsert = held_send  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def run(fn: Any) -> threading.Thread:
        def target() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=target)
        t.start()
        return t

    ta = run(lambda: a.save([rec("from-a")]))
    assert inside.wait(30)
    tb = run(lambda: b.save([rec("from-b")]))
    deadline = time.monotonic() + 30
    while tb.is_alive() and not _waiting_on_lock(pg_url):  # B queues behind A (or is done)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    seen_before = {r.id for r, _ in reader.search(rec("seed").embedding, limit=10)}
    assert "from-a" not in seen_before  # A has not committed
    release.set()
    ta.join(30)
    tb.join(30)
    assert not errors, errors
    seen_after = {r.id for r, _ in reader.search(rec("seed").embedding, limit=10)}
    assert {"seed", "from-a", "from-b"} <= seen_after
    assert reader._index.n == 3


def test_restart_mid_run_is_retried_and_the_listener_catches_up(pg_server: Any, pg_url: str, opened: Any) -> None:
    writer, reader = opened(url=pg_url), opened(url=pg_url)
    writer.save([rec("before")])
    assert reader.search(rec("before").embedding)[0][0].id == "before"
    watcher = reader._store._watcher
    assert watcher is not None
    connects = watcher.connects
    pg_server.restart()
    writer.save([rec("after")])  # the pool's connections died with the server: retried on new ones
    assert reader.search(rec("after").embedding, limit=1)[0][0].id == "after"
    deadline = time.monotonic() + 30
    while watcher.connects == connects:  # the listener reconnects (and catches up) on its own
        assert time.monotonic() < deadline, "the listener never reconnected"
        time.sleep(0.05)
    writer.save([rec("hinted")])
    deadline = time.monotonic() + 30
    while "hinted" not in reader._index.row_of:  # applied by the wake-up, before any read of ours
        assert time.monotonic() < deadline, "the NOTIFY wake-up never arrived"
        time.sleep(0.02)


def test_secrets_never_reach_errors_or_logs(pg_server: Any, pg_url: str, caplog: pytest.LogCaptureFixture,
                                           opened: Any) -> None:
    secret = "s3cret-not-this-one"
    bad = pg_server.url(pg_url.rsplit("/", 1)[1], password=secret)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PostgresUnavailableError) as info:
        RustMemoryStorage(bad)
    assert secret not in str(info.value) and "password" in str(info.value).lower()
    store = opened(pg_url)
    assert pg_server.password not in repr(store) and pg_server.password not in store.location
    assert pg_server.password not in str(store.stats())
    pg_server.restart()
    store.save([rec("x")])
    assert secret not in caplog.text and pg_server.password not in caplog.text


def test_bad_namespace_is_refused(pg_url: str) -> None:
    for name in ("Upper", "drop table", "x" * 48, "1abc"):
        with pytest.raises(ValueError, match="namespace"):
            RustMemoryStorage(url=pg_url, namespace=name)


def test_memory_storage_spec_and_default_url_go_to_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Any, use_rust: bool) -> None:
    from crewai.memory.unified_memory import Memory

    from crewai_rust.memory._activation import open_stores
    from crewai_rust.testing import HashEmbedder, ScriptedLLM

    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))
    crewai_rust.patch("memory", memory={"use_rust": use_rust})
    explicit = Memory(storage=pg_url + "?namespace=spec", llm=ScriptedLLM(), embedder=HashEmbedder(DIM))
    assert isinstance(explicit._storage, RustMemoryStorage) and "namespace spec" in explicit._storage.location
    monkeypatch.setenv("CREWAI_RUST_MEMORY_URL", pg_url + "?namespace=default_mem")
    default = Memory(llm=ScriptedLLM(), embedder=HashEmbedder(DIM))
    store = default._storage
    assert isinstance(store, RustMemoryStorage) and "namespace default_mem" in store.location
    assert Memory(llm=ScriptedLLM(), embedder=HashEmbedder(DIM))._storage is store  # one store per URL
    assert all("***" in key or "@" not in key for key in open_stores())
    store.save([rec("m1", dim=DIM)])
    crewai_rust.unpatch()
    assert store.closed
    again = RustMemoryStorage(url=pg_url, namespace="default_mem", use_rust=use_rust)
    try:
        assert again.get_record("m1") is not None
    finally:
        again.close()


def test_own_rows_are_not_read_back_unless_another_process_changed_them(pg_url: str, opened: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = opened(url=pg_url), opened(url=pg_url)
    a._store._watcher.stop()  # only the refresh below reads: no background catch-up on B's wake-up
    a.save([rec("base")])
    real_sync = a._sync
    monkeypatch.setattr(a, "_sync", lambda *_: None)  # A's catch-up runs only after B's write below
    a.save([rec("mine"), rec("shared", seed=1)])
    b.save([rec("shared", seed=2)])  # B replaces one of A's rows before A applied its own write
    monkeypatch.setattr(a, "_sync", real_sync)
    fetched: list[Any] = []
    real_run = a._store._run
    monkeypatch.setattr(a._store, "_run", lambda fn, what: (fetched.append(what), real_run(fn, what))[1])
    a.refresh()
    row = a._index.row_of["shared"]
    assert np.allclose(a._index.matrix[row], rec("shared", seed=2).embedding, atol=1e-6)  # B's version
    assert np.allclose(a._index.matrix[a._index.row_of["mine"]], rec("mine").embedding, atol=1e-6)
    assert fetched == ["reading the change log"]  # one round of queries
    assert not a._store._own


def test_a_reader_behind_the_trimmed_log_reloads(pg_url: str, opened: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai_rust.memory import _pg_persistence

    monkeypatch.setattr(_pg_persistence, "_TRIM_EVERY", 5)
    monkeypatch.setattr(_pg_persistence, "_CHANGES_KEPT", 3)
    writer, reader = opened(url=pg_url), opened(url=pg_url)
    reader._store._watcher.stop()  # no background catch-up: the reader stays behind on purpose
    for i in range(30):
        writer.save([rec(f"r{i}")])
    writer.delete(record_ids=["r0", "r1"])
    assert reader._store.changes_since(reader._seen).stale
    reloads: list[int] = []
    real_reload = reader._reload
    monkeypatch.setattr(reader, "_reload", lambda: (reloads.append(1), real_reload())[1])
    hits = reader.search(rec("r5").embedding, limit=100)
    assert reloads == [1]
    assert sorted(r.id for r, _ in hits) == sorted(f"r{i}" for i in range(2, 30))


def _toast_bytes(url: str, namespace: str) -> tuple[int, list[str]]:
    """(bytes in the records table's TOAST relation, the table's storage options)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        size, options = conn.execute(
            "SELECT pg_relation_size(reltoastrelid), reloptions FROM pg_class WHERE oid = %s::regclass",
            (f"{namespace}.records",),
        ).fetchone()
    return int(size), list(options or [])


def test_a_1536_embedding_is_stored_in_the_row_and_an_existing_store_is_migrated(
    pg_url: str, opened: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg

    store = opened(url=pg_url, namespace="inline", snapshot=False)
    store.save([rec(f"new{i}", dim=1536) for i in range(5)])
    size, options = _toast_bytes(pg_url, "inline")
    assert size == 0 and "toast_tuple_target=8160" in options  # no TOAST chunks for a 6 KB embedding
    store.close()
    # A store as the schema before this option made it: rows past 2 KB went to TOAST.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE inline.records RESET (toast_tuple_target)")
    with monkeypatch.context() as patched:
        patched.setattr(PostgresRecordStore, "_keep_rows_inline", lambda self, conn: None)
        legacy = opened(url=pg_url, namespace="inline", snapshot=False)
        legacy.save([rec(f"old{i}", dim=1536) for i in range(5)])
        legacy.close()
    toasted, options = _toast_bytes(pg_url, "inline")
    assert toasted > 0 and not options
    migrated = opened(url=pg_url, namespace="inline", snapshot=False)
    assert "toast_tuple_target=8160" in _toast_bytes(pg_url, "inline")[1]  # set in place when opened
    migrated.save([rec(f"later{i}", dim=1536) for i in range(5)])
    assert _toast_bytes(pg_url, "inline")[0] == toasted  # the new rows went into the table itself
    for rid in ("new0", "old4", "later2"):  # every row reads back exactly, wherever it is stored
        got = migrated.get_record(rid)
        assert got is not None and got.embedding == pytest.approx(rec(rid, dim=1536).embedding, abs=1e-6)
        assert migrated.search(rec(rid, dim=1536).embedding, limit=1)[0][0].id == rid


def _statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every COPY statement psycopg is asked to run from now on (the spy keeps the real call)."""
    import psycopg

    seen: list[str] = []
    real_copy = psycopg.Cursor.copy

    def copy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(statement))
        return real_copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", copy)
    return seen


def test_a_save_writes_its_rows_with_one_binary_copy(pg_url: str, opened: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path ran: one ``COPY … FROM STDIN (FORMAT BINARY)`` per save, whatever its size,
    and the rows read back exactly (from the server, not from this process's index)."""
    store = opened(url=pg_url, namespace="copied", snapshot=False)
    copies = _statements(monkeypatch)
    records = [rec(f"c{i}", scope=f"/crew/{i % 3}", importance=i / 200, source=None if i % 2 else f"src{i}")
               for i in range(120)]
    store.save(records)
    assert len(copies) == 1 and "FROM STDIN (FORMAT BINARY)" in copies[0] and ".records(" in copies[0]
    other = opened(url=pg_url, namespace="copied", snapshot=False)
    for want in records:
        got = other.get_record(want.id)
        assert got is not None
        assert (got.content, got.scope, got.importance, got.source, got.private) == (
            want.content, want.scope, want.importance, want.source, want.private)
        assert got.embedding == pytest.approx(want.embedding, abs=1e-6)


def test_a_replaced_record_keeps_its_place_and_a_batch_mixes_new_replaced_and_repeated_ids(
    pg_url: str, opened: Any,
) -> None:
    """A save deletes the rows it replaces and copies them in again with their old ``seq``: a
    replaced record keeps its place (as the upsert it replaced kept it, and as on SQLite), new ids
    take increasing numbers in batch order, and a repeated id keeps its first place, last value."""
    writer = opened(url=pg_url, namespace="replaced", snapshot=False)
    writer.save([rec("a"), rec("b"), rec("c")])
    before = {rid: row[-1] for rid, row in writer._store.fetch(["a", "b", "c"]).items()}
    writer.save([rec("n1"), rec("b", seed=7, categories=["new"]), rec("n2"), rec("n1", seed=8), rec("a", seed=9)])
    after = {rid: row[-1] for rid, row in writer._store.fetch(["a", "b", "c", "n1", "n2"]).items()}
    assert {k: after[k] for k in before} == before  # replaced rows kept their seq
    assert max(before.values()) < after["n1"] < after["n2"]  # new ones after, in batch order
    assert writer.count() == 5
    reader = opened(url=pg_url, namespace="replaced", snapshot=False)  # loads everything from the server
    for rid, seed in (("a", 9), ("b", 7), ("c", None), ("n1", 8), ("n2", None)):
        got = reader.get_record(rid)
        assert got is not None and got.embedding == pytest.approx(rec(rid, seed=seed).embedding, abs=1e-6)
        assert reader.search(rec(rid, seed=seed).embedding, limit=1)[0][0].id == rid
        assert writer.search(rec(rid, seed=seed).embedding, limit=1)[0][0].id == rid
    assert reader.get_record("b").categories == ["new"]
    assert [row[1] for row in sorted(
        (row for batch in reader._store.load_index_rows()[2] for row in batch))] == ["a", "b", "c", "n1", "n2"]


def test_a_nul_in_a_record_id_is_refused_and_nothing_is_written(pg_url: str, opened: Any) -> None:
    """PostgreSQL ``text`` cannot hold a NUL: the save fails with psycopg's own words, before any row
    is sent, and the batch's other records are not written either."""
    from crewai_rust._postgres import PostgresError

    store = opened(url=pg_url, namespace="nul_id", snapshot=False)
    store.save([rec("kept")])
    with pytest.raises(PostgresError, match=r"text fields cannot contain NUL \(0x00\) bytes"):
        store.save([rec("fine"), rec("bad\x00id")])
    assert store.count() == 1 and store.get_record("fine") is None
    assert store._store.head() == 1
