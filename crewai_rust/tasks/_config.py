"""Where the default bound comes from: argument, then ``CREWAI_RUST_MAX_CONCURRENCY``, then 16.

16 because the work fanned out here mostly waits on LLM calls: threads are
cheap next to a 100 ms+ request, while most providers start rate-limiting a
single key somewhere past a few dozen concurrent requests.
"""

from __future__ import annotations

from .._env import env_int

MAX_CONCURRENCY_ENV = "CREWAI_RUST_MAX_CONCURRENCY"
DEFAULT_MAX_CONCURRENCY = 16
#: The longest per-item timeout (about 31 years): beyond it a deadline is no longer a number of seconds.
MAX_TIMEOUT = 1e9


def resolve_max_concurrency(requested: int | None) -> int:
    """``requested`` when given (at least 1), else the environment, else the default."""
    if requested is None:
        return env_int(MAX_CONCURRENCY_ENV, DEFAULT_MAX_CONCURRENCY) or DEFAULT_MAX_CONCURRENCY
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise TypeError(f"max_concurrency must be an int, got {type(requested).__name__}")
    if requested < 1:
        raise ValueError(f"max_concurrency must be at least 1, got {requested}")
    return requested


def check_timeout(timeout: float | None) -> float | None:
    """A per-item timeout in seconds: None (no limit) or a positive number."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__}")
    if not 0 < timeout <= MAX_TIMEOUT:  # NaN and infinity fail too, in both twins
        raise ValueError(f"timeout must be positive and at most {MAX_TIMEOUT:g} seconds, got {timeout!r}")
    return float(timeout)
