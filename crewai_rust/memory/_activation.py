"""``patch(memory={...})``: route CrewAI's default memory storage to RustMemoryStorage.

Registers a factory through CrewAI's official seam
``crewai.memory.storage.factory.set_memory_storage_factory``. CrewAI builds a
new ``Memory`` several times per kickoff, so the factory keeps ONE open store
per directory (or PostgreSQL URL) per process and hands it back every time.
Options: ``metric`` ("l2" | "cosine"), ``use_rust`` (bool | None), ``vector_dim``, ``shadow``,
``snapshot``, ``snapshot_dir``, ``snapshot_after`` (the vector snapshot, ``_snapshot``).

A ``postgresql://…`` spec (``Memory(storage="postgresql://…")``) opens the
PostgreSQL store; ``CREWAI_RUST_MEMORY_URL`` sends CrewAI's default memory
(spec ``"lancedb"``) there instead of the local directory.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import dataclasses

from .._env import env_str
from .._settings import resolve_settings, setting
from .._patcher import Patcher
from .._selection import implementation_name, use_rust

logger = logging.getLogger("crewai_rust.memory")

_FACTORY_SETTER = "crewai.memory.storage.factory:set_memory_storage_factory"
_FACTORY_GLOBAL = "crewai.memory.storage.factory:_factory"
#: Specs CrewAI resolves itself that we do not serve.
_FOREIGN_SPECS = frozenset({"qdrant-edge"})


@dataclasses.dataclass(frozen=True)
class MemorySettings:
    """What ``patch(memory=...)`` configures: the factory's store arguments, and the recall seam."""

    metric: str = setting("l2")
    use_rust: bool | None = setting(None)
    vector_dim: int | None = setting(None)
    shadow: bool | None = setting(None)
    snapshot: bool | None = setting(None)  # None: CREWAI_RUST_MEMORY_SNAPSHOT, read by the store
    snapshot_dir: str | None = setting(None)
    snapshot_after: int | None = setting(None)
    batch_recall: bool = setting(True, kind="flag")

    def store_options(self) -> dict[str, Any]:
        """The :class:`RustMemoryStorage` arguments every store the factory opens gets."""
        options = dataclasses.asdict(self)
        del options["batch_recall"]
        return options
#: A PostgreSQL URL for CrewAI's default memory (``?namespace=…`` picks the schema).
URL_ENV = "CREWAI_RUST_MEMORY_URL"

_lock = threading.Lock()
_stores: dict[str, Any] = {}


def _target_for(spec: str) -> Path | str | None:
    """The directory or PostgreSQL URL a spec names; None declines it."""
    from .._postgres import is_postgres_url
    from ._storage import default_memory_dir

    if spec == "lancedb":
        url = env_str(URL_ENV)
        return url if url else default_memory_dir()
    if is_postgres_url(spec):
        return spec.strip()
    if spec in _FOREIGN_SPECS or not spec:
        return None
    return Path(spec)


def _key(target: Path | str) -> str:
    if isinstance(target, str):
        from .._postgres import redact

        return redact(target)  # the key is shown by open_stores(): no password in it
    return str(target.expanduser().resolve())


def make_factory(options: dict[str, Any]) -> Any:
    """The factory CrewAI calls with its storage spec; None declines the spec."""

    def factory(spec: str) -> Any:
        target = _target_for(str(spec))
        if target is None:
            return None
        from ._storage import RustMemoryStorage

        key = _key(target)
        with _lock:
            store = _stores.get(key)
            if store is None or store.closed:
                store = RustMemoryStorage(target, **options)
                store._shared = True  # a Memory.close() must not close it under other Memory objects
                _stores[key] = store
                logger.debug("crewai_rust memory: opened %r for spec %r", store, spec)
        return store

    return factory


def activate(patcher: Patcher, options: dict[str, Any]) -> str:
    """Register the factory; returns which search kernel the stores will use."""
    settings = resolve_settings(MemorySettings, "memory", options)
    rust = use_rust(settings.use_rust)
    if not patcher.use_setter(_FACTORY_SETTER, _FACTORY_GLOBAL, make_factory(settings.store_options())):
        raise RuntimeError("crewai.memory.storage.factory.set_memory_storage_factory is not available")
    if settings.batch_recall:
        from ._recall import patch_recall

        patch_recall(patcher)
    return implementation_name(rust)


def open_stores() -> dict[str, Any]:
    """Directory (or redacted URL) -> store opened by the factory in this process (for tests and ``status``)."""
    with _lock:
        return dict(_stores)


def deactivate() -> None:
    """Close every store the factory opened."""
    with _lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store._close_now()
