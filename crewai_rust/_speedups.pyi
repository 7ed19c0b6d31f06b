"""Type stubs for the compiled module ``crewai_rust._speedups`` (built from rust/)."""

from typing import TypedDict

__version__: str

class _BuildInfo(TypedDict):
    version: str
    profile: str
    cpu_features: list[str]

def build_info() -> _BuildInfo:
    """Version, cargo profile and detected SIMD features of this build."""

def cpu_features() -> list[str]:
    """SIMD features of this CPU that the kernels can use, sorted."""

# --- tasks ---
from collections.abc import Callable
from contextvars import Context
from typing import Any

class Fanout:
    """Bounded concurrent execution of python callables on the shared Tokio runtime."""

    max_concurrency: int
    def __init__(self, max_concurrency: int) -> None: ...
    def submit(self, func: Callable[[], Any], ctx: Context) -> None:
        """Run ``ctx.copy().run(func)`` when a permit is free; errors go to ``sys.unraisablehook``."""
    def run_batch(
        self,
        func: Callable[[Any], Any],
        items: list[Any],
        ctx: Context,
        timeout: float | None,
        return_exceptions: bool,
        on_progress: Callable[[int, int], Any] | None,
    ) -> list[Any]:
        """``[func(item) for item in items]`` concurrently, in input order."""
