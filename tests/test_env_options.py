"""Options read through ``crewai_rust._env``: one unknown-option check, typed values from the environment."""

from __future__ import annotations

import pytest

import crewai_rust
from crewai_rust._env import check_options, env_choice, env_float


def test_fractional_busy_timeout_from_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # busy_timeout is a float option; CREWAI_RUST_DB_BUSY_TIMEOUT=2.5 used to be refused as "not an integer".
    monkeypatch.setenv("CREWAI_RUST_DB_BUSY_TIMEOUT", "2.5")
    try:
        state = crewai_rust.patch("database")["components"]["DATABASE"]
        assert state["enabled"], state["error"]
        from crewai_rust.database._shared import current_settings

        assert current_settings().busy_timeout == 2.5
    finally:
        crewai_rust.unpatch()


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_bad_busy_timeout_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("CREWAI_RUST_DB_BUSY_TIMEOUT", raw)
    try:
        state = crewai_rust.patch("database")["components"]["DATABASE"]
        assert not state["enabled"] and "CREWAI_RUST_DB_BUSY_TIMEOUT" in state["error"]
    finally:
        crewai_rust.unpatch()


def test_synchronous_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_RUST_DB_SYNCHRONOUS", "sometimes")
    with pytest.raises(ValueError, match="CREWAI_RUST_DB_SYNCHRONOUS"):
        env_choice("CREWAI_RUST_DB_SYNCHRONOUS", "NORMAL", ("OFF", "NORMAL", "FULL", "EXTRA"))
    monkeypatch.setenv("CREWAI_RUST_DB_SYNCHRONOUS", "full")
    assert env_choice("CREWAI_RUST_DB_SYNCHRONOUS", "NORMAL", ("OFF", "NORMAL", "FULL", "EXTRA")) == "FULL"


def test_env_float_unset_and_unbounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREWAI_RUST_TEST_FLOAT", raising=False)
    assert env_float("CREWAI_RUST_TEST_FLOAT", 1.5) == 1.5
    monkeypatch.setenv("CREWAI_RUST_TEST_FLOAT", "inf")
    assert env_float("CREWAI_RUST_TEST_FLOAT", None, finite=False) == float("inf")


@pytest.mark.parametrize("component", ["memory", "tools", "tasks", "database"])
def test_every_component_rejects_an_unknown_option_the_same_way(component: str) -> None:
    try:
        state = crewai_rust.patch(component, **{component: {"no_such_option": 1}})
        error = state["components"][component.upper()]["error"]
        assert error == f"TypeError: unknown {component} option(s) ['no_such_option']; known: " + error.split("known: ", 1)[1]
    finally:
        crewai_rust.unpatch()


def test_check_options_lists_what_is_known() -> None:
    with pytest.raises(TypeError, match=r"unknown demo option\(s\) \['b'\]; known: \['a'\]"):
        check_options("demo", {"a": 1, "b": 2}, {"a"})
