"""``python -m crewai_rust demo`` runs end to end and the two runs agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import crewai_rust


@pytest.mark.slow
@pytest.mark.crew
def test_demo_runs_stock_and_patched_with_identical_outputs(tmp_path: Path) -> None:
    report = tmp_path / "demo.json"
    proc = subprocess.run(
        [sys.executable, "-m", "crewai_rust", "demo", "--inputs", "2", "--latency", "0", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "task outputs identical in both runs: yes" in proc.stdout
    expected_first = "implementation: rust" if crewai_rust.speedups_enabled() else "implementation: python"
    assert proc.stdout.splitlines()[0].startswith(expected_first), proc.stdout[:500]
    assert "framework time above it" in proc.stdout and "scripted LLM on the critical path" in proc.stdout
    data = json.loads(report.read_text())
    assert data["identical"] is True
    stock, patched = data["stock"], data["patched"]
    assert stock["status"] is None, "the stock run must not be patched"
    components = patched["status"]["components"]
    enabled = {name for name, comp in components.items() if comp["enabled"]}
    assert enabled, components
    expected_impl = "rust" if patched["build_info"]["speedups_enabled"] else "python"
    assert {components[name]["implementation"] for name in enabled - {"RUNTIME"}} == {expected_impl}
    assert components["RUNTIME"]["implementation"] == "python"  # Python-only component
    assert stock["memory_storage"].endswith("LanceDBStorage")
    assert patched["memory_storage"].endswith("RustMemoryStorage")
    for mode in (stock, patched):
        assert mode["timer_missing"] == [], mode["timer_missing"]
        for window in ("whole kickoff", "task fan-out"):
            floor = mode["floors"][window]
            assert 0.0 <= floor["llm_floor"] <= floor["wall"], floor
        assert len(mode["outputs"]["fanout"]) == 2


def test_covered_seconds_merges_overlapping_spans_inside_the_window() -> None:
    from crewai_rust._demo.timing import covered_seconds

    spans = [(1.0, 2.0), (1.5, 3.0), (5.0, 6.0), (-1.0, 0.5), (9.0, 12.0)]
    assert covered_seconds(spans, 0.0, 10.0) == pytest.approx(0.5 + 2.0 + 1.0 + 1.0)
    assert covered_seconds([], 0.0, 1.0) == 0.0
    assert covered_seconds([(2.0, 3.0)], 0.0, 1.0) == 0.0
