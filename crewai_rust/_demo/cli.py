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
import tempfile
import time
from pathlib import Path
from typing import Any

from .._launch import python_command

PHASES = [
    ("memory recall", "memory recall"),
    ("waiting for saves", "recall waiting for saves"),
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
        [*python_command("crewai_rust._demo.child", module=True), mode, str(out)],
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


#: phases that are whole windows (they contain the others)
WINDOWS = ("whole kickoff", "task fan-out")
#: windows whose floor is reported, with their labels
FLOORS = [("whole kickoff", "whole kickoff (main crew)"), ("task fan-out", "task fan-out (kickoff_for_each)")]


def format_floors(stock: dict[str, Any], patched: dict[str, Any]) -> list[str]:
    """Wall time split into the scripted LLM's floor and the framework time above it."""
    lines = ["", f"{'where the wall-clock time goes':<38} {'stock':>11} {'patched':>11} {'change':>9}"]
    lines.append("-" * len(lines[-1]))
    for key, label in FLOORS:
        s, p = stock.get("floors", {}).get(key), patched.get("floors", {}).get(key)
        if not s or not p:
            continue
        s_fw, p_fw = s["wall"] - s["llm_floor"], p["wall"] - p["llm_floor"]
        rows = [(label, s["wall"], p["wall"]), ("  scripted LLM on the critical path", s["llm_floor"], p["llm_floor"]),
                ("  framework time above it", s_fw, p_fw)]
        for name, a, b in rows:
            change = f"{a / b:.1f}x" if a > 0 and b > 0 else "-"
            lines.append(f"{name:<38} {a * 1000:>8.1f} ms {b * 1000:>8.1f} ms {change:>9}")
    lines.append("(the floor is the time at least one agent's scripted LLM call was in flight: what the window would")
    lines.append(" still take if the framework cost nothing; everything above it is CrewAI plus crewai_rust)")
    return lines


def explain_slower(stock: dict[str, Any], patched: dict[str, Any]) -> list[str]:
    """A note for each phase that got slower, with where that time came from when it only moved."""
    notes = []
    s_ph, p_ph = stock["phases"], patched["phases"]
    inner = [(k, label) for k, label in PHASES if k not in WINDOWS]
    saved_elsewhere = sum(max(0.0, _ms(s_ph, k)[0] - _ms(p_ph, k)[0]) for k, _ in inner)
    for key, label in inner:
        s_ms, _ = _ms(s_ph, key)
        p_ms, _ = _ms(p_ph, key)
        if p_ms <= s_ms:
            continue
        note = f"  {label}: +{p_ms - s_ms:.1f} ms summed over threads in the patched run"
        s_wall, p_wall = s_ph.get(key, {}).get("wall"), p_ph.get(key, {}).get("wall")
        if s_wall is not None and p_wall is not None:
            note += f" (its calls covered {s_wall * 1000:.1f} ms of wall clock stock, {p_wall * 1000:.1f} ms patched)"
        if p_wall is not None and s_wall is not None and p_wall <= s_wall:
            note += (": more of these calls now run at the same time (concurrent fan-out, async tasks), so their "
                     "summed time grew while the wall clock they cover shrank")
        elif key in ("memory recall", "waiting for saves") and _ms(s_ph, "memory save")[0] > _ms(p_ph, "memory save")[0]:
            note += ("; the background saves got faster, so a recall can now run beside (and wait on) saves that "
                     "used to be still queued: time moved from the saves, not added")
        else:
            note += (f"; the other phases gave back {saved_elsewhere:.1f} ms. A call that now overlaps other work "
                     "(async tasks, background saves) also counts its waits for the GIL or a shared lock here; "
                     "the framework time above the floor is what the crew's wall clock paid")
        notes.append(note)
    return ["", "phases that got slower"] + notes if notes else []


def format_report(stock: dict[str, Any], patched: dict[str, Any]) -> str:
    header = f"{'phase (cumulative time, all threads)':<38} {'stock':>14} {'patched':>14} {'speed-up':>9}"
    lines = format_floors(stock, patched) + ["", header]
    lines.append("-" * len(lines[-1]))
    for key, label in PHASES:
        s_ms, s_calls = _ms(stock["phases"], key)
        p_ms, p_calls = _ms(patched["phases"], key)
        ratio = f"{s_ms / p_ms:.1f}x" if p_ms > 0 and s_ms > 0 else "-"
        lines.append(f"{label:<38} {s_ms:>8.1f} ms/{s_calls:<3} {p_ms:>8.1f} ms/{p_calls:<3} {ratio:>9}")
    lines.append("(ms/N = milliseconds over N calls; the last two rows exclude the phases above them)")
    lines += explain_slower(stock, patched)
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
    from .._selection import implementation_summary

    print(implementation_summary())
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
