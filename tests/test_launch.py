"""A source folder without the compiled module shadowing an installed copy that has it.

The layout ``python -m crewai_rust`` meets right after ``pip install .`` in a
checkout: the current directory holds ``crewai_rust/`` (no ``_speedups``) and
an installed distribution of the same version has ``_speedups``. Built here
from copies of the package under test, so it runs in any env with the Rust build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import crewai_rust
from crewai_rust._launch import has_compiled_module

PACKAGE = Path(crewai_rust.__file__).resolve().parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not has_compiled_module(PACKAGE), reason="needs the package under test built with _speedups"),
]


def _copy_package(target: Path, *, compiled: bool) -> None:
    skip = shutil.ignore_patterns("__pycache__", *([] if compiled else ["_speedups*.so", "_speedups*.pyd"]))
    shutil.copytree(PACKAGE, target / "crewai_rust", ignore=skip)


@pytest.fixture
def shadowed_layout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    site = tmp_path / "site"
    _copy_package(site, compiled=True)
    info = site / f"crewai_rust-{crewai_rust.__version__}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: crewai_rust\nVersion: {crewai_rust.__version__}\n")
    checkout = tmp_path / "checkout"
    _copy_package(checkout, compiled=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWAI_RUST_")}
    env["PYTHONPATH"] = str(site)
    return checkout, env


def _status(checkout: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crewai_rust", "status", "--json", "--no-patch"], cwd=checkout,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_cli_reruns_itself_against_the_installed_copy(shadowed_layout: tuple[Path, dict[str, str]]) -> None:
    checkout, env = shadowed_layout
    proc = _status(checkout, env)
    assert proc.returncode == 0, proc.stderr
    assert "re-running against the installed copy" in proc.stderr
    info = json.loads(proc.stdout)["build_info"]
    assert info["speedups_enabled"] is True and info["reason"] is None


def test_build_info_says_the_source_folder_shadows_the_install(shadowed_layout: tuple[Path, dict[str, str]]) -> None:
    checkout, env = shadowed_layout
    proc = _status(checkout, {**env, "CREWAI_RUST_NO_RELAUNCH": "1"})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)["build_info"]
    assert info["speedups_enabled"] is False
    assert str(checkout / "crewai_rust") in info["reason"]
    assert f"crewai_rust {crewai_rust.__version__} in {checkout.parent / 'site'} has one" in info["reason"]
    assert ".ci/dev-build" in info["reason"]


def test_forced_pure_twins_do_not_relaunch(shadowed_layout: tuple[Path, dict[str, str]]) -> None:
    checkout, env = shadowed_layout
    proc = _status(checkout, {**env, "CREWAI_RUST_PUREPYTHON": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "re-running" not in proc.stderr
    assert json.loads(proc.stdout)["build_info"]["reason"] == "forced off by CREWAI_RUST_PUREPYTHON=1"
