"""Render a ``bench --json`` file as the Markdown table the README carries.

One line per (group, case): stock, python and rust medians side by side, the
ratios between them, and any other baseline measured for that case. The README
test re-renders the committed JSON and checks the README holds exactly this.
"""

from __future__ import annotations

from typing import Any

_MAIN = ("stock", "python", "rust")


def _t(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _ratio(num: float | None, den: float | None) -> str:
    if not num or not den:
        return ""
    return f"{num / den:.1f}x" if num / den >= 10 else f"{num / den:.2f}x"


def markdown_table(payload: dict[str, Any]) -> str:
    """The README's results table for one ``bench --json`` payload."""
    cases: dict[tuple[str, str], dict[str, float]] = {}
    for row in payload["rows"]:
        cases.setdefault((row["group"], row["case"]), {})[row["impl"]] = row["median_s"]
    lines = [
        "| group | case | stock | python | rust | stock / python | stock / rust | python / rust | other baselines |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (group, case), impls in cases.items():
        stock, python, rust = (impls.get(name) for name in _MAIN)
        others = ", ".join(f"{name} {_t(v)}" for name, v in impls.items() if name not in _MAIN)
        lines.append(
            f"| {group} | {case} | {_t(stock)} | {_t(python)} | {_t(rust)} | {_ratio(stock, python)} "
            f"| {_ratio(stock, rust)} | {_ratio(python, rust)} | {others} |"
        )
    return "\n".join(lines)


def machine_line(payload: dict[str, Any]) -> str:
    """One sentence naming the machine and software the figures come from."""
    m = payload["machine"]
    build = m["build_info"]
    # "simd" (every AVX-512 subset, FP16 included), "l3_bytes" and "kernel_tier" came later: older
    # result files have only the build's coarse cpu_features.
    simd = ", ".join(m.get("simd") or build.get("cpu_features") or []) or "none detected"
    l3 = f"{m['l3_bytes'] / 2**20:.0f} MB L3; " if m.get("l3_bytes") else ""
    tier = f"; vector kernels: {m['kernel_tier']}" if m.get("kernel_tier") else ""
    return (
        f"Measured on {m['cpu']} ({m['cores']} cores; {l3}SIMD: {simd}{tier}), Python {m['python']}, "
        f"CrewAI {m['crewai']}, "
        f"crewai_rust {m['crewai_rust']} ({build['profile']} build), "
        f"{'quick' if payload['quick'] else 'full'} suite; medians."
    )
