"""The activation registry: which components exist, which are patched, and how to undo them.

Each component lives in its own subpackage with an ``_activation`` module that
exposes ``activate(patcher, options) -> str`` (returning ``"rust"`` or
``"python"``) and may expose ``deactivate()`` for state outside CrewAI (open
stores, thread pools). The registry imports those modules only when
``patch()`` runs, so ``import crewai_rust`` never imports CrewAI.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ._env import env_flag
from ._patcher import Patcher

logger = logging.getLogger("crewai_rust")

#: Component name -> module holding its ``activate``.
COMPONENTS: dict[str, str] = {
    "MEMORY": "crewai_rust.memory._activation",
    "TOOLS": "crewai_rust.tools._activation",
    "TASKS": "crewai_rust.tasks._activation",
    "DATABASE": "crewai_rust.database._activation",
    "SERIALIZATION": "crewai_rust.serialization._activation",
    "RUNTIME": "crewai_rust.runtime._activation",
}

DISABLE_ENV = "CREWAI_RUST_DISABLE"


@dataclass
class ComponentState:
    """What ``status()`` reports for one component."""

    name: str
    enabled: bool = False
    implementation: str | None = None
    disabled_reason: str | None = None
    error: str | None = None
    patcher: Patcher | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        patcher = self.patcher
        return {
            "enabled": self.enabled,
            "implementation": self.implementation,
            "patched": list(patcher.patched) if patcher else [],
            "missing": [{"target": m.target, "reason": m.reason} for m in patcher.missing] if patcher else [],
            "kept": [{"target": k.target, "reason": k.reason} for k in patcher.kept] if patcher else [],
            "disabled_reason": self.disabled_reason,
            "error": self.error,
        }


_lock = threading.RLock()
_states: dict[str, ComponentState] = {name: ComponentState(name) for name in COMPONENTS}
_global_disabled: str | None = None


def _normalise(components: Any) -> list[str]:
    if components is None:
        return list(COMPONENTS)
    if isinstance(components, str):
        components = [components]
    names = [str(c).upper() for c in components]
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; known: {sorted(COMPONENTS)}")
    return names


def patch(components: Any = None, **options: dict[str, Any]) -> dict[str, Any]:
    """Activate crewai_rust inside CrewAI; returns :func:`status`.

    ``components`` names a subset (``"memory"``, ``["tools", "tasks"]``);
    keyword arguments named after a component carry its options, e.g.
    ``patch(tools={"max_repeats": 3})``. Calling it again is harmless:
    active components are left as they are.
    """
    global _global_disabled
    names = _normalise(components)
    bad_options = [k for k in options if k.upper() not in COMPONENTS]
    if bad_options:
        raise TypeError(f"patch() got options for unknown component(s): {bad_options}")
    with _lock:
        if env_flag(DISABLE_ENV, False):
            _global_disabled = f"{DISABLE_ENV}=1: patch() did nothing"
            logger.info("crewai_rust: %s", _global_disabled)
            return status()
        _global_disabled = None
        for name in names:
            state = _states[name]
            if state.enabled:
                continue
            if env_flag(f"CREWAI_RUST_{name}", True) is False:
                state.disabled_reason = f"CREWAI_RUST_{name}=0"
                continue
            _activate(state, dict(options.get(name.lower(), {}) or {}))
    return status()


def _activate(state: ComponentState, opts: dict[str, Any]) -> None:
    patcher = Patcher(state.name)
    state.patcher, state.options = patcher, opts
    state.disabled_reason = state.error = None
    try:
        module = importlib.import_module(COMPONENTS[state.name])
        state.implementation = module.activate(patcher, opts)
        state.enabled = True
    except Exception as exc:
        failed = patcher.undo_all()
        state.enabled, state.implementation = False, None
        state.error = f"{type(exc).__name__}: {exc}" + (f" (could not restore {failed})" if failed else "")
        logger.warning("crewai_rust %s: not activated: %s", state.name, state.error)


def unpatch() -> dict[str, Any]:
    """Put CrewAI back exactly as it was before :func:`patch`; safe to call twice."""
    global _global_disabled
    with _lock:
        for name in reversed(list(COMPONENTS)):
            state = _states[name]
            if not state.enabled or state.patcher is None:
                continue
            module = importlib.import_module(COMPONENTS[name])
            deactivate = getattr(module, "deactivate", None)
            if deactivate is not None:
                deactivate()
            failed = state.patcher.undo_all()
            state.enabled, state.implementation = False, None
            state.error = f"could not restore {failed}" if failed else None
        _global_disabled = None
    return status()


def component_options(name: str) -> dict[str, Any]:
    """The options the active component was given through ``patch()`` (worker processes re-apply them)."""
    with _lock:
        return dict(_states[name.upper()].options)


def status() -> dict[str, Any]:
    """Per component: enabled, implementation, targets patched, targets missing (with reasons)."""
    from ._selection import build_info

    with _lock:
        components = {name: state.as_dict() for name, state in _states.items()}
        for name, state in _states.items():
            stats = getattr(importlib.import_module(COMPONENTS[name]), "stats", None) if state.enabled else None
            if stats is not None:
                components[name]["stats"] = stats()  # what the component did (e.g. TOOLS refusals, stops)
        return {
            "disabled": _global_disabled,
            "speedups_enabled": build_info()["speedups_enabled"],
            "components": components,
        }
