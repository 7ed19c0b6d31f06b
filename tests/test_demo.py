"""``python -m crewai_rust demo`` runs end to end and the two runs agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


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
        assert len(mode["outputs"]["fanout"]) == 2
