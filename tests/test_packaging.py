"""The sdist and the three-way build switch (CREWAI_RUST_BUILD)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source tree"),
]


def _no_cargo_env(**extra: str) -> dict[str, str]:
    """The environment with cargo unreachable: not on PATH and CARGO pointing nowhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWAI_RUST_")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and not (Path(p) / "cargo").exists()
    )
    env["CARGO"] = "crewai-rust-no-cargo"
    env.update(extra)
    return env


#: Never copied into the scratch tree: build output, caches and other runs' environments.
_NOT_SOURCES = shutil.ignore_patterns(".git", ".tox", ".ci", "target", "build", "dist", "*.egg-info",
                                      "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache", "*.so")


@pytest.fixture(scope="session")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # setuptools assembles the sdist in <source>/crewai_rust-<version>/ and writes the egg-info there:
    # two runs building from the checkout at once (CI runs two tox envs side by side) delete each
    # other's files. Each run builds from its own copy of the tree.
    tree = tmp_path_factory.mktemp("tree") / "crewai_rust"
    shutil.copytree(ROOT, tree, ignore=_NOT_SOURCES)
    out = tmp_path_factory.mktemp("sdist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        env=_no_cargo_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (archive,) = out.glob("crewai_rust-*.tar.gz")
    return archive


def test_sdist_carries_the_rust_sources_tests_and_licence(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    rust_sources = {str(p.relative_to(ROOT)) for p in (ROOT / "rust" / "src").rglob("*.rs")}
    assert rust_sources, "no Rust sources found in the tree"
    required = {"rust/Cargo.toml", "rust/Cargo.lock", "README.md", "LICENSE", "setup.py", "setup.cfg",
                "pyproject.toml", "crewai_rust/py.typed", "crewai_rust/_speedups.pyi", "tests/conftest.py"}
    assert required | rust_sources <= names, sorted((required | rust_sources) - names)
    assert not any(n.startswith("rust/target") or n.endswith(".so") for n in names)


def _wheel(sdist: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "-w", str(out), str(sdist)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_required_build_without_cargo_fails_with_a_clear_message(sdist: Path, tmp_path: Path) -> None:
    proc = _wheel(sdist, tmp_path, _no_cargo_env(CREWAI_RUST_BUILD="1"))
    assert proc.returncode != 0
    assert "CREWAI_RUST_BUILD=1 requires the Rust build" in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("*.whl"))


@pytest.mark.parametrize("switch", ["unset", "0"])
def test_without_the_extension_the_wheel_is_pure(sdist: Path, tmp_path: Path, switch: str) -> None:
    env = _no_cargo_env() if switch == "unset" else _no_cargo_env(CREWAI_RUST_BUILD="0")
    proc = _wheel(sdist, tmp_path, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("crewai_rust-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "crewai_rust/__init__.py" in names
    assert "crewai_rust/py.typed" in names and "crewai_rust/_speedups.pyi" in names
    assert not [n for n in names if "_speedups" in n and n.endswith((".so", ".pyd"))]


def test_bad_switch_value_is_rejected(sdist: Path, tmp_path: Path) -> None:
    proc = _wheel(sdist, tmp_path, _no_cargo_env(CREWAI_RUST_BUILD="yes-please"))
    assert proc.returncode != 0
    assert "CREWAI_RUST_BUILD='yes-please'" in proc.stdout + proc.stderr
