"""Pure twin of ``_speedups.cpu_features``: SIMD flags read from /proc/cpuinfo."""

from __future__ import annotations

from pathlib import Path

# The flags the compiled kernels dispatch on, as /proc/cpuinfo spells them.
_KNOWN = {"avx2": "avx2", "avx512f": "avx512f", "fma": "fma", "sse4_1": "sse4.1", "asimd": "neon"}


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """SIMD features of this CPU that the kernels can use, sorted; [] when unknown."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
            break
    return sorted(name for flag, name in _KNOWN.items() if flag in flags)
