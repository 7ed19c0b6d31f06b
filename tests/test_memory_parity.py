"""RustMemoryStorage against the real LanceDBStorage: same records, same operations, same answers.

The allowed differences are the defects we fix: with category/metadata
filters LanceDB filters only ``limit * 3`` candidates and may return fewer
hits than exist. Its hits must then be a prefix of ours, and ours must number
``min(limit, matching)``. And scopes match path-aware (``/a`` matches ``/a``
and ``/a/...``, not ``/ab``; LanceDB compares a string prefix), so LanceDB's
answers are compared after dropping what lies outside the path subtree.

Every test runs on both persistence backends (``sqlite`` and ``postgres``,
one namespace per store in one database of the session's test server) with
the same assertions: the seam must not change an answer.
"""

from __future__ import annotations

import hashlib
import random
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("lancedb")

with warnings.catch_warnings():  # crewai's own import warnings are not ours to fail on
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai.memory.storage.lancedb_storage import LanceDBStorage  # noqa: E402
from crewai.memory.types import MemoryRecord  # noqa: E402

from crewai_rust.memory import RustMemoryStorage  # noqa: E402

DIM = 12
SCOPES = ["/", "/a", "/a/b", "/a/b/c", "/a/c", "/ab", "/a_b", "/A", "/b", "/b/x"]
CATEGORIES = ["red", "green", "blue", "gold"]
BASE_TIME = datetime(2024, 1, 1, 12, 0, 0)


def make_records(n: int, seed: int) -> list[MemoryRecord]:
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    records = []
    for i in range(n):
        records.append(
            MemoryRecord(
                id=f"rec-{seed}-{i:04d}",
                content=f"memory {i} of {seed}",
                scope=pick.choice(SCOPES),
                categories=pick.sample(CATEGORIES, pick.randint(0, 2)),
                metadata={"tier": pick.randint(0, 2), "tag": pick.choice(["x", "y"])},
                importance=round(pick.random(), 3),
                created_at=BASE_TIME + timedelta(minutes=i, microseconds=pick.randint(1, 999)),
                last_accessed=BASE_TIME,
                embedding=rng.normal(size=DIM).astype(np.float32).tolist(),
                source=pick.choice([None, "user-1"]),
                private=pick.random() < 0.2,
            )
        )
    return records


def in_subtree(scope: str, prefix: str | None) -> bool:
    """Path-aware scope matching (ours), LanceDB's normalisation of the prefix."""
    if prefix is None or not prefix.strip("/"):
        return True
    p = "/" + prefix.strip("/")
    return scope == p or scope.startswith(p + "/")


def matching_count(records: list[MemoryRecord], prefix: str | None, cats: list[str] | None,
                   meta: dict[str, Any] | None) -> int:
    def ok(r: MemoryRecord) -> bool:
        if not in_subtree(r.scope, prefix):
            return False
        if cats and not any(c in r.categories for c in cats):
            return False
        return not (meta and not all(r.metadata.get(k) == v for k, v in meta.items()))

    return sum(ok(r) for r in records)


TIE = 1e-5  # scores closer than this are a near-tie: their order is float rounding, not ranking


def assert_same_ranking(mine: list[tuple[str, float]], theirs: list[tuple[str, float]]) -> None:
    """``theirs`` is a prefix of ``mine``: same scores; same ids except where near-tied ids swap."""
    assert len(mine) >= len(theirs)
    assert len({i for i, _ in mine}) == len(mine)
    score_of = dict(mine)
    for (my_id, my_score), (their_id, their_score) in zip(mine, theirs):
        assert my_score == pytest.approx(their_score, abs=TIE)
        if my_id != their_id:
            # a swap inside a near-tie: their record is in ours at (nearly) the same score
            assert their_id in score_of, f"{their_id} (score {their_score}) missing from ours"
            assert score_of[their_id] == pytest.approx(their_score, abs=TIE)


def test_a_near_tie_may_swap_but_a_wrong_record_may_not() -> None:
    assert_same_ranking([("a", 0.5), ("b", 0.5 - 1e-7), ("c", 0.1)], [("b", 0.5 - 1e-7), ("a", 0.5)])
    with pytest.raises(AssertionError):
        assert_same_ranking([("a", 0.5), ("c", 0.4)], [("a", 0.5), ("b", 0.4)])
    with pytest.raises(AssertionError):
        assert_same_ranking([("b", 0.5), ("a", 0.4)], [("a", 0.5), ("b", 0.4)])


def assert_same_records(ours: list[MemoryRecord], theirs: list[MemoryRecord]) -> None:
    assert [r.id for r in ours] == [r.id for r in theirs]
    for a, b in zip(ours, theirs):
        assert a.model_dump() == b.model_dump()
        assert a.embedding == pytest.approx(b.embedding)


