"""Which copy of crewai_rust a process imports, and child processes that import the same one.

``python -m crewai_rust`` run from a source checkout imports the checkout's
``crewai_rust/`` folder (the current directory comes first on ``sys.path``),
which has no compiled module even when ``pip install .`` built and installed
one. This module finds that case (:func:`shadowed_install`) so the CLI can
re-run itself against the installed copy and ``build_info()`` can say why the
pure twins run; :func:`python_command` starts children (demo runs, benchmark
scripts) on the very copy the parent imported, whatever their working directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: set in a relaunched CLI (and settable by a user) so it never relaunches again
NO_RELAUNCH_ENV = "CREWAI_RUST_NO_RELAUNCH"

_BOOT = (
    "import sys, runpy; sys.path.insert(0, sys.argv.pop(1)); kind, target = sys.argv.pop(1), sys.argv.pop(1); "
    "import crewai_rust; "
    "runpy.run_module(target, run_name='__main__', alter_sys=True) if kind == 'm' "
    "else runpy.run_path(target, run_name='__main__')"
)


def package_root() -> Path:
    """The ``sys.path`` entry the running ``crewai_rust`` was imported from."""
    import crewai_rust

    return Path(crewai_rust.__file__).resolve().parent.parent


def has_compiled_module(package_dir: Path) -> bool:
    """Whether ``package_dir`` (a ``crewai_rust`` folder) holds a built ``_speedups``."""
    import importlib.machinery

    return any((package_dir / f"_speedups{suffix}").is_file() for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def shadowed_install() -> Path | None:
    """The root of an installed crewai_rust of this version that has ``_speedups`` when ours lacks it.

    ``None`` when the imported copy has the compiled module, or no other
    installed distribution of the same version has one.
    """
    from importlib import metadata

    from ._version import __version__

    here = package_root()
    if has_compiled_module(here / "crewai_rust"):
        return None
    for dist in metadata.distributions(name="crewai_rust"):
        if dist.version != __version__:
            continue
        root = Path(str(dist.locate_file(""))).resolve()
        if root != here and has_compiled_module(root / "crewai_rust"):
            return root
    return None


def python_command(target: str, *, module: bool, root: Path | None = None) -> list[str]:
    """argv running ``target`` (a module name, or a script path) with crewai_rust imported from ``root``.

    ``root`` defaults to :func:`package_root`, so a child imports the same copy
    as its parent even when its working directory is a source checkout.
    Arguments for ``target`` follow the returned list.
    """
    where = str(root if root is not None else package_root())
    return [sys.executable, "-c", _BOOT, where, "m" if module else "p", target]


def relaunch_target() -> Path | None:
    """Where the CLI should re-run itself, or ``None`` to run here.

    Only when the imported copy lacks the compiled module, an installed copy
    of the same version has it, and neither the pure twins nor staying here
    were asked for.
    """
    from ._env import env_flag
    from ._selection import forced_pure

    if env_flag(NO_RELAUNCH_ENV, False) or forced_pure():
        return None
    return shadowed_install()


def relaunch(root: Path, argv: list[str]) -> int:
    """Run ``python -m crewai_rust ARGV`` against the copy installed at ``root``; its exit code."""
    import subprocess

    here = package_root() / "crewai_rust"
    print(f"crewai_rust: {here} (imported first, from the current directory) has no compiled module; "
          f"re-running against the installed copy in {root}, which has it "
          f"(set {NO_RELAUNCH_ENV}=1 to stay on this one)", file=sys.stderr, flush=True)
    env = {**os.environ, NO_RELAUNCH_ENV: "1"}
    return subprocess.call(python_command("crewai_rust", module=True, root=root) + argv, env=env)
