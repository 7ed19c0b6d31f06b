"""The one place that decides between the compiled twin and the pure one.

Every component asks :func:`use_rust` which implementation to run; nothing else
imports ``crewai_rust._speedups``. The module is imported lazily, on first
question, so ``import crewai_rust`` stays cheap.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any, TypeVar

from ._env import env_flag

PUREPYTHON_ENV = "CREWAI_RUST_PUREPYTHON"
T = TypeVar("T")

_lock = threading.Lock()
_loaded = False
_module: ModuleType | None = None
_import_error: str | None = None


def _load() -> ModuleType | None:
    global _loaded, _module, _import_error
    if _loaded:
        return _module
    with _lock:
        if not _loaded:
            try:
                _module = importlib.import_module("crewai_rust._speedups")
            except ImportError as exc:
                _module = None
                _import_error = f"{type(exc).__name__}: {exc}"
            _loaded = True
    return _module


def forced_pure() -> bool:
    """True when ``CREWAI_RUST_PUREPYTHON`` asks for the pure functions."""
    return bool(env_flag(PUREPYTHON_ENV, False))


def speedups_module() -> ModuleType | None:
    """The compiled module when it is installed and not forced off, else None."""
    if forced_pure():
        return None
    return _load()


def speedups_enabled() -> bool:
    """Whether the compiled ``_speedups`` module is the one that runs."""
    return speedups_module() is not None


def use_rust(requested: bool | None) -> bool:
    """Resolve a component's ``use_rust`` argument.

    ``None`` picks the compiled twin when it is available; ``True`` insists on
    it and raises when it cannot run (so a caller never believes it got rust
    when it got python); ``False`` always picks the pure twin.
    """
    if requested is False:
        return False
    module = speedups_module()
    if module is not None:
        return True
    if requested is True:
        raise RuntimeError(f"use_rust=True but the compiled module is unavailable: {_reason_unused()}")
    return False


def twin(python_twin: T, rust: bool, name: str | None = None) -> T:
    """The one binder of every component: the compiled twin of ``python_twin`` when ``rust``.

    Both twins export the same name (``name``, default ``python_twin.__name__``): the
    Python twin of ``rust/src/<core>.rs`` lives in ``<component>/_<core>_py.py``. The
    result is typed as the Python twin, so type checkers see the real signature.
    """
    if not rust:
        return python_twin
    module = speedups_module()
    if module is None:
        raise RuntimeError(f"the compiled twin was chosen but is unavailable: {_reason_unused()}")
    return getattr(module, name or getattr(python_twin, "__name__"))  # type: ignore[no-any-return]


def implementation_name(rust: bool) -> str:
    """The ``.implementation`` label components report."""
    return "rust" if rust else "python"


def _reason_unused() -> str:
    if forced_pure():
        return f"forced off by {PUREPYTHON_ENV}=1"
    _load()
    if _import_error is None:
        return ""
    if "No module named 'crewai_rust._speedups'" in _import_error:
        return _reason_not_built()
    return f"import failed: {_import_error}"


def _reason_not_built() -> str:
    from ._launch import package_root, shadowed_install
    from ._version import __version__

    installed = shadowed_install()
    if installed is None:
        return "not built (installed without the Rust extension)"
    return (
        f"the imported crewai_rust ({package_root() / 'crewai_rust'}) has no compiled module, but the installed "
        f"crewai_rust {__version__} in {installed} has one: the source folder comes first on sys.path "
        f"(run from another directory, or build it in place with .ci/dev-build; "
        f"`python -m crewai_rust` re-runs itself against the installed copy)"
    )


def build_info() -> dict[str, Any]:
    """What was built and what runs: found, enabled, version, profile, and why not."""
    from ._version import __version__

    module = _load()
    info: dict[str, Any] = {
        "package_version": __version__,
        "speedups_found": module is not None,
        "speedups_enabled": speedups_enabled(),
        "speedups_version": None,
        "profile": None,
        "cpu_features": None,
        "reason": _reason_unused() or None,
    }
    if module is not None:
        compiled = module.build_info()
        info["speedups_version"] = compiled["version"]
        info["profile"] = compiled["profile"]
        info["cpu_features"] = list(compiled["cpu_features"])
    return info


def implementation_summary() -> str:
    """One line for a command's first output: which twins run, from where, and why not rust."""
    from ._launch import package_root

    where = package_root() / "crewai_rust"
    if speedups_enabled():
        info = build_info()
        return f"implementation: rust (compiled _speedups {info['speedups_version']}, {info['profile']}) from {where}"
    return f"implementation: python (pure twins) from {where}: {_reason_unused()}"
