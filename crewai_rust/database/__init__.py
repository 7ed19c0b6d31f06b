"""Pooled SQLite for CrewAI's task outputs, flow state and locks (component DATABASE).

``RustSQLiteWrapper`` is the public handle; the CrewAI drop-ins
(task-output storage, flow persistence, file-lock backend) live in private
modules and are installed by ``crewai_rust.patch()``. ``sqlite_library()``
reports whether both twins run on one SQLite library instance, which decides
the default twin.
"""

from __future__ import annotations

from ._library import sqlite_library
from ._wrapper import ExecResult, RustSQLiteWrapper

__all__ = ["ExecResult", "RustSQLiteWrapper", "sqlite_library"]
