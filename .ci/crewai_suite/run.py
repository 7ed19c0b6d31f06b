"""Run CrewAI's own tests stock and patched, and fail on any test that passes stock only.

    python .ci/crewai_suite/run.py [--modes stock,patched,pure] [--workers 2] [--out DIR]
                                   [--sdist FILE | --sdist-dir DIR] [PATH ...]

The tests are those of the sdist of the *installed* crewai version (its tests match its
code): ``--sdist`` names the file, else ``--sdist-dir`` (or ``$CREWAI_SUITE_SDIST_DIR``)
is searched, else it is fetched with ``pip download --no-deps --no-binary :all:`` (with
the package index re-enabled for that one step). PATHs (relative to the sdist's
``tests/``) default to ``DEFAULT_PATHS``. Every mode runs the same selection with
pytest-xdist, network blocked and VCR replay-only (``conftest.py`` here); ``patched``
and ``pure`` load ``crewai_rust_suite_patch`` (``pure`` with ``CREWAI_RUST_PUREPYTHON=1``).
Outcomes are compared per test from the junit XML files; a test that passed stock and
did not pass patched is rerun alone in that mode, and the run fails when it fails again,
unless ``known_differences.txt`` lists it with the reason.

``--baseline failures`` (CI) runs the other modes first and stock only on the tests that did
not pass in one of them: a test that passes patched is no regression whatever stock does, so
the regressions found are the same and stock's ~2000 passing tests are not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: What crewai_rust touches (see README, "CrewAI's own test suite"); left-out parts are listed there.
DEFAULT_PATHS = [
    "memory",
    "storage",
    "crew",
    "task",
    "tools",
    "hooks",
    "agents",
    "events",
    "utilities",
    "test_crew.py",
    "test_crew_thread_safety.py",
    "test_task.py",
    "test_task_guardrails.py",
    "test_sqlite_connection_lifecycle.py",
    "test_checkpoint.py",
    "test_flow.py",
    "test_flow_definition.py",
    "test_flow_persistence.py",
    "test_flow_persistence_factory.py",
    "test_flow_resumability_regression.py",
    "test_flow_default_override.py",
    "test_flow_usage_metrics.py",
]
#: Files inside the selected directories left out of the default run (time; README says why).
DEFAULT_IGNORES = [
    "utilities/test_events.py",
    "utilities/test_summarize_integration.py",
]
MODES = {
    "stock": {},
    "patched": {"CREWAI_RUST_PUREPYTHON": None},
    "pure": {"CREWAI_RUST_PUREPYTHON": "1"},
}
PASSED = "passed"


def log(message: str) -> None:
    print(f"crewai-suite: {message}", flush=True)


# -- the sdist ------------------------------------------------------------------


def installed_version() -> str:
    return metadata.version("crewai")


def find_or_fetch_sdist(version: str, sdist: str | None, sdist_dir: str | None, cache: Path) -> Path:
    name = f"crewai-{version}.tar.gz"
    if sdist:
        return Path(sdist)
    for directory in filter(None, [sdist_dir, os.environ.get("CREWAI_SUITE_SDIST_DIR"), str(cache)]):
        candidate = Path(directory) / name
        if candidate.is_file():
            return candidate
    cache.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_NO_INDEX", "PIP_FIND_LINKS")}
    log(f"fetching {name} from PyPI")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
         "--no-binary", ":all:", f"crewai=={version}", "-d", str(cache)],
        check=True, env=env,
    )
    return cache / name


def unpack(sdist: Path, work: Path) -> Path:
    """The sdist's root (holding ``tests/``), with our conftest.py beside ``tests/``."""
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        root = work / top
        if not (root / "tests").is_dir():
            tar.extractall(work, filter="data") if sys.version_info >= (3, 12) else tar.extractall(work)  # noqa: S202
    shutil.copy(HERE / "conftest.py", root / "conftest.py")
    return root


# -- running --------------------------------------------------------------------


