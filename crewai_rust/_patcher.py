"""Recording every change a component makes to CrewAI, so it can be undone exactly.

A component never touches CrewAI directly: it asks its :class:`Patcher` to
replace an attribute or to register through one of CrewAI's setters. The
patcher keeps the original object (by identity) and an undo step for each
change, and reports targets that the installed CrewAI does not have instead of
skipping them silently.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("crewai_rust")

_MISSING = object()


@dataclass
class MissingTarget:
    """A CrewAI object a component wanted to patch or register with, and why it could not."""

    target: str
    reason: str


@dataclass
class Patcher:
    """The change log of one component."""

    component: str
    patched: list[str] = field(default_factory=list)
    missing: list[MissingTarget] = field(default_factory=list)
    #: Targets deliberately left to CrewAI (or to the user), with the reason: never a silent skip.
    kept: list[MissingTarget] = field(default_factory=list)
    _undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    # -- looking things up -------------------------------------------------
    def resolve(self, dotted: str, label: str | None = None) -> Any:
        """Import ``module`` or ``module:attr.path``; report (as ``label``) and return None when absent."""
        module_name, _, attr_path = dotted.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            self.report_missing(label or dotted, f"cannot import {module_name}: {exc}")
            return None
        for part in filter(None, attr_path.split(".")):
            obj = getattr(obj, part, _MISSING)
            if obj is _MISSING:
                self.report_missing(label or dotted, f"{module_name} has no attribute {attr_path}")
                return None
        return obj

    def report_missing(self, target: str, reason: str) -> None:
        """Record a target the installed CrewAI lacks and warn through the ``crewai_rust`` logger."""
        self.missing.append(MissingTarget(target, reason))
        logger.warning("crewai_rust %s: patch target %s not found (%s)", self.component, target, reason)

    def keep(self, target: str, reason: str) -> None:
        """Record a target left as it is on purpose (reported by ``status()``, logged at INFO)."""
        self.kept.append(MissingTarget(target, reason))
        logger.info("crewai_rust %s: kept %s (%s)", self.component, target, reason)

    # -- changing things ---------------------------------------------------
    def replace(self, owner_path: str, attr: str, new: Any) -> Any:
        """Set ``owner.attr = new`` and remember how to put the original back.

        Returns the original object, or None when the target is missing.
        """
        label = f"{owner_path}.{attr}" if ":" in owner_path else f"{owner_path}:{attr}"
        owner = self.resolve(owner_path, label)
        if owner is None:
            return None
        own = vars(owner) if hasattr(owner, "__dict__") else {}
        had_own = attr in own
        original = own[attr] if had_own else getattr(owner, attr, _MISSING)
        if original is _MISSING:
            self.report_missing(label, f"{owner_path} has no attribute {attr}")
            return None
        setattr(owner, attr, new)

        def undo() -> None:
            if had_own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)

        self._undo.append((label, undo))
        self.patched.append(label)
        # For descriptors on classes (functions, staticmethods) return the raw
        # object; callers that need the bound behaviour use getattr themselves.
        return original

    def add_undo(self, label: str, undo: Callable[[], None]) -> None:
        """Record a change made through an official CrewAI setter and the call that reverses it."""
        self._undo.append((label, undo))
        self.patched.append(label)

    def use_setter(self, setter_path: str, current_path: str, value: Any) -> bool:
        """Call an official ``set_*`` seam with ``value``; undo restores what it held before.

        ``current_path`` names the module global the setter writes, so the
        previous registration (perhaps the user's own) is put back, not reset.
        """
        setter = self.resolve(setter_path)
        if setter is None:
            return False
        module_name, _, global_name = current_path.partition(":")
        module = importlib.import_module(module_name)
        previous = getattr(module, global_name, None)
        setter(value)
        self.add_undo(setter_path, lambda: setter(previous))
        return True

    def undo_all(self) -> list[str]:
        """Reverse every change, newest first; returns labels whose undo failed."""
        failed: list[str] = []
        while self._undo:
            label, undo = self._undo.pop()
            try:
                undo()
            except Exception:  # keep undoing the rest; report this one
                logger.exception("crewai_rust %s: could not restore %s", self.component, label)
                failed.append(label)
        self.patched.clear()
        return failed