@pytest.fixture(scope="module")
def lance_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[MemoryRecord], LanceDBStorage, Path]:
    records = make_records(300, seed=7)
    lance_dir = tmp_path_factory.mktemp("lance")
    lance = LanceDBStorage(path=lance_dir)
    lance.save(records[:150])
    lance.save(records[150:])
    return records, lance, tmp_path_factory.mktemp("ours")


_PG_DATABASES: dict[int, str] = {}


@pytest.fixture(params=["sqlite", "postgres"])
def open_ours(request: pytest.FixtureRequest, use_rust: bool) -> Any:
    """``open_ours(directory)``: our store for that directory on this test's backend (closed afterwards)."""
    opened: list[RustMemoryStorage] = []

    def open_(directory: Path) -> RustMemoryStorage:
        if request.param == "sqlite":
            store = RustMemoryStorage(directory, use_rust=use_rust)
        else:
            server = request.getfixturevalue("pg_server")
            url = _PG_DATABASES.get(id(server)) or _PG_DATABASES.setdefault(id(server), server.create_database())
            namespace = "p_" + hashlib.sha1(str(directory).encode()).hexdigest()[:16]
            store = RustMemoryStorage(url=url, namespace=namespace, use_rust=use_rust)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def ours(lance_pair: Any, use_rust: bool, open_ours: Any) -> RustMemoryStorage:
    records, _, directory = lance_pair
    store = open_ours(directory / ("rust" if use_rust else "python"))
    if store.count() == 0:
        store.save(records[:150])
        store.save(records[150:])
    yield store
    store.close()


filters = st.tuples(
    st.one_of(st.none(), st.sampled_from(["/", "/a", "/a/", "/a/b", "/ab", "/a_", "/A", "/b", "/zzz"])),
    st.one_of(st.none(), st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True)),
    st.one_of(st.none(), st.sampled_from([{"tier": 1}, {"tag": "x"}, {"tier": 2, "tag": "y"}, {"tier": 9}])),
    st.integers(min_value=1, max_value=40),
    st.sampled_from([0.0, 0.01, 0.05]),
    st.integers(min_value=0, max_value=2**31),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=filters)
def test_search_matches_lancedb(lance_pair: Any, ours: RustMemoryStorage, args: Any) -> None:
    records, lance, _ = lance_pair
    prefix, cats, meta, limit, min_score, seed = args
    query = np.random.default_rng(seed).normal(size=DIM).astype(np.float32).tolist()
    theirs = lance.search(query, scope_prefix=prefix, categories=cats, metadata_filter=meta,
                          limit=limit, min_score=min_score)
    theirs = [(r, s) for r, s in theirs if in_subtree(r.scope, prefix)]
    mine = ours.search(query, scope_prefix=prefix, categories=cats, metadata_filter=meta,
                       limit=limit, min_score=min_score)
    # LanceDB's hits are a prefix of ours (all of them when it did not under-fill), up to the
    # order of near-ties: LanceDB sums squared differences in float32 in its own order, we re-rank
    # in float64, so two distances 1e-6 apart may swap.
    assert_same_ranking([(r.id, s) for r, s in mine], [(r.id, s) for r, s in theirs])
    assert all(s1 >= s2 for (_, s1), (_, s2) in zip(mine, mine[1:]))
    assert all(s >= min_score for _, s in mine)
    if min_score == 0.0:
        assert len(mine) == min(limit, matching_count(records, prefix, cats, meta))
    if not (cats or meta):
        assert len(mine) >= len(theirs)


def test_selective_filter_fills_the_limit_where_lancedb_does_not(lance_pair: Any, ours: RustMemoryStorage) -> None:
    records, lance, _ = lance_pair
    rare = records[5]
    query = (-np.asarray(rare.embedding)).tolist()  # far from the one record with this metadata
    meta = {"needle": True}
    # Neither store holds the needle yet: save it into both to show the gap.
    needle = rare.model_copy(update={"id": "needle", "metadata": meta, "embedding": rare.embedding})
    lance.save([needle])
    ours.save([needle])
    try:
        assert lance.search(query, metadata_filter=meta, limit=1) == []
        hits = ours.search(query, metadata_filter=meta, limit=1)
        assert [r.id for r, _ in hits] == ["needle"]
    finally:
        lance.delete(record_ids=["needle"])
        ours.delete(record_ids=["needle"])


