"""Issue 12, smaller findings: no Rust panic from Python data, numeric limits are ValueErrors,
unfingerprintable calls keep distinct keys. Each case under both twins where it has two."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crewai_rust.database import RustSQLiteWrapper
from crewai_rust.memory import _vector_py
from crewai_rust.tasks import RustTaskExecutor
from crewai_rust.tools import RustToolExecutor


class Shrinker:
    """A value whose ``__repr__`` empties the container being walked."""

    def __init__(self, box: Any, tag: str) -> None:
        self.box, self.tag = box, tag

    def __repr__(self) -> str:
        self.box.clear()
        return f"shrinker {self.tag}"


def shrinking_dict(tag: str) -> dict[str, Any]:
    box: dict[str, Any] = {}
    box.update({"a": Shrinker(box, tag), "b": 1, "c": tag})
    return box


@pytest.mark.parametrize("container", ["dict", "set"])
def test_a_container_changed_while_fingerprinted_raises_runtime_error(speedups: Any, container: str) -> None:
    from crewai_rust.tools import _fingerprint

    class HashableShrinker(Shrinker):
        __hash__ = object.__hash__

    def make() -> Any:
        if container == "dict":
            return shrinking_dict("x")
        box: set[Any] = set()
        box.update({HashableShrinker(box, "x"), 1, 2, 3})
        return box

    for fingerprint in (speedups.tool_call_fingerprint, _fingerprint.tool_call_fingerprint):
        with pytest.raises(RuntimeError, match="changed size during iteration"):
            fingerprint("agent", "tool", make())


def odd_args(query: str) -> dict[str, Any]:
    """Arguments that cannot be fingerprinted (a nested dict changes size while walked)."""
    return {"query": query, "inner": shrinking_dict(query)}


def test_unfingerprintable_calls_keep_agent_tool_and_arguments_apart(use_rust: bool) -> None:
    ex = RustToolExecutor(use_rust=use_rust)
    keys = {
        ex.fingerprint("alice", "search", odd_args("one")),
        ex.fingerprint("alice", "search", odd_args("two")),
        ex.fingerprint("bob", "search", odd_args("one")),
        ex.fingerprint("alice", "fetch", odd_args("one")),
    }
    assert len(keys) == 4, keys
    assert all(k.startswith("unfingerprintable:") for k in keys)
    assert ex.fingerprint("alice", "search", odd_args("one")) in keys, "the fallback key is stable"


@pytest.mark.parametrize("timeout", [math.inf, math.nan, 1e300, -1.0])
def test_map_timeout_out_of_range_is_a_value_error(use_rust: bool, timeout: float) -> None:
    ex = RustTaskExecutor(2, use_rust=use_rust)
    with pytest.raises(ValueError, match="timeout"):
        ex.map(lambda x: x, [1], timeout=timeout)
    assert ex.map(lambda x: x, [1], timeout=1e9) == [1]


@pytest.mark.parametrize("busy_timeout", [math.inf, math.nan, 1e300, -1.0, 2**31])
def test_busy_timeout_out_of_range_is_a_value_error(tmp_path: Path, use_rust: bool, busy_timeout: float) -> None:
    with pytest.raises(ValueError, match="busy_timeout"):
        RustSQLiteWrapper(tmp_path / "t.db", use_rust=use_rust, busy_timeout=busy_timeout)


def test_speedups_refuse_out_of_range_durations_without_panicking(speedups: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="busy_timeout"):
        speedups.SqlitePool(str(tmp_path / "t.db"), 1, 1e300)
    import contextvars

    with pytest.raises(ValueError, match="timeout"):
        speedups.Fanout(2).run_batch(lambda x: x, [1], contextvars.copy_context(), 1e300, False, None)


def test_top_k_with_a_huge_k_returns_every_row(speedups: Any) -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(5, 4)).astype(np.float32)
    sqnorms = np.einsum("ij,ij->i", matrix, matrix).astype(np.float32)
    query = rng.normal(size=4).astype(np.float32)
    rows, scores = speedups.vector_top_k(matrix, sqnorms, 5, query, None, 2**40, 0, 0)
    want_rows, want_scores = _vector_py.search(matrix, sqnorms, 5, query, None, 2**40, 0)
    assert list(rows) == want_rows.tolist() and len(rows) == 5
    assert np.allclose(scores, want_scores)
