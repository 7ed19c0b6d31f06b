"""``import crewai_rust.shim`` activates every enabled component (same as ``patch()``)."""

from ._registry import patch

patch()
