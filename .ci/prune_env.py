"""Free a finished tox env's disk in CI: each env holds ~1.1 GB (crewai and its deps).

Run as every env's last ``commands_post`` step (tox runs it whether or not the tests
passed). It does nothing unless ``CREWAI_RUST_CI_PRUNE=1`` (set by ``.ci/run``, which then
also recreates every env), so a developer's ``tox -e ...`` keeps its envs. The ``log``
folder stays: tox writes its logs there after this step.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def prune(env_dir: Path) -> int:
    """Remove everything in ``env_dir`` but its logs; return the bytes freed."""
    freed = 0
    for entry in env_dir.iterdir():
        if entry.name == "log":
            continue
        if entry.is_dir() and not entry.is_symlink():
            freed += sum(p.stat().st_size for p in entry.rglob("*") if p.is_file() and not p.is_symlink())
            shutil.rmtree(entry, ignore_errors=True)
        else:
            freed += entry.lstat().st_size
            entry.unlink(missing_ok=True)
    return freed


def main() -> int:
    if os.environ.get("CREWAI_RUST_CI_PRUNE") != "1":
        return 0
    env_dir = Path(sys.argv[1])
    freed = prune(env_dir)
    print(f"prune_env: freed {freed / 1e9:.2f} GB from {env_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
