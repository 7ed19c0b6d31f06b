"""``_selection.twin``: the one binder every component uses to pick its twin."""

from __future__ import annotations

import pytest

from crewai_rust import _selection
from crewai_rust.tools import _fingerprint, _toolguard_py


def test_python_choice_is_the_python_twin_itself() -> None:
    assert _selection.twin(_toolguard_py.ToolGuard, False) is _toolguard_py.ToolGuard


def test_rust_choice_is_the_compiled_export_of_the_same_name(speedups) -> None:  # type: ignore[no-untyped-def]
    assert _selection.twin(_toolguard_py.ToolGuard, True) is speedups.ToolGuard
    assert _selection.twin(_fingerprint.tool_call_fingerprint, True) is speedups.tool_call_fingerprint


def test_rust_choice_without_the_module_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_RUST_PUREPYTHON", "1")
    with pytest.raises(RuntimeError, match="forced off by CREWAI_RUST_PUREPYTHON=1"):
        _selection.twin(_toolguard_py.ToolGuard, True)
