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
