"""Issue 12, finding 1: leaving the interpreter while fan-out jobs run exits 0, every time.

Each scenario runs in 20 forked children of one driver process
(``exit_scenarios.py``), each going through the real interpreter exit. Before
the fix the rust twin aborted (SIGABRT, -6) in every ``submit`` run, and the
python twin in about a third of the ``interrupt`` runs (a daemon worker still
inside CrewAI's native frames at finalization).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _subprocess_env import child_env

pytestmark = pytest.mark.slow  # 160 forked interpreter exits

DRIVER = Path(__file__).with_name("exit_scenarios.py")
RUNS = 20

#: scenario -> the work markers every child must leave behind
EXPECTED = {
    "submit": "job0,job1,job2,job3",  # every spawned job ran, the queued ones too
    "execute_async": "task",  # the pending Task.execute_async completed
    "interrupt": None,  # Ctrl-C inside kickoff_for_each: caught in main
    "uncaught-interrupt": None,  # the same Ctrl-C ends the program: it stops at once, by SIGINT
}


def _env() -> dict[str, str]:
    return {**child_env(), "PYTHONWARNINGS": "ignore"}


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_exit_never_aborts(scenario: str, use_rust: bool, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(DRIVER), scenario, str(RUNS), str(tmp_path)],
        capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line.split(" ") for line in proc.stdout.splitlines() if line[:1].isdigit()]
    assert len(lines) == RUNS, proc.stdout[-3000:]
    codes = [int(parts[1]) for parts in lines]
    expected = -2 if scenario == "uncaught-interrupt" else 0  # -2: killed by SIGINT, as CPython does
    assert codes == [expected] * RUNS, f"exit codes {codes}\n{proc.stderr[-3000:]}"
    for parts in lines:
        done = parts[2] if len(parts) > 2 else ""
        if EXPECTED[scenario] is not None:
            assert done == EXPECTED[scenario], lines
        else:
            assert "interrupted" in done.split(","), lines
