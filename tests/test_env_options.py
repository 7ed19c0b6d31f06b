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


def test_string_settings_are_stripped_and_blank_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai_rust.memory._pg_persistence import DEFAULT_NAMESPACE, NAMESPACE_ENV, resolve
    from crewai_rust.tasks._backends import BACKEND_ENV, resolve_backend

    monkeypatch.setenv(BACKEND_ENV, "  processes ")
    assert resolve_backend(None) == "processes"
    monkeypatch.setenv(BACKEND_ENV, "   ")
    assert resolve_backend(None) == "threads"
    monkeypatch.setenv(NAMESPACE_ENV, " tenant_a ")
    assert resolve("postgresql://u@localhost/db")[1] == "tenant_a"
    monkeypatch.setenv(NAMESPACE_ENV, "")
    assert resolve("postgresql://u@localhost/db")[1] == DEFAULT_NAMESPACE


def _environment_reads(tree: object) -> list[str]:
    """``os.environ.get(X)`` / ``os.getenv(X)`` / ``os.environ[X]`` reads of a crewai_rust variable."""
    import ast

    def ours(node: ast.expr) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value.startswith("CREWAI_RUST_")
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
        return name.endswith("_ENV")

    def is_environ(node: ast.expr) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    found = []
    for node in ast.walk(tree):  # type: ignore[arg-type]
        key = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            func = node.func
            if (func.attr == "get" and is_environ(func.value)) or func.attr == "getenv":
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_environ(node.value):
            key = node.slice
        if key is not None and ours(key):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_every_crewai_rust_variable_is_read_through_env() -> None:
    # crewai_rust's own variables are parsed in one place (_env: blank = unset, typed, errors
    # name the variable); CrewAI's (CREWAI_STORAGE_DIR) and Ray's are not ours.
    import ast
    from pathlib import Path

    package = Path(crewai_rust.__file__).resolve().parent
    bypasses = {}
    for path in sorted(package.rglob("*.py")):
        if path.name == "_env.py":
            continue
        found = _environment_reads(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            bypasses[str(path.relative_to(package))] = found
    assert bypasses == {}


def test_a_given_database_option_wins_over_a_malformed_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # The variables were parsed even when the option was given, so a stray bad value failed the patch.
    monkeypatch.setenv("CREWAI_RUST_DB_POOL_SIZE", "lots")
    try:
        state = crewai_rust.patch("database", database={"pool_size": 2})["components"]["DATABASE"]
        assert state["enabled"], state["error"]
        from crewai_rust.database._shared import current_settings

        assert current_settings().pool_size == 2
    finally:
        crewai_rust.unpatch()
    state = crewai_rust.patch("database")["components"]["DATABASE"]
    try:
        assert not state["enabled"] and "CREWAI_RUST_DB_POOL_SIZE" in state["error"]
    finally:
        crewai_rust.unpatch()
