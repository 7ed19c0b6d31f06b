"""The README's first command, run verbatim in a scratch clone, runs the Rust build.

``python3 -m pip install . && python3 -m crewai_rust demo`` from the checkout
imports the checkout's source folder first; the CLI must still run the compiled
module the install built. Slow (a fresh venv and a release build): it runs in
the ``readme`` tox env, which sets ``CREWAI_RUST_README_RUN=1``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMPONENTS = {"MEMORY", "TOOLS", "TASKS", "DATABASE", "SERIALIZATION"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CREWAI_RUST_README_RUN") != "1", reason="set CREWAI_RUST_README_RUN=1 (tox -e readme)"),
    pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout to clone"),
]


def _readme_command() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"```sh\n(python3 -m pip install \. && python3 -m crewai_rust demo)\n```", text)
    assert found, "the README's set-up command changed; update this test with it"
    return found.group(1)


def _scratch_clone(target: Path) -> None:
    """The tracked files as they are in the working tree: what a fresh clone of this commit holds."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / name)


def test_readme_install_and_demo_run_rust_for_every_component(tmp_path: Path) -> None:
    command = _readme_command()
    clone = tmp_path / "clone"
    clone.mkdir()
    _scratch_clone(clone)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # CrewAI and the other dependencies come from this env's site-packages (offline), not a download.
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "outer-env.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWAI_RUST_") and k != "PYTHONPATH"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(["sh", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    lines = out.splitlines()
    demo = next(i for i, line in enumerate(lines) if line.startswith("crewai_rust demo:"))
    assert lines[demo - 1].startswith("implementation: rust"), "\n".join(lines[demo - 3:demo + 1]) + proc.stderr[-2000:]
    assert "task outputs identical in both runs: yes" in out
    section = out.split("components in the patched run", 1)[1]
    impls = dict(re.findall(r"^  ([A-Z]+)\s+(\S+)", section, re.M))
    assert {name: impls.get(name) for name in COMPONENTS} == {name: "rust" for name in COMPONENTS}, section[:1500]
