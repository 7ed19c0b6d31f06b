"""Bounded concurrent fan-out for CrewAI: ``kickoff_for_each``, ``Task.execute_async`` and your own jobs."""

from ._executor import RustTaskExecutor
from ._kickoff_many import KickoffResults, kickoff_many
from ._procpool import PoolStartError, WorkerDiedError

__all__ = ["KickoffResults", "PoolStartError", "RustTaskExecutor", "WorkerDiedError", "kickoff_many"]
