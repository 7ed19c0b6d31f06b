"""Issue 12, finding 3: scope matching is path-aware and the same in every operation.

``/tenant1`` matches ``/tenant1`` and ``/tenant1/...``, never ``/tenant10``
(stock LanceDB compares a plain string prefix). A NUL inside a scope is a
character like any other, in search as in count and delete.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crewai  # noqa: F401

from crewai.memory.types import MemoryRecord  # noqa: E402

from crewai_rust.memory import RustMemoryStorage  # noqa: E402

SCOPES = ["/tenant1", "/tenant1/a", "/tenant1/a/b", "/tenant10", "/tenant10/x", "/tenant1x", "/other"]


def rec(name: str, scope: str) -> MemoryRecord:
    vec = np.random.default_rng(abs(hash(name)) % 2**32).normal(size=8).tolist()
    return MemoryRecord(id=name, content=f"memory {name}", scope=scope, embedding=vec)


@pytest.fixture
def store(tmp_path: Path, use_rust: bool) -> RustMemoryStorage:
    s = RustMemoryStorage(tmp_path, use_rust=use_rust)
    s.save([rec(f"r{i}", scope) for i, scope in enumerate(SCOPES)])
    yield s
    s.close()


def _expected(prefix: str) -> set[str]:
    p = "/" + prefix.strip("/")
    return {f"r{i}" for i, s in enumerate(SCOPES) if s == p or s.startswith(p + "/")}


@pytest.mark.parametrize("prefix", ["/tenant1", "/tenant1/", "tenant1", "/tenant1/a", "/tenant10"])
def test_every_operation_matches_the_same_path_subtree(store: RustMemoryStorage, prefix: str) -> None:
    want = _expected(prefix)
    assert {r.id for r, _ in store.search([0.1] * 8, scope_prefix=prefix, limit=100)} == want
    assert {r.id for r in store.list_records(prefix, limit=100)} == want
    assert store.count(prefix) == len(want)
    assert sum(store.list_categories(prefix).values()) == sum(len(rec("x", "/").categories) for _ in want)
    assert store.get_scope_info(prefix).record_count == len(want)


@pytest.mark.parametrize("how", ["delete", "reset"])
def test_delete_and_reset_take_only_the_subtree(store: RustMemoryStorage, how: str) -> None:
    before = {r.id for r in store.list_records(limit=100)}
    if how == "delete":
        assert store.delete(scope_prefix="/tenant1") == len(_expected("/tenant1"))
    else:
        store.reset(scope_prefix="/tenant1")
    assert {r.id for r in store.list_records(limit=100)} == before - _expected("/tenant1")
    assert store.count("/tenant10") == 2


def test_a_nul_inside_a_scope_is_an_ordinary_character(store: RustMemoryStorage) -> None:
    store.save([rec("n0", "/t\x00n"), rec("n1", "/t\x00n/sub"), rec("n2", "/t")])
    want = {"n0", "n1"}
    assert {r.id for r, _ in store.search([0.1] * 8, scope_prefix="/t\x00n", limit=100)} == want
    assert {r.id for r in store.list_records("/t\x00n", limit=100)} == want
    assert store.count("/t\x00n") == 2
    assert store.delete(scope_prefix="/t\x00n") == 2
    assert store.get_record("n2") is not None
    assert store.count("/t\x00n") == 0


def test_delete_by_id_reads_only_that_row(store: RustMemoryStorage) -> None:
    statements: list[str] = []
    store._store._conn.set_trace_callback(statements.append)
    try:
        assert store.delete(record_ids=["r3"]) == 1
    finally:
        store._store._conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM records" in s]
    assert selects and all("id IN" in s for s in selects), selects
    assert store.get_record("r3") is None
    plan = store._store.query("EXPLAIN QUERY PLAN SELECT id FROM records WHERE id IN ('r1') AND (1=1)")
    assert any("SEARCH records USING" in str(row) and "(id=?)" in str(row) for row in plan), plan
