"""``python -m crewai_rust run-many pkg.crew:Factory inputs.jsonl --out results.jsonl``.

One JSON object per line in, one per finished input out (``index``, ``inputs``,
``output``, ``usage``, ``error``, ``seconds``), written and flushed as each input
settles, so a crash or Ctrl-C loses no finished work; ``--resume`` skips the
inputs whose index is already in the output file. Progress goes to stderr
(``rich`` when installed, else a plain line).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("factory", help="crew factory import path, e.g. pkg.crew:ResearchCrew")
    parser.add_argument("inputs", type=Path, help="JSON lines file, one inputs object per line")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines file of results (appended)")
    parser.add_argument("--backend", choices=("threads", "processes", "ray"), default="processes")
    parser.add_argument("--workers", type=int, default=None, help="worker processes or Ray actors (default: CPU count)")
    parser.add_argument("--address", default=None, help="Ray cluster address (--backend ray; default: a local Ray)")
    parser.add_argument("--max-concurrency", type=int, default=None, help="kickoffs at once (default 16)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per input")
    parser.add_argument("--resume", action="store_true", help="skip inputs already in --out")
    parser.add_argument("--no-patch", action="store_true", help="do not call crewai_rust.patch() first")


def read_inputs(path: Path) -> list[dict[str, Any]]:
    inputs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        value = json.loads(line)
        if not isinstance(value, dict):
            raise ValueError(f"{path}:{number}: each line must be a JSON object, got {type(value).__name__}")
        inputs.append(value)
    return inputs


def finished_indexes(path: Path) -> set[int]:
    """Indexes already written to ``path`` (a torn last line from a crash is ignored)."""
    done: set[int] = set()
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            done.add(int(json.loads(line)["index"]))
        except (ValueError, KeyError, TypeError):
            continue
    return done


def _usage(usage: Any) -> dict[str, Any] | None:
    return usage.model_dump() if usage is not None else None


class _Progress:
    """A rich progress bar when rich is installed, else one plain line per settled input."""

    def __init__(self, total: int, skipped: int) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.started = time.perf_counter()
        try:
            from rich.console import Console
            from rich.progress import Progress
        except ImportError:
            self._rich = None
            print(f"run-many: {total} inputs to run, {skipped} already done", file=sys.stderr, flush=True)
        else:
            self._rich = Progress(console=Console(stderr=True))
            self._task = self._rich.add_task("kickoffs", total=total)
            self._rich.start()

    def advance(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if self._rich is not None:
            self._rich.update(self._task, advance=1, description=f"kickoffs ({self.failed} failed)")
        else:
            elapsed = time.perf_counter() - self.started
            print(f"run-many: {self.done}/{self.total} done, {self.failed} failed, {elapsed:.1f} s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


def run(args: argparse.Namespace) -> int:
    from .tasks import kickoff_many

    inputs = read_inputs(args.inputs)
    skip = finished_indexes(args.out) if args.resume else set()
    todo = [i for i in range(len(inputs)) if i not in skip]
    if not args.no_patch:
        import crewai_rust

        crewai_rust.patch()
    progress = _Progress(len(todo), len(skip))
    lock = threading.Lock()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torn = args.out.exists() and args.out.stat().st_size > 0 and not args.out.read_bytes().endswith(b"\n")
    with args.out.open("a", encoding="utf-8") as out:
        if torn:
            out.write("\n")  # a crash mid-line: keep the next record on a line of its own

        def on_result(position: int, value: Any, usage: Any, seconds: float | None) -> None:
            ok = not isinstance(value, BaseException)
            index = todo[position]
            record = {
                "index": index,
                "inputs": inputs[index],
                "output": value.raw if ok else None,
                "usage": _usage(usage) if ok else None,
                "error": None if ok else f"{type(value).__name__}: {value}",
                "seconds": round(seconds, 6) if seconds is not None else None,
            }
            with lock:
                out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                out.flush()
                progress.advance(ok)

        try:
            results = kickoff_many(args.factory, [inputs[i] for i in todo], backend=args.backend, workers=args.workers,
                                   address=args.address, max_concurrency=args.max_concurrency, timeout=args.timeout,
                                   return_exceptions=True, on_result=on_result)
        except KeyboardInterrupt:
            print("run-many: interrupted; finished inputs are in the output file (use --resume)", file=sys.stderr)
            return 130
        finally:
            progress.close()
    failed = sum(isinstance(r, BaseException) for r in results)
    print(f"run-many: {len(results) - failed} ok, {failed} failed, total tokens "
          f"{results.usage_metrics.total_tokens}", file=sys.stderr)
    return 1 if failed else 0