@pytest.mark.parametrize("prefix", [None, "/", "/a", "/a/", "a", "/a/b", "/b", "/zzz"])
def test_listing_matches_lancedb(lance_pair: Any, ours: RustMemoryStorage, prefix: str | None) -> None:
    _, lance, _ = lance_pair
    everything = lance.list_records(scope_prefix=prefix, limit=10_000)
    subtree = [r for r in everything if in_subtree(r.scope, prefix)]
    for offset, limit in [(0, 200), (0, 7), (5, 10), (290, 50), (0, 0), (3, 500)]:
        assert_same_records(ours.list_records(scope_prefix=prefix, limit=limit, offset=offset),
                            subtree[offset : offset + limit])
    assert ours.count(prefix) == len(subtree)
    if len(subtree) == len(everything):  # no /ab beside /a: LanceDB's answers are ours
        assert ours.count(prefix) == lance.count(prefix)
        if prefix is not None:
            assert ours.get_scope_info(prefix) == lance.get_scope_info(prefix)
        assert ours.list_categories(prefix) == lance.list_categories(prefix)
    else:
        assert ours.get_scope_info(prefix).record_count == len(subtree)
        counts: dict[str, int] = {}
        for r in subtree:
            for c in r.categories:
                counts[c] = counts.get(c, 0) + 1
        assert ours.list_categories(prefix) == counts
    if prefix is not None:
        assert ours.list_scopes(prefix) == lance.list_scopes(prefix)


def test_get_record_matches_lancedb(lance_pair: Any, ours: RustMemoryStorage) -> None:
    records, lance, _ = lance_pair
    for rec in records[::37]:
        assert_same_records([ours.get_record(rec.id)], [lance.get_record(rec.id)])
    assert ours.get_record("missing") is None and lance.get_record("missing") is None


OPERATIONS = [
    ("delete", {"record_ids": ["rec-3-0001", "rec-3-0002", "nope"]}),
    ("delete", {"categories": ["gold"]}),
    ("delete", {"metadata_filter": {"tier": 2}}),
    ("delete", {"older_than": BASE_TIME + timedelta(minutes=20)}),
    ("delete", {"categories": ["red"], "older_than": BASE_TIME + timedelta(minutes=60)}),
    ("delete", {"scope_prefix": "/a/c"}),
    ("update", {}),
    ("reset", {"scope_prefix": "/a/b"}),
    ("delete", {"scope_prefix": "/b/x"}),
    ("save", {}),
    ("reset", {}),
]


def test_operation_sequence_matches_lancedb(tmp_path: Path, open_ours: Any) -> None:
    records = [r for r in make_records(120, seed=3) if r.scope != "/"]  # see test below for "/"
    lance = LanceDBStorage(path=tmp_path / "lance")
    ours = open_ours(tmp_path / "ours")
    lance.save(records)
    ours.save(records)
    query = np.random.default_rng(1).normal(size=DIM).tolist()
    for op, kwargs in OPERATIONS:
        if op == "delete":
            assert ours.delete(**kwargs) == lance.delete(**kwargs), kwargs
        elif op == "update":
            changed = ours.get_record(records[-1].id).model_copy(update={"content": "changed", "scope": "/b"})
            changed.embedding = records[0].embedding
            ours.update(changed)
            lance.update(changed)
        elif op == "reset":
            ours.reset(**kwargs)
            lance.reset(**kwargs)
        elif op == "save":
            extra = make_records(10, seed=99)
            ours.save(extra)
            lance.save(extra)
        assert ours.count() == lance.count(), (op, kwargs)
        assert_same_records(ours.list_records(limit=500), lance.list_records(limit=500))
        assert ours.list_scopes() == lance.list_scopes()
        assert ours.list_categories() == lance.list_categories()
        mine = ours.search(query, limit=15)
        theirs = lance.search(query, limit=15)
        assert [r.id for r, _ in mine] == [r.id for r, _ in theirs]
        assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], abs=1e-5)
    ours.close()


def test_scoped_delete_keeps_root_records_unlike_lancedb(tmp_path: Path, open_ours: Any) -> None:
    """LanceDB's scoped delete also removes every record at "/" (``OR scope = '/'``); we do not."""
    records = make_records(40, seed=5)
    ours = open_ours(tmp_path)
    ours.save(records)
    root = sum(r.scope == "/" for r in records)
    in_b = sum(r.scope.startswith("/b") for r in records)
    assert root and in_b
    assert ours.delete(scope_prefix="/b") == in_b
    assert ours.count("/") == len(records) - in_b
    assert len(ours.list_records(limit=100)) == len(records) - in_b


def test_scoped_delete_respects_older_than_unlike_lancedb(tmp_path: Path, open_ours: Any) -> None:
    """LanceDB joins ``scope LIKE .. OR scope = '/'`` with ``AND created_at < ..`` unparenthesised,
    so a scoped delete with ``older_than`` removes every record of the scope; we honour both."""
    records = make_records(60, seed=3)
    cutoff = BASE_TIME + timedelta(minutes=30)
    ours = open_ours(tmp_path)
    ours.save(records)
    expected = [r.id for r in records if r.scope.startswith("/b") and r.created_at < cutoff]
    kept = [r.id for r in records if r.scope.startswith("/b") and r.created_at >= cutoff]
    assert expected and kept
    assert ours.delete(scope_prefix="/b", older_than=cutoff) == len(expected)
    assert all(ours.get_record(i) is None for i in expected)
    assert all(ours.get_record(i) is not None for i in kept)
