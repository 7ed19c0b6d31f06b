"""The README's results table is the committed ``bench --json`` file, rendered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crewai_rust._bench.report import machine_line, markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- bench-table: (?P<path>\S+) -->\n(?P<body>.*?)\n<!-- /bench-table -->", re.S)


@pytest.mark.skipif(not README.exists(), reason="needs the source tree")
def test_readme_table_matches_the_committed_bench_json() -> None:
    found = MARKER.search(README.read_text(encoding="utf-8"))
    assert found, "README has no bench-table block"
    payload = json.loads((ROOT / found.group("path")).read_text(encoding="utf-8"))
    assert payload["rows"], "the bench file has no rows"
    assert payload["failed"] == [], payload["failed"]
    expected = machine_line(payload) + "\n\n" + markdown_table(payload)
    assert found.group("body").strip() == expected.strip()
