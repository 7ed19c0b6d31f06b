"""Crew factories named by import path: how a worker process gets a crew it can run.

A ``Crew`` does not pickle (locks, clients, the memory save pool), so a worker
builds its own from ``"package.module:Name"``: a ``@CrewBase`` class (``Name().crew()``),
any class with a ``crew()`` method, or a zero-argument function returning a ``Crew``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def check_factory_path(path: Any) -> str:
    """``path`` when it looks like ``"module:attribute"``; a clear error otherwise."""
    if not isinstance(path, str):
        raise TypeError(f"crew_factory must be an import path string 'package.module:Name', got {type(path).__name__}")
    module, sep, attr = path.partition(":")
    if not sep or not module.strip() or not attr.strip():
        raise ValueError(f"crew_factory must look like 'package.module:Name', got {path!r}")
    return path


def resolve_factory(path: str) -> Callable[[], Any]:
    """The zero-argument callable that builds a fresh ``Crew`` for ``path``."""
    module_name, _, attr = check_factory_path(path).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"crew_factory {path!r}: cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AttributeError(f"crew_factory {path!r}: {module_name!r} has no attribute {attr!r}") from None
    if isinstance(target, type):
        if not callable(getattr(target, "crew", None)):
            raise TypeError(f"crew_factory {path!r} is a class without a crew() method (expected a @CrewBase class)")
        cls = target
        return lambda: cls().crew()
    if not callable(target):
        raise TypeError(f"crew_factory {path!r} is not callable")
    return target


def build_crew(path: str) -> Any:
    """A new ``Crew`` from the factory at ``path``, checked to be one."""
    from crewai import Crew

    crew = resolve_factory(path)()
    if not isinstance(crew, Crew):
        raise TypeError(f"crew_factory {path!r} returned {type(crew).__name__}, not a crewai Crew")
    return crew
