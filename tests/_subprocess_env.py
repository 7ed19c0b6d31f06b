"""The environment for a test's child Python: it imports the crewai_rust this test run imports.

Under tox that is the installed build, never the checkout's source folder (which has no compiled
module), so a child process runs the same twin as the test that started it.
"""

from __future__ import annotations

import os
from pathlib import Path

import crewai_rust

#: the folder holding the imported ``crewai_rust`` package
ROOT = Path(crewai_rust.__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    """``os.environ`` with :data:`ROOT` first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env
