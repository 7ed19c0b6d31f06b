"""The nested path: a batch run one item after another in the calling job's thread.

Used when a job asks its own executor for more work. The caller already holds
a slot, so running the items itself keeps the bound and cannot deadlock. The
rules match the concurrent path: a callable that ran past ``timeout`` is
reported as ``TimeoutError`` (its result dropped), the first error stops the
rest unless ``return_exceptions``.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from typing import Any

from ._collect import Collector, timeout_error


def run_inline(
    fn: Callable[[Any], Any],
    items: list[Any],
    ctx: contextvars.Context,
    timeout: float | None,
    return_exceptions: bool,
    on_progress: Callable[[int, int], Any] | None,
) -> list[Any]:
    n = len(items)
    collector = Collector(n, None, not return_exceptions)
    for index, item in enumerate(items):
        if collector.should_cancel():
            break
        collector.started(index, 0.0)
        started = time.monotonic()
        try:
            value, ok = ctx.copy().run(fn, item), True
        except Exception as exc:  # the item's outcome; BaseException (Ctrl-C) propagates
            value, ok = exc, False
        if timeout is not None and time.monotonic() - started > timeout:
            value, ok = timeout_error(index, timeout), False
        collector.returned(index, ok, value)
        if on_progress is not None:
            on_progress(collector.settled_count, n)
    return collector.outcome()
