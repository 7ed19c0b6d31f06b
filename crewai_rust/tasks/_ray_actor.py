"""The actor side of the ``ray`` backend: one long-lived, threaded actor per worker.

Plain Python (``ray.remote`` wraps it on the driver), so this module imports
without Ray. An actor takes the driver's environment, ``sys.path`` entries and
``patch()`` settings, then runs jobs on Ray's actor threads (``max_concurrency``).
Crew jobs are the process backend's :func:`._worker.run_crew_input`: the crew is
built once per actor process from the factory, each input runs on a copy with
private token counters, memory writes are drained before the input counts as
finished. Results travel as the process backend's pickled ``("done", ...)``
messages, so errors keep their class and an unpicklable result is reported the
same way.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any


class CrewActor:
    """What each Ray actor runs."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from ._worker import _apply_patch

        os.environ.update(spec.get("env") or {})
        # An actor never fans out further itself.
        os.environ["CREWAI_RUST_TASKS_BACKEND"] = "threads"
        for entry in spec.get("sys_path") or []:
            if entry not in sys.path:
                sys.path.append(entry)
        _apply_patch(spec.get("patch"))

    def watch(self) -> None:
        """Never returns: the driver holds this call open to learn at once when the actor dies, idle or not."""
        import threading

        threading.Event().wait()

    def ready(self) -> int:
        """The actor's process id, once ``__init__`` has run."""
        return os.getpid()

    def call(self, job_id: int, fn: Any, arg: Any) -> bytes:
        """``fn(arg)`` as a pickled ``("done", job_id, ok, value, traceback)`` message."""
        from ._worker import _encode_result

        try:
            value, ok, tb = fn(arg), True, None
        except BaseException as exc:
            value, ok, tb = exc, False, traceback.format_exc()
        return _encode_result(job_id, ok, value, tb)

    def drain(self) -> None:
        """Finish queued memory writes (before a graceful stop)."""
        from ._worker import _drain_memory_writes

        _drain_memory_writes()
