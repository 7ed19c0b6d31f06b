"""Command line: ``python -m crewai_rust {status,memory,demo,bench,run-many}``.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only dispatches, so one command's imports never
slow down another.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "status": ("crewai_rust._cli_status", "show the build and what patch() activates"),
    "memory": ("crewai_rust.memory._cli", "inspect or import a memory store"),
    "demo": ("crewai_rust._demo.cli", "run an offline crew stock vs patched and compare"),
    "bench": ("crewai_rust._bench.cli", "run the benchmarks/ suite"),
    "run-many": ("crewai_rust._cli_run_many", "kick off a crew factory once per line of a JSON lines file"),
}


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_text) in COMMANDS.items():
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found[name] = (module, help_text)
    return found


def main(argv: list[str] | None = None) -> int:
    from ._launch import relaunch, relaunch_target

    root = relaunch_target()
    if root is not None:
        return relaunch(root, list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(prog="python -m crewai_rust", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in _available().items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    module_name = COMMANDS[args.command][0]
    return int(importlib.import_module(module_name).run(args) or 0)
