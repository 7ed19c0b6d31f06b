"""Both twins behave the same; Ctrl-C stops a running map promptly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import crewai_rust
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crewai_rust.tasks import RustTaskExecutor

# Where the crewai_rust under test was imported from (the source tree in a
# checkout, site-packages under tox): child processes must import the same one.
ROOT = Path(crewai_rust.__file__).resolve().parent.parent

# A job: ("ok", v) returns v, ("fail", v) raises, ("sleep", ms) sleeps then returns ms,
# ("slow", 0) overruns the timeout used below.
JOB = st.one_of(
    st.tuples(st.just("ok"), st.integers(-5, 5)),
    st.tuples(st.just("fail"), st.integers(0, 3)),
    st.tuples(st.just("sleep"), st.integers(0, 3)),
    st.tuples(st.just("slow"), st.just(0)),
)
TIMEOUT = 0.08
SLOW = 0.15


class JobError(Exception):
    pass


def run_job(job: tuple[str, int]) -> Any:
    kind, value = job
    if kind == "fail":
        raise JobError(f"job failed with {value}")
    if kind == "sleep":
        time.sleep(value / 1000)
    if kind == "slow":
        time.sleep(SLOW)
    return value


def normalise(results: list[Any]) -> list[Any]:
    return [(type(r).__name__, str(r)) if isinstance(r, BaseException) else r for r in results]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(JOB, max_size=8), bound=st.integers(1, 4), with_timeout=st.booleans())
def test_twins_give_identical_outcomes(speedups: Any, jobs: list[tuple[str, int]], bound: int, with_timeout: bool) -> None:
    timeout = TIMEOUT if with_timeout else None
    rust = RustTaskExecutor(bound, use_rust=True).map(run_job, jobs, timeout=timeout, return_exceptions=True)
    python = RustTaskExecutor(bound, use_rust=False).map(run_job, jobs, timeout=timeout, return_exceptions=True)
    assert normalise(rust) == normalise(python)
    expected = [
        ("TimeoutError", f"item {i} did not finish within {TIMEOUT:g} s") if kind == "slow" and with_timeout
        else ("JobError", f"job failed with {v}") if kind == "fail"
        else v
        for i, (kind, v) in enumerate(jobs)
    ]
    assert normalise(rust) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(JOB, min_size=1, max_size=10), bound=st.integers(1, 3))
def test_twins_raise_the_same_kind_of_first_error(speedups: Any, jobs: list[tuple[str, int]], bound: int) -> None:
    outcomes = []
    for use_rust in (True, False):
        try:
            outcomes.append(("ok", RustTaskExecutor(bound, use_rust=use_rust).map(run_job, jobs, timeout=TIMEOUT)))
        except (JobError, TimeoutError) as exc:
            outcomes.append(("raised", type(exc).__name__ if bound == 1 else "some error"))
    assert outcomes[0] == outcomes[1]
    failing = any(kind == "fail" or kind == "slow" for kind, _ in jobs)
    assert (outcomes[0][0] == "raised") == failing


_INTERRUPTED_MAP = textwrap.dedent(
    """
    import sys, time
    from crewai_rust.tasks import RustTaskExecutor
    ex = RustTaskExecutor(2, use_rust={use_rust})
    def job(i):
        if i == 0:
            print("ready", flush=True)
        time.sleep({job_seconds})
        return i
    try:
        ex.map(job, range(40))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        raise
    print("finished", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("job_seconds", [0.2, 30.0], ids=["short-jobs", "jobs-still-running"])
def test_ctrl_c_stops_a_map_promptly(use_rust: bool, job_seconds: float) -> None:
    code = _INTERRUPTED_MAP.format(use_rust=use_rust, job_seconds=job_seconds)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    elapsed = time.monotonic() - sent
    assert "interrupted" in out and "finished" not in out
    assert "KeyboardInterrupt" in err
    assert proc.returncode != 0
    assert elapsed < 2.0, f"took {elapsed:.2f}s to stop"
