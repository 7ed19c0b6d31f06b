"""Pure twin of ``_speedups.cpu_features``: SIMD flags read from /proc/cpuinfo."""

from __future__ import annotations

from pathlib import Path

# The flags the compiled kernels dispatch on, as /proc/cpuinfo spells them.
_KNOWN = {"avx2": "avx2", "avx512f": "avx512f", "fma": "fma", "sse4_1": "sse4.1", "asimd": "neon"}


def _read_cpuinfo(cpuinfo: Path) -> tuple[str, set[str]]:
    """The first model name and the first flags line of /proc/cpuinfo ("unknown" and {} when absent)."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return "unknown", set()
    model = "unknown"
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model == "unknown":
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """SIMD features of this CPU that the kernels can use, sorted; [] when unknown."""
    flags = _read_cpuinfo(cpuinfo)[1]
    return sorted(name for flag, name in _KNOWN.items() if flag in flags)


def _l3_bytes(cache_dir: Path) -> int | None:
    """The size of the largest (last-level) cache, from sysfs; None when it is not exposed."""
    best: tuple[int, int] | None = None
    for index in sorted(cache_dir.glob("index*")):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        size = int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text or 0)
        if best is None or level > best[0]:
            best = (level, size)
    return None if best is None else best[1]


def describe_cpu(cpuinfo: Path = Path("/proc/cpuinfo"),
                 cache_dir: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict[str, object]:
    """What a benchmark figure was measured on: the model, every SIMD flag the kernels care about
    (AVX-512 subsets such as FP16 included) and the last-level cache, which decides whether a
    store's matrix is scanned from cache or from DRAM. Two machines of one model name can differ."""
    model, flags = _read_cpuinfo(cpuinfo)
    simd = sorted(f for f in flags if f.startswith("avx512") or f in ("avx2", "fma", "f16c", "asimd", "asimdhp"))
    return {"model": model, "simd": simd, "l3_bytes": _l3_bytes(cache_dir)}
