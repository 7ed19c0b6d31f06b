"""``python -m crewai_rust bench [--quick] [--json FILE] [--plot FILE.png]``.

Runs every ``benchmarks/bench_*.py`` in its own process (so one suite's
allocations do not disturb the next), shows progress, prints one table and
writes the raw rows. The suite lives in a source checkout, not in the wheel:
``--suite`` points at it, default ``./benchmarks``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .._launch import python_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds (a few minutes)")
    parser.add_argument("--json", metavar="FILE", help="write the raw figures (rows and machine) as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="draw speed-ups as a PNG chart (needs matplotlib)")
    parser.add_argument("--suite", metavar="DIR", default="benchmarks", help="the benchmarks directory")
    parser.add_argument("--only", metavar="NAME", action="append", help="run only bench_NAME.py (repeatable)")
    parser.add_argument("--markdown", metavar="JSON", help="print the README table for an existing --json file and exit")


def _kernel_tier() -> str | None:
    """The SIMD tier the compiled vector kernels dispatched to here, or None without the Rust build."""
    import crewai_rust

    if not crewai_rust.speedups_enabled():
        return None
    from .. import _speedups

    return str(_speedups.vector_kernel_info()[0])


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    import crewai_rust

    from .._cpu import describe_cpu

    described = describe_cpu()
    cpu = described["model"] if described["model"] != "unknown" else platform.processor() or platform.machine()
    try:
        import crewai

        crewai_version = crewai.__version__
    except ImportError:
        crewai_version = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "simd": described["simd"],
        "l3_bytes": described["l3_bytes"],
        "kernel_tier": _kernel_tier(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "crewai": crewai_version,
        "crewai_rust": crewai_rust.__version__,
        "build_info": crewai_rust.build_info(),
    }


def _suite_files(suite: Path, only: list[str] | None) -> list[Path]:
    files = sorted(suite.glob("bench_*.py"))
    if only:
        wanted = {f"bench_{name}.py" if not name.startswith("bench_") else f"{name}.py" for name in only}
        files = [f for f in files if f.name in wanted]
    return files


def _run_one(path: Path, quick: bool) -> tuple[list[dict[str, Any]], str | None]:
    with tempfile.TemporaryDirectory(prefix="crewai_rust_bench_") as tmp:
        out = Path(tmp) / "rows.json"
        # The script imports the crewai_rust this command runs, not the checkout's source folder.
        cmd = [*python_command(str(path), module=False), "--json", str(out)] + (["--quick"] if quick else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            return [], (proc.stderr or proc.stdout)[-2000:]
        return json.loads(out.read_text()), None


def plot(rows: list[dict[str, Any]], target: str) -> None:
    """A horizontal bar chart of speed-up against stock per case (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'crewai_rust[bench]'") from None
    shown = [r for r in rows if "speedup_vs_stock" in r and r["impl"] != "stock"]
    labels = [f"{r['group']}: {r['case']} [{r['impl']}]" for r in shown]
    fig, ax = plt.subplots(figsize=(10, max(3, 0.28 * len(shown))))
    ax.barh(range(len(shown)), [r["speedup_vs_stock"] for r in shown],
            color=["#c0392b" if r["impl"] == "rust" else "#2980b9" for r in shown])
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speed-up vs stock CrewAI (median, log scale)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(target, dpi=120)


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        from .report import machine_line, markdown_table

        payload = json.loads(Path(args.markdown).read_text())
        print(machine_line(payload) + "\n\n" + markdown_table(payload))
        return 0
    from .._selection import implementation_summary

    print(implementation_summary(), flush=True)
    suite = Path(args.suite).resolve()
    files = _suite_files(suite, args.only)
    if not files:
        print(f"no bench_*.py found in {suite} (run from a source checkout or pass --suite)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(suite))
    from _harness import add_ratios, format_table  # type: ignore[import-not-found]  # the suite's own harness

    rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    started = time.perf_counter()
    for index, path in enumerate(files, 1):
        print(f"[{index}/{len(files)}] {path.stem} ...", end=" ", flush=True)
        t0 = time.perf_counter()
        got, error = _run_one(path, args.quick)
        if error is not None:
            failures[path.stem] = error
            print(f"FAILED after {time.perf_counter() - t0:.0f} s", flush=True)
        else:
            rows.extend(got)
            print(f"{len(got)} rows in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = add_ratios(rows)
    print()
    print(format_table(rows))
    print(f"\nsuite took {time.perf_counter() - started:.0f} s")
    for name, error in failures.items():
        print(f"\n{name} failed:\n{error}", file=sys.stderr)
    if args.json:
        payload = {"machine": machine_info(), "quick": args.quick, "rows": rows, "failed": sorted(failures)}
        Path(args.json).write_text(json.dumps(payload, indent=2))
    if args.plot:
        plot(rows, args.plot)
    return 1 if failures else 0
