"""Typed settings: options over the environment over defaults, one unknown-option check."""

from __future__ import annotations

import pytest

from crewai_rust.tools._config import ToolsSettings, resolve


def test_defaults_environment_and_options_in_that_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve({}) == ToolsSettings()
    monkeypatch.setenv("CREWAI_RUST_TOOLS_MAX_CALLS", "7")
    monkeypatch.setenv("CREWAI_RUST_TOOLS_GUARD", "off")
    from_env = resolve({})
    assert (from_env.max_calls, from_env.guard) == (7, False)
    from_options = resolve({"max_calls": 3, "guard": 1})
    assert (from_options.max_calls, from_options.guard) == (3, True)


def test_unknown_option_and_bad_environment_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match=r"unknown tools option\(s\) \['max_cals'\]"):
        resolve({"max_cals": 3})
    monkeypatch.setenv("CREWAI_RUST_TOOLS_MAX_REFUSALS", "-1")
    with pytest.raises(ValueError, match="CREWAI_RUST_TOOLS_MAX_REFUSALS='-1': must be at least 0"):
        resolve({})
    monkeypatch.setenv("CREWAI_RUST_TOOLS_MAX_REFUSALS", "0")
    assert resolve({}).max_refusals == 0


def test_executor_arguments_leave_out_the_hook_switches() -> None:
    kwargs = resolve({"max_tokens": 100}).executor_kwargs()
    assert "guard" not in kwargs and "replace_repeated_check" not in kwargs
    assert kwargs["max_tokens"] == 100 and resolve({"max_tokens": 100}).has_budget
