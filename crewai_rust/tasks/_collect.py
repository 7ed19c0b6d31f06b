"""Bookkeeping of one batch as the caller sees it: outcomes, deadlines, first error.

Shared by the python twin and the inline (nested) path; the rust twin keeps the
same rules in ``rust/src/fanout.rs``. Rules:

* an item settles once: with its value, its exception, or a ``TimeoutError``
  when it ran longer than ``timeout`` seconds (its late result is dropped);
* ``fail_fast`` (``return_exceptions=False``): the first item to settle with an
  error cancels every item not yet started, and is what the caller raises;
* the caller returns only when no started callable is still running.
"""

from __future__ import annotations

import heapq
from typing import Any


def timeout_error(index: int, timeout: float) -> TimeoutError:
    """The exception reported for an item that ran past its deadline (same text in both twins)."""
    return TimeoutError(f"item {index} did not finish within {timeout:g} s")


class Collector:
    """Outcomes of ``n`` items in input order, plus what the caller still waits for."""

    __slots__ = ("deadlines", "fail_fast", "first_error", "n", "results", "running", "settled", "settled_count", "timeout")

    def __init__(self, n: int, timeout: float | None, fail_fast: bool) -> None:
        self.n = n
        self.timeout = timeout
        self.fail_fast = fail_fast
        self.results: list[Any] = [None] * n
        self.settled = bytearray(n)
        self.settled_count = 0
        self.running = 0  # started callables that have not returned
        self.first_error: BaseException | None = None
        self.deadlines: list[tuple[float, int]] = []

    def started(self, index: int, at: float) -> None:
        self.running += 1
        if self.timeout is not None:
            heapq.heappush(self.deadlines, (at + self.timeout, index))

    def returned(self, index: int, ok: bool, value: Any) -> bool:
        """A callable returned; True when this settled its item (False: it had timed out)."""
        self.running -= 1
        if self.settled[index]:
            return False
        self._settle(index, ok, value)
        return True

    def expire(self, now: float) -> int:
        """Settle every running item whose deadline has passed; returns how many."""
        count = 0
        assert self.timeout is not None or not self.deadlines
        while self.deadlines and self.deadlines[0][0] <= now:
            _, index = heapq.heappop(self.deadlines)
            if not self.settled[index]:
                self._settle(index, False, timeout_error(index, self.timeout))  # type: ignore[arg-type]
                count += 1
        return count

    def next_deadline(self) -> float | None:
        while self.deadlines and self.settled[self.deadlines[0][1]]:
            heapq.heappop(self.deadlines)
        return self.deadlines[0][0] if self.deadlines else None

    def should_cancel(self) -> bool:
        return self.fail_fast and self.first_error is not None

    def _settle(self, index: int, ok: bool, value: Any) -> None:
        self.settled[index] = 1
        self.settled_count += 1
        self.results[index] = value
        if not ok and self.first_error is None:
            self.first_error = value

    def outcome(self) -> list[Any]:
        """The results in input order, or raise the first error under ``fail_fast``."""
        if self.fail_fast and self.first_error is not None:
            error = self.first_error
            self.first_error = None
            self.results = []
            raise error
        return self.results
