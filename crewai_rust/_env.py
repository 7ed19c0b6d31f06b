"""Reading crewai_rust's environment variables in one place."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import overload

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_flag(name: str, default: bool | None = None) -> bool | None:
    """Return the boolean value of ``name``; ``default`` when unset or empty.

    Unrecognised spellings raise, so a typo never silently flips a switch.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")


@overload
def env_int(name: str, default: int, *, minimum: int = 1) -> int: ...
@overload
def env_int(name: str, default: None = None, *, minimum: int = 1) -> int | None: ...
def env_int(name: str, default: int | None = None, *, minimum: int = 1) -> int | None:
    """Return the integer value of ``name`` (at least ``minimum``); ``default`` when unset."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r}: must be at least {minimum}")
    return value


@overload
def env_float(name: str, default: float, *, minimum: float = 0.0, finite: bool = True) -> float: ...
@overload
def env_float(name: str, default: None = None, *, minimum: float = 0.0, finite: bool = True) -> float | None: ...
def env_float(name: str, default: float | None = None, *, minimum: float = 0.0, finite: bool = True) -> float | None:
    """Return the float value of ``name`` (at least ``minimum``, finite unless told); ``default`` when unset."""
    import math

    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a number") from None
    if (finite and not math.isfinite(value)) or not value >= minimum:
        raise ValueError(f"{name}={raw!r}: must be a {'finite ' if finite else ''}number of at least {minimum:g}")
    return value


@overload
def env_str(name: str, default: str) -> str: ...
@overload
def env_str(name: str, default: None = None) -> str | None: ...
def env_str(name: str, default: str | None = None) -> str | None:
    """Return ``name`` without surrounding whitespace; ``default`` when unset or blank."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip()


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Return ``name`` upper-cased when it is one of ``choices``; ``default`` when unset."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().upper()
    if value not in choices:
        raise ValueError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return value


def check_options(component: str, options: Mapping[str, object], known: Iterable[str]) -> None:
    """The one unknown-option check of every component: a typo raises instead of being ignored."""
    allowed = set(known)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"unknown {component} option(s) {unknown}; known: {sorted(allowed)}")
