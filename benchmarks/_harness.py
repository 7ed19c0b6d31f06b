"""Shared timing harness for the benchmarks/ suite.

Each ``bench_*.py`` module exposes ``run(quick: bool) -> list[dict]`` and
measures every implementation of a case side by side in one process
(``impl`` is ``"stock"``, ``"python"``, ``"rust"`` or a named baseline such as
``"numpy"``/``"orjson"``/``"ideal"``). Rows carry medians and quartiles; the
ratios are added by :func:`add_ratios`, never hard-coded.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def time_calls(fn: Callable[[], Any], *, repeat: int = 7, number: int = 1, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` for each of ``repeat`` rounds of ``number`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def interleaved_rounds(names: list[str], call: Callable[[str, int], Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each case per round, every case once per round in alternating order.

    ``call(name, k)`` prepares case ``name``'s input for round ``k`` (untimed) and returns the
    call to time. Round 0 warms up and is not kept; the collector runs between rounds only.
    """
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.disable()
    try:
        for k in range(rounds + 1):
            prepared = {name: call(name, k) for name in names}
            for name in names if k % 2 else reversed(names):
                start = time.perf_counter()
                prepared[name]()
                if k:
                    samples[name].append(time.perf_counter() - start)
            gc.collect()
    finally:
        gc.enable()
    return samples


def settle_blas(busy: Callable[[], Any]) -> None:
    """Let numpy's BLAS workers go idle before timing something else, keeping the CPU busy meanwhile.

    OpenBLAS's idle workers spin for a while after each call (``BLAS_SETTLE_S`` in
    ``crewai_rust.memory._kernels``); a two-thread Rust scan timed then runs with its second
    core taken. ``busy`` (a call that uses no BLAS, e.g. the streaming read) runs meanwhile,
    so the cache and clock stay warm instead of cooling down in a sleep.
    """
    from crewai_rust.memory._kernels import BLAS_SETTLE_S

    deadline = time.perf_counter() + BLAS_SETTLE_S
    while time.perf_counter() < deadline:
        busy()


def row(group: str, case: str, impl: str, samples: list[float], **extra: Any) -> dict[str, Any]:
    """One result row: median and quartiles of ``samples`` (seconds)."""
    ordered = sorted(samples)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {
        "group": group,
        "case": case,
        "impl": impl,
        "median_s": statistics.median(ordered),
        "q1_s": quartiles[0],
        "q3_s": quartiles[2],
        "runs": len(ordered),
        **extra,
    }


def measure(group: str, case: str, impl: str, fn: Callable[[], Any], **kwargs: Any) -> dict[str, Any]:
    """Time ``fn`` with :func:`time_calls` and return its :func:`row`."""
    extra = kwargs.pop("extra", {})
    return row(group, case, impl, time_calls(fn, **kwargs), **extra)


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``speedup_vs_stock`` and ``rust_vs_python`` to rows of the same (group, case)."""
    by_case: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_case.setdefault((r["group"], r["case"]), {})[r["impl"]] = r
    for impls in by_case.values():
        stock, python = impls.get("stock"), impls.get("python")
        for r in impls.values():
            if stock is not None and r["median_s"] > 0:
                r["speedup_vs_stock"] = stock["median_s"] / r["median_s"]
        if python is not None and "rust" in impls and impls["rust"]["median_s"] > 0:
            impls["rust"]["rust_vs_python"] = python["median_s"] / impls["rust"]["median_s"]
    return rows


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: median, spread, ratio to stock and rust vs python."""
    header = f"{'group':<10} {'case':<34} {'impl':<8} {'median':>10} {'spread (q1-q3)':>22} {'x stock':>8} {'rust/py':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        spread = f"{_fmt_time(r['q1_s'])}-{_fmt_time(r['q3_s'])}"
        vs_stock = f"{r['speedup_vs_stock']:.1f}x" if "speedup_vs_stock" in r else ""
        vs_py = f"{r['rust_vs_python']:.2f}x" if "rust_vs_python" in r else ""
        lines.append(
            f"{r['group']:<10} {r['case'][:34]:<34} {r['impl']:<8} {_fmt_time(r['median_s']):>10} {spread:>22} {vs_stock:>8} {vs_py:>8}"
        )
    return "\n".join(lines)


def main(run: Callable[[bool], list[dict[str, Any]]]) -> None:
    """``python benchmarks/bench_x.py [--quick] [--json FILE]``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument("--json", help="write the raw rows to this file")
    args = parser.parse_args()
    rows = add_ratios(run(args.quick))
    print(format_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    sys.stdout.flush()
