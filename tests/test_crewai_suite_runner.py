"""The crewai-suite comparison (``.ci/crewai_suite/run.py``): per-test outcomes from junit XML."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / ".ci" / "crewai_suite" / "run.py"


@pytest.fixture(scope="module")
def run() -> Any:
    if not RUN_PY.is_file():
        pytest.skip("not a source checkout (.ci/ is not in the sdist)")
    spec = importlib.util.spec_from_file_location("crewai_suite_run", RUN_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _junit(path: Path, cases: list[tuple[str, str, str, str]]) -> Path:
    body = []
    for file, classname, name, outcome in cases:
        inner = {"passed": "", "failed": '<failure message="boom">x</failure>',
                 "error": '<error message="teardown">x</error>', "skipped": '<skipped message="s"/>'}[outcome]
        body.append(f'<testcase classname="{classname}" name="{name}" file="{file}">{inner}</testcase>')
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite>{"".join(body)}</testsuite></testsuites>')
    return path


def test_passing_stock_and_failing_patched_is_a_regression_per_directory(run: Any, tmp_path: Path, capsys: Any) -> None:
    stock = _junit(tmp_path / "s.xml", [
        ("tests/hooks/test_a.py", "tests.hooks.test_a.TestHooks", "test_one", "passed"),
        ("tests/hooks/test_a.py", "tests.hooks.test_a", "test_two", "passed"),
        ("tests/test_flow.py", "tests.test_flow", "test_three", "failed"),
        ("tests/test_crew.py", "tests.test_crew", "test_four", "passed"),
    ])
    patched = _junit(tmp_path / "p.xml", [
        ("tests/hooks/test_a.py", "tests.hooks.test_a.TestHooks", "test_one", "failed"),
        ("tests/hooks/test_a.py", "tests.hooks.test_a", "test_two", "passed"),
        ("tests/test_flow.py", "tests.test_flow", "test_three", "passed"),
        ("tests/test_crew.py", "tests.test_crew", "test_four", "skipped"),
    ])
    results = {"stock": run.outcomes(stock), "patched": run.outcomes(patched)}
    assert results["patched"]["tests/hooks/test_a.py::TestHooks::test_one"] == ("failed", "boom")
    regressions = run.report(results)
    assert regressions == {"patched": ["tests/hooks/test_a.py::TestHooks::test_one"]}
    table = capsys.readouterr().out
    hooks_row = next(line.split() for line in table.splitlines() if line.startswith("hooks"))
    assert hooks_row == ["hooks", "2", "2", "1", "1"]
    assert any(line.startswith("test_flow*.py") for line in table.splitlines())


def test_a_teardown_error_after_a_pass_counts_as_not_passed(run: Any, tmp_path: Path) -> None:
    junit = _junit(tmp_path / "x.xml", [
        ("tests/storage/test_s.py", "tests.storage.test_s", "test_x", "passed"),
        ("tests/storage/test_s.py", "tests.storage.test_s", "test_x", "error"),
    ])
    assert run.outcomes(junit) == {"tests/storage/test_s.py::test_x": ("error", "teardown")}


def test_known_differences_name_real_tests_with_a_reason(run: Any) -> None:
    known = run.known_differences()
    assert known, "known_differences.txt is empty or missing"
    for test_id, reason in known.items():
        assert test_id.startswith("tests/") and "::" in test_id and len(reason) > 20, (test_id, reason)


def test_patched_runs_must_show_the_patch_was_live(run: Any) -> None:
    assert run.check_installs("patched", [], False) == "the patch plugin never installed crewai_rust"
    live = {"installed": {"DATABASE": "rust"}, "speedups": True, "pid": 1}
    assert run.check_installs("patched", [live], True) is None
    assert run.check_installs("patched", [{**live, "speedups": False}], True) == "patched mode ran without the Rust twin"
    assert run.check_installs("pure", [live], False) == "pure mode ran with speedups enabled"


def test_the_failures_baseline_runs_stock_on_every_test_that_did_not_pass_and_only_those(run: Any) -> None:
    results = {
        "patched": {"tests/a.py::t1": ("passed", ""), "tests/a.py::t2": ("failed", "x"),
                    "tests/b.py::t3": ("skipped", "s"), "tests/b.py::t4": ("error", "e")},
        "pure": {"tests/a.py::t1": ("failed", "y"), "tests/a.py::t2": ("passed", "")},
    }
    assert run.suspects_of(results) == ["tests/a.py::t1", "tests/a.py::t2", "tests/b.py::t4"]


def test_a_suspect_its_id_does_not_select_is_run_with_its_whole_file(
        run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nested = ("tests/c.py", "tests.c.TestInner", "test_n", "passed")  # ids as TestInner::test_n, not Outer::TestInner
    calls: list[list[str]] = []

    def fake_run_mode(root: Path, mode: str, targets: list[str], out: Path, workers: int, tag: str = "") -> Any:
        calls.append(list(targets))
        cases = [("tests/a.py", "tests.a", "t2", "passed")] if not tag else [nested, ("tests/c.py", "tests.c", "ok", "passed")]
        return _junit(tmp_path / f"{mode}{tag}.xml", cases), 1.0

    monkeypatch.setattr(run, "run_mode", fake_run_mode)
    results = {"patched": {"tests/a.py::t2": ("failed", "x"), "tests/c.py::TestInner::test_n": ("failed", "y")}}
    stock, seconds, unresolved = run.stock_on_suspects(tmp_path, results, tmp_path, 2)
    assert calls == [["tests/a.py::t2", "tests/c.py::TestInner::test_n"], ["tests/c.py"]]
    assert stock["tests/a.py::t2"] == ("passed", "") and stock["tests/c.py::TestInner::test_n"] == ("passed", "")
    assert seconds == 2.0 and unresolved == []
    assert run.report({"stock": stock, **results}) == {"patched": sorted(results["patched"])}

    monkeypatch.setattr(run, "run_mode", lambda *a, **k: (_junit(tmp_path / "none.xml", []), 1.0))
    assert run.stock_on_suspects(tmp_path, results, tmp_path, 2)[2] == sorted(results["patched"])
    assert run.stock_on_suspects(tmp_path, {"patched": {"tests/a.py::t1": ("passed", "")}}, tmp_path, 2) == ({}, 0.0, [])


def test_a_module_that_failed_to_collect_is_run_as_its_file_and_passes_stock_when_a_test_of_it_does(
        run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run.is_module_id("tests/tools/test_x.py::tests.tools.test_x")
    assert not run.is_module_id("tests/tools/test_x.py::test_x") and not run.is_module_id("tests/x.py::TestX::t")
    calls: list[list[str]] = []

    def fake_run_mode(root: Path, mode: str, targets: list[str], out: Path, workers: int, tag: str = "") -> Any:
        calls.append(list(targets))
        cases = [("tests/d.py", "tests.d", "t1", "failed"), ("tests/d.py", "tests.d", "t2", "passed"),
                 ("tests/e.py", "", "tests.e", "error")]  # e fails to collect stock too
        return _junit(tmp_path / "stock.xml", cases), 1.0

    monkeypatch.setattr(run, "run_mode", fake_run_mode)
    results = {"patched": {"tests/d.py::tests.d": ("error", "ImportError"), "tests/e.py::tests.e": ("error", "x")}}
    stock, _, unresolved = run.stock_on_suspects(tmp_path, results, tmp_path, 2)
    assert calls == [["tests/d.py", "tests/e.py"]] and unresolved == []
    # every run goes on past a module that fails to collect (the reruns of regressions too)
    assert "--continue-on-collection-errors" in run.pytest_command(tmp_path, "patched", ["tests/d.py"], tmp_path / "j.xml", 1)
    assert stock["tests/d.py::tests.d"] == ("passed", "") and stock["tests/e.py::tests.e"][0] == "error"
    assert run.report({"stock": stock, **results}) == {"patched": ["tests/d.py::tests.d"]}
