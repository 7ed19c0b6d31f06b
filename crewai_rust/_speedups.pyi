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

# --- memory ---
from collections.abc import Buffer as _Buffer  # noqa: E402  (3.12+; a protocol for type checkers only)

def vector_top_k(
    matrix: _Buffer,
    sqnorms: _Buffer,
    n: int,
    query: _Buffer,
    rows: _Buffer | None,
    k: int,
    metric: int,
    threads: int = 0,
) -> tuple[list[int], list[float]]:
    """Exact top-k over ``matrix[:n]`` (float32, C-contiguous) or only ``rows`` (int64), GIL released.

    ``metric`` 0 ranks by ``2 x.q - |x|^2`` (L2 order), 1 by ``x.q / |x|`` (cosine order);
    returns (rows, rank scores) best first, ties to the lower row. ``threads`` 0 = automatic.
    """

def embedding_f32_bytes(values: list[float]) -> bytes:
    """Validate an embedding and encode it as float32 bytes; NaN/inf/float32 overflow raise ValueError."""
