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

# --- tools ---
from typing import Any

def tool_canonical(value: Any) -> bytes:
    """Canonical encoding of a value (key-order free, numbers by value, long text hashed)."""

def tool_fingerprint(value: Any) -> str:
    """Hex BLAKE2b-128 of ``tool_canonical(value)``."""

def tool_call_fingerprint(agent: Any, tool: Any, args: Any) -> str:
    """Fingerprint of one tool call: the canonical (agent, tool, args) triple."""

class _ToolCounters(TypedDict):
    calls: int
    refusals: dict[str, int]
    seconds: float

class ToolGuard:
    """Loop-guard window per run, call budget per run, counters per tool (thread-safe)."""

    def __init__(
        self,
        loop_window: int,
        max_repeats: int,
        cycle_repeats: int,
        max_cycle_length: int,
        max_calls: int | None = None,
        max_runs: int = 256,
    ) -> None: ...
    def admit(self, run: str, fingerprint: str, tool: str) -> str | None: ...
    def note_refusal(self, tool: str, reason: str) -> None: ...
    def add_time(self, tool: str, seconds: float) -> None: ...
    def run_calls(self, run: str) -> int: ...
    def forget_run(self, run: str) -> None: ...
    def reset(self) -> None: ...
    def counters(self) -> dict[str, _ToolCounters]: ...
