"""Typed settings objects: one frozen dataclass per component, resolved in one way.

Why: every component took ``patch(<component>={...})`` options over environment
variables over defaults, each with its own loop of hand-written checks. A
dataclass whose fields name their environment variable keeps the three sources,
the unknown-option check and the types in one place, and gives type checkers
the real attribute names (``settings.max_calls``, not ``settings["max_calls"]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from ._env import check_options, env_choice, env_flag, env_float, env_int, env_str

Kind = Literal["int", "float", "flag", "str", "choice", "value"]
_META_KEY = "crewai_rust_setting"
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class _Source:
    env: str | None
    kind: Kind
    minimum: float
    choices: tuple[str, ...] = ()


def setting(
    default: Any, env: str | None = None, *, kind: Kind = "value", minimum: float = 1, choices: tuple[str, ...] = ()
) -> Any:
    """A settings field: its default, the environment variable read when the option is absent,
    and how that variable is parsed (``int``/``float`` at least ``minimum``, ``flag`` 1/0,
    ``str`` stripped, ``choice`` upper-cased and one of ``choices``)."""
    return dataclasses.field(default=default, metadata={_META_KEY: _Source(env, kind, minimum, choices)})


def _from_env(source: _Source, default: Any) -> Any:
    if source.env is None:
        return default
    if source.kind == "int":
        return env_int(source.env, default, minimum=int(source.minimum))
    if source.kind == "float":
        return env_float(source.env, default, minimum=source.minimum)
    if source.kind == "flag":
        return env_flag(source.env, default)
    if source.kind == "str":
        return env_str(source.env, default)
    if source.kind == "choice":
        return env_choice(source.env, default, source.choices)
    raise TypeError(f"setting {source.env}: kind 'value' cannot be read from the environment")


def resolve_settings(cls: type[T], component: str, options: Mapping[str, Any]) -> T:
    """``cls`` filled from ``options`` over the environment over the defaults.

    An unknown option name raises (a typo is never ignored); an option given in
    ``options`` is taken as given (flags as ``bool``), the consumer validates it as
    it validates a constructor argument.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    check_options(component, options, (f.name for f in fields))
    values: dict[str, Any] = {}
    for field in fields:
        source: _Source = field.metadata.get(_META_KEY, _Source(None, "value", 1))
        if field.name in options:
            value = options[field.name]
            values[field.name] = bool(value) if source.kind == "flag" and value is not None else value
        else:
            values[field.name] = _from_env(source, field.default)
    return cls(**values)
