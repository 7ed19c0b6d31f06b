"""``python -m crewai_rust status``: the build info and what ``patch()`` activates."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--no-patch", action="store_true", help="report without calling patch()")


def _format(info: dict, state: dict) -> str:
    lines = ["crewai_rust build"]
    for key, value in info.items():
        lines.append(f"  {key:<18} {value}")
    lines.append("")
    if state["disabled"]:
        lines.append(f"patch(): {state['disabled']}")
    header = f"  {'component':<14} {'enabled':<8} {'impl':<7} patched / missing"
    lines += ["components after patch()", header, "  " + "-" * (len(header) - 2)]
    for name, comp in state["components"].items():
        impl = comp["implementation"] or "-"
        lines.append(f"  {name:<14} {str(comp['enabled']).lower():<8} {impl:<7} {len(comp['patched'])} patched")
        for target in comp["patched"]:
            lines.append(f"      + {target}")
        for miss in comp["missing"]:
            lines.append(f"      ! missing {miss['target']}: {miss['reason']}")
        for key in ("disabled_reason", "error"):
            if comp[key]:
                lines.append(f"      {key.replace('_', ' ')}: {comp[key]}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import crewai_rust

    info = crewai_rust.build_info()
    state = crewai_rust.status() if args.no_patch else crewai_rust.patch()
    try:
        if args.json:
            print(json.dumps({"build_info": info, "status": state}, indent=2))
        else:
            print(_format(info, state))
    finally:
        if not args.no_patch:
            crewai_rust.unpatch()
    return 0
