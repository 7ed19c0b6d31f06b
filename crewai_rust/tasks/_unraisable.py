"""Exceptions nobody can receive (a fire-and-forget job's, a job after its caller left) go to ``sys.unraisablehook``.

The Python fan-out twin and the executor's own jobs (whichever twin runs them) report
through here; the Rust twin's jobs reach the same hook through ``PyErr::write_unraisable``.
"""

from __future__ import annotations

import sys
import types


def report_unraisable(exc: BaseException, obj: object) -> None:
    """Hand an exception nobody can receive to ``sys.unraisablehook`` (as the rust twin does)."""
    sys.unraisablehook(
        types.SimpleNamespace(  # type: ignore[arg-type]
            exc_type=type(exc), exc_value=exc, exc_traceback=exc.__traceback__,
            err_msg="Exception in crewai_rust task job", object=obj,
        )
    )
