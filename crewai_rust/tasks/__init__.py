"""Bounded concurrent fan-out for CrewAI: ``kickoff_for_each``, ``Task.execute_async`` and your own jobs."""

from ._executor import RustTaskExecutor

__all__ = ["RustTaskExecutor"]
