"""``python -m crewai_rust demo``: the same offline crew, stock then patched, side by side.

Each run is its own process (so nothing patched leaks into the stock run and
both pay the same import and warm-up costs). The demo fails (exit 1) when the
two runs' task outputs differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PHASES = [
    ("memory recall", "memory recall"),
    ("memory save", "memory save (background)"),
    ("tool dispatch", "tool dispatch"),
    ("task fan-out", "task fan-out (kickoff_for_each)"),
    ("task-output storage", "task-output storage"),
    ("flow engine", "flow engine (state, listeners: RUNTIME)"),
    ("whole kickoff", "whole kickoff (main crew)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency", type=float, default=0.02, help="seconds slept per scripted LLM call")
    parser.add_argument("--inputs", type=int, default=6, help="inputs for kickoff_for_each")
    parser.add_argument("--json", metavar="FILE", help="write both runs' raw results here")


def _run_child(mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out = workdir / f"{mode}.json"
    env = {
        **os.environ,
        "CREWAI_STORAGE_DIR": str(workdir / f"storage-{mode}"),
        "CREWAI_RUST_DEMO_LATENCY": str(args.latency),
        "CREWAI_RUST_DEMO_INPUTS": str(args.inputs),
        "PYTHONUNBUFFERED": "1",
    }
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crewai_rust._demo.child", mode, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("PROGRESS "):
            print(f"  [{mode:<7} {time.perf_counter() - started:5.1f} s] {line[9:].rstrip()}", flush=True)
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.wait() != 0 or not out.exists():
        raise SystemExit(f"the {mode} run failed:\n{stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_seconds"] = time.perf_counter() - started
    return result


def _ms(phases: dict[str, Any], key: str) -> tuple[float, int]:
    entry = phases.get(key, {"seconds": 0.0, "calls": 0})
    return entry["seconds"] * 1000.0, int(entry["calls"])


def format_report(stock: dict[str, Any], patched: dict[str, Any]) -> str:
    lines = ["", f"{'phase (cumulative time, all threads)':<38} {'stock':>14} {'patched':>14} {'speed-up':>9}"]
    lines.append("-" * len(lines[-1]))
    for key, label in PHASES:
        s_ms, s_calls = _ms(stock["phases"], key)
        p_ms, p_calls = _ms(patched["phases"], key)
        ratio = f"{s_ms / p_ms:.1f}x" if p_ms > 0 and s_ms > 0 else "-"
        lines.append(f"{label:<38} {s_ms:>8.1f} ms/{s_calls:<3} {p_ms:>8.1f} ms/{p_calls:<3} {ratio:>9}")
    lines.append("(ms/N = milliseconds over N calls)")
    status = patched.get("status") or {}
    lines += ["", "components in the patched run"]
    for name, comp in (status.get("components") or {}).items():
        state = comp["implementation"] if comp["enabled"] else (comp["disabled_reason"] or comp["error"] or "off")
        lines.append(f"  {name:<14} {state:<10} {len(comp['patched'])} CrewAI targets patched/registered"
                     + (f", {len(comp['missing'])} missing" if comp["missing"] else ""))
    lines.append(f"  memory backend: stock {stock['memory_storage']}, patched {patched['memory_storage']}")
    lines += ["", "tool executions (stock -> patched)"]
    for tool in sorted(set(stock["tool_executions"]) | set(patched["tool_executions"])):
        lines.append(f"  {tool:<16} {stock['tool_executions'].get(tool, 0):>3} -> {patched['tool_executions'].get(tool, 0)}")
    guard = patched.get("guard") or []
    lines.append(f"  loop guard refusals in the patched run: {len(guard)}")
    lines += [f"    refused {line}" for line in guard]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(f"crewai_rust demo: offline crew, scripted LLM ({args.latency * 1000:.0f} ms per call), "
          f"memory on, kickoff_for_each over {args.inputs} inputs")
    with tempfile.TemporaryDirectory(prefix="crewai_rust_demo_") as tmp:
        workdir = Path(tmp)
        stock = _run_child("stock", args, workdir)
        patched = _run_child("patched", args, workdir)
    same = stock["outputs"] == patched["outputs"]
    print(format_report(stock, patched))
    n_outputs = len(stock["outputs"]["main"]) + sum(len(o) for o in stock["outputs"]["fanout"])
    print(f"\ntask outputs identical in both runs: {'yes' if same else 'NO'} ({n_outputs} outputs compared)")
    print(f"process time: stock {stock['process_seconds']:.1f} s, patched {patched['process_seconds']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"stock": stock, "patched": patched, "identical": same}, indent=2))
    return 0 if same else 1
