"""crewai_rust: a drop-in acceleration and hardening layer for CrewAI.

``import crewai_rust.shim`` (or ``crewai_rust.patch()``) activates it. This
module stays cheap to import: CrewAI, numpy and the compiled ``_speedups``
module are imported only when something needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._registry import patch, status, unpatch
from ._selection import build_info, speedups_enabled
from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover - names for type checkers only
    from .database import RustSQLiteWrapper
    from .memory import RustMemoryStorage
    from .serialization import AgentMessage
    from .tasks import RustTaskExecutor
    from .tools import RustToolExecutor

__all__ = [
    "AgentMessage",
    "RustMemoryStorage",
    "RustSQLiteWrapper",
    "RustTaskExecutor",
    "RustToolExecutor",
    "__version__",
    "build_info",
    "patch",
    "speedups_enabled",
    "status",
    "unpatch",
]

_LAZY = {
    "RustMemoryStorage": "crewai_rust.memory",
    "RustToolExecutor": "crewai_rust.tools",
    "RustTaskExecutor": "crewai_rust.tasks",
    "RustSQLiteWrapper": "crewai_rust.database",
    "AgentMessage": "crewai_rust.serialization",
}


def __getattr__(name: str) -> Any:
    """Import a component class on first use, not at package import."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'crewai_rust' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