def pytest_command(root: Path, mode: str, targets: list[str], junit: Path, workers: int) -> list[str]:
    cmd = [
        sys.executable, "-m", "pytest", "-c", str(HERE / "pytest.ini"), "--rootdir", str(root),
        "--import-mode=importlib", "-p", "no:cacheprovider", "-p", "no:randomly",
        "--block-network", "--record-mode=none", "--timeout=180", "-q", "--tb=line", "-rN",
        # a module that fails to collect is one more non-passed outcome, never the end of the run
        "--continue-on-collection-errors",
        f"--junitxml={junit}",
    ]
    if workers > 1:
        cmd += ["-n", str(workers), "--dist=loadfile", "--max-worker-restart=4"]
    if mode != "stock":
        cmd += ["-p", "crewai_rust_suite_patch"]
    return cmd + targets


def run_mode(root: Path, mode: str, targets: list[str], out: Path, workers: int, tag: str = "") -> tuple[Path, float]:
    junit = out / f"{mode}{tag}.xml"
    env = dict(os.environ)
    for key, value in MODES[mode].items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["CREWAI_SUITE_PATCH_LOG"] = str(out / f"{mode}{tag}-reinstalls.jsonl")
    env.setdefault("PYTHONHASHSEED", "0")
    Path(env["CREWAI_SUITE_PATCH_LOG"]).unlink(missing_ok=True)
    start = time.monotonic()
    log(f"{mode}{tag}: pytest on {sum(not t.startswith('--') for t in targets)} target(s)")
    proc = subprocess.run(pytest_command(root, mode, targets, junit, workers), cwd=root, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.monotonic() - start
    (out / f"{mode}{tag}.log").write_text(proc.stdout)
    tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
    log(f"{mode}{tag}: {elapsed:.0f} s, exit {proc.returncode}: {tail[0]}")
    if proc.returncode not in (0, 1) or not junit.is_file():
        sys.stdout.write(proc.stdout[-4000:])
        raise SystemExit(f"crewai-suite: pytest {mode}{tag} did not complete (exit {proc.returncode})")
    return junit, elapsed


# -- comparing ------------------------------------------------------------------


def outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """test id (``tests/x/test_y.py::Class::name``) -> (outcome, first line of the message)."""
    result: dict[str, tuple[str, str]] = {}
    for case in ET.parse(junit).iter("testcase"):
        file = case.get("file") or ""
        classname = case.get("classname") or ""
        cls = classname.rsplit(".", 1)[-1] if classname.rsplit(".", 1)[-1][:1].isupper() else ""
        test_id = "::".join(filter(None, [file, cls, case.get("name") or ""]))
        outcome, message = PASSED, ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = (child.get("message") or child.text or "").strip().splitlines()[:1]
                message = message[0][:200] if message else ""
                break
        if test_id in result and result[test_id][0] != PASSED:
            continue  # a teardown error is reported as a second case: keep the worst
        result[test_id] = (outcome, message)
    return result


def group_of(test_id: str) -> str:
    parts = test_id.split("::", 1)[0].split("/")
    if len(parts) > 2:
        return parts[1]
    name = parts[-1]
    return "test_flow*.py" if name.startswith("test_flow") else name


def known_differences() -> dict[str, str]:
    known: dict[str, str] = {}
    path = HERE / "known_differences.txt"
    for line in path.read_text().splitlines() if path.is_file() else []:
        line = line.strip()
        if line and not line.startswith("#"):
            test_id, _, reason = line.partition(" ")
            known[test_id] = reason.strip()
    return known


def report(results: dict[str, dict[str, tuple[str, str]]]) -> dict[str, list[str]]:
    modes = list(results)
    stock = results["stock"]
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for test_id in sorted({t for outcomes_of in results.values() for t in outcomes_of}):
        groups[group_of(test_id)]["tests"] += 1
    regressions: dict[str, list[str]] = {m: [] for m in modes if m != "stock"}
    for mode in modes:
        for test_id, (outcome, _) in results[mode].items():
            if outcome == PASSED:
                groups[group_of(test_id)][f"{mode} passed"] += 1
            if mode != "stock" and stock.get(test_id, ("",))[0] == PASSED and outcome not in (PASSED, "skipped"):
                regressions[mode].append(test_id)
                groups[group_of(test_id)][f"{mode} regressions"] += 1
    header = ["directory", "tests"] + [f"{m} passed" for m in modes] + [f"{m} regressions" for m in modes if m != "stock"]
    rows = [[g] + [str(groups[g][h]) for h in header[1:]] for g in sorted(groups)]
    totals = ["total"] + [str(sum(groups[g][h] for g in groups)) for h in header[1:]]
    widths = [max(len(r[i]) for r in [header, *rows, totals]) for i in range(len(header))]
    print()
    for row in [header, ["-" * w for w in widths], *rows, ["-" * w for w in widths], totals]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print()
    return regressions


def patch_log(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def check_installs(mode: str, installs: list[dict[str, object]], require_speedups: bool) -> str | None:
    """Why the ``mode`` run did not really run patched, or None."""
    if not installs:
        return "the patch plugin never installed crewai_rust"
    want = "python" if mode == "pure" else ("rust" if require_speedups else None)
    for record in installs:
        implementations = record["installed"]
        if not isinstance(implementations, dict) or not implementations:
            return f"patch() enabled nothing: {record}"
        if mode == "pure" and record["speedups"]:
            return "pure mode ran with speedups enabled"
        if want == "rust" and not record["speedups"]:
            return "patched mode ran without the Rust twin"
    return None


def suspects_of(results: dict[str, dict[str, tuple[str, str]]]) -> list[str]:
    """The tests that did not pass (nor skip) in some mode: the only ones stock can make regressions."""
    return sorted({t for outcomes_of in results.values() for t, (outcome, _) in outcomes_of.items()
                   if outcome not in (PASSED, "skipped")})


def is_module_id(test_id: str) -> bool:
    """``tests/a/test_b.py::tests.a.test_b``: junit's name for a module that failed to collect."""
    file, _, rest = test_id.partition("::")
    return rest == file.removesuffix(".py").replace("/", ".")


def file_of(test_id: str) -> str:
    return test_id.split("::", 1)[0]


def selection(test_ids: list[str]) -> list[str]:
    """pytest arguments that run ``test_ids``: a module's dotted name selects nothing, its file does."""
    return sorted({file_of(t) if is_module_id(t) else t for t in test_ids})


def outcomes_of(junit: Path, test_ids: list[str]) -> dict[str, tuple[str, str]]:
    """:func:`outcomes`, plus each module id whose file collected this time: passed when one of its tests did."""
    found = outcomes(junit)
    for test_id in filter(is_module_id, test_ids):
        of_file = [o for t, o in found.items() if file_of(t) == file_of(test_id)]
        if test_id not in found and of_file:
            found[test_id] = next((o for o in of_file if o[0] == PASSED), of_file[0])
    return found


def stock_on_suspects(root: Path, results: dict[str, dict[str, tuple[str, str]]], out: Path,
                      workers: int) -> tuple[dict[str, tuple[str, str]], float, list[str]]:
    """Stock outcomes of the suspects, and the suspects it still has none for.

    A suspect whose id does not select it again (a nested class, an odd parameter id) is run
    with its whole file, so no test escapes the comparison by its name.
    """
    suspects = suspects_of(results)
    log(f"stock: only the {len(suspects)} test(s) that did not pass in {', '.join(results)}")
    if not suspects:
        return {}, 0.0, []
    junit, elapsed = run_mode(root, "stock", selection(suspects), out, workers)
    stock = outcomes_of(junit, suspects)
    missing = [t for t in suspects if t not in stock]
    if missing:
        junit, more = run_mode(root, "stock", sorted({file_of(t) for t in missing}), out, workers, tag="-files")
        elapsed += more
        stock.update({t: o for t, o in outcomes_of(junit, missing).items() if t not in stock})
    return stock, elapsed, [t for t in suspects if t not in stock]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="test paths relative to the sdist's tests/")
    parser.add_argument("--modes", default="stock,patched")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="junit XML, logs and summary.json (default: a temp dir)")
    parser.add_argument("--work", default=None, help="where the sdist is unpacked (default: under --out)")
    parser.add_argument("--sdist", default=None)
    parser.add_argument("--sdist-dir", default=None)
    parser.add_argument("--require-speedups", action="store_true", help="patched mode must run the Rust twin")
    parser.add_argument("--baseline", choices=("full", "failures"), default="full",
                        help="full: stock runs every test first; failures: stock runs last, only on the tests "
                             "that did not pass in another mode (the same regressions, about half the time)")
    args = parser.parse_args(argv)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if modes[0] != "stock" or any(m not in MODES for m in modes):
        parser.error(f"--modes must start with stock and name modes from {list(MODES)}")
    out = Path(args.out or tempfile.mkdtemp(prefix="crewai-suite-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    version = installed_version()
    sdist = find_or_fetch_sdist(version, args.sdist, args.sdist_dir, HERE.parent / "cache" / "sdist")
    root = unpack(sdist, Path(args.work).resolve() if args.work else out / "src")
    targets = [f"tests/{p}" for p in (args.paths or DEFAULT_PATHS)]
    if not args.paths:
        targets += [f"--ignore=tests/{p}" for p in DEFAULT_IGNORES]
    missing = [t for t in targets if not (root / t.removeprefix("--ignore=")).exists()]
    if missing:
        raise SystemExit(f"crewai-suite: not in crewai {version}'s tests: {missing}")
    if args.require_speedups and "patched" in modes:
        probe = subprocess.run([sys.executable, "-c", "import crewai_rust; print(crewai_rust.speedups_enabled())"],
                               capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "CREWAI_RUST_PUREPYTHON"})
        if probe.stdout.strip() != "True":
            raise SystemExit("crewai-suite: --require-speedups but crewai_rust._speedups is not enabled")
    log(f"crewai {version} tests from {sdist.name}, modes {modes}, {args.workers} worker(s), results in {out}")

    results: dict[str, dict[str, tuple[str, str]]] = {}
    timings: dict[str, float] = {}
    failed = False
    for mode in modes if args.baseline == "full" else modes[1:]:
        junit, timings[mode] = run_mode(root, mode, targets, out, args.workers)
        results[mode] = outcomes(junit)
    if args.baseline == "failures":
        results["stock"], timings["stock"], unresolved = stock_on_suspects(root, results, out, args.workers)
        if unresolved:
            log(f"stock: no outcome for {len(unresolved)} test(s) that did not pass patched: {unresolved[:5]}")
            failed = True
    results = {mode: results[mode] for mode in modes}
    regressions = report(results)

    known = known_differences()
    summary: dict[str, object] = {"crewai": version, "targets": targets, "baseline": args.baseline,
                               "seconds": timings, "modes": {}}
    for mode, ids in regressions.items():
        records = patch_log(out / f"{mode}-reinstalls.jsonl")
        reinstalls = sum(1 for r in records if "test" in r)
        installs = [r for r in records if "installed" in r]
        log(f"{mode}: patch installed {len(installs)} time(s) in {len({r['pid'] for r in installs})} process(es), "
            f"re-installed after {reinstalls} test(s) that reset it")
        problem = check_installs(mode, installs, args.require_speedups)
        if problem:
            log(f"{mode}: {problem}")
            failed = True
        again: dict[str, tuple[str, str]] = {}
        if ids:
            junit, _ = run_mode(root, mode, selection(ids), out, 1, tag="-rerun")
            again = outcomes_of(junit, ids)
        reproduced = [t for t in sorted(ids) if again.get(t, ("missing",))[0] not in (PASSED, "skipped")]
        alone_ok = [t for t in sorted(ids) if t not in reproduced]
        unexplained = [t for t in reproduced if t not in known]
        stale = [t for t in known if results[mode].get(t, ("",))[0] == PASSED]
        for t in reproduced:
            note = f"known: {known[t]}" if t in known else results[mode][t][1]
            print(f"  {mode} REGRESSION {t}\n      {note}")
        for t in alone_ok:
            print(f"  {mode} fails in the full run, passes alone (order or timing): {t}\n      {results[mode][t][1]}")
        for t in stale:
            print(f"  {mode} listed in known_differences.txt but passes now: {t}")
        summary["modes"][mode] = {"regressions": reproduced, "passes_alone": alone_ok, "unexplained": unexplained,
                                  "reinstalls": reinstalls}  # type: ignore[index]
        failed = failed or bool(unexplained)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log("timings: " + ", ".join(f"{m} {s:.0f} s" for m, s in timings.items()))
    log("FAILED: tests pass stock and fail patched (see above)" if failed else "no unexplained regressions")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
