"""pytest plugin: run CrewAI's own tests with ``crewai_rust.patch()`` active.

Loaded with ``-p crewai_rust_suite_patch``. The patch goes in at configure time,
before CrewAI's test modules are imported (as ``import crewai_rust.shim`` at the
top of a user's program would). Some CrewAI tests reset global state the patch
lives in (``set_lock_backend(None)``, ``set_memory_storage_factory(None)``,
``clear_all_tool_call_hooks()``, ...). After every test the plugin compares each
patched target with what ``patch()`` installed; if one changed, it unpatches and
patches again, so later tests still run patched. Every re-install is counted and
written to ``$CREWAI_SUITE_PATCH_LOG`` (one JSON line per test that caused one, and one
per install with what ``status()`` reported, so the runner can check the patch was live).
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import pytest

#: Official setters the components register through, and the global each one writes.
SETTER_GLOBALS = {
    "crewai.memory.storage.factory:set_memory_storage_factory": "crewai.memory.storage.factory:_factory",
    "crewai.flow.persistence.factory:set_flow_persistence_factory": "crewai.flow.persistence.factory:_factory",
    "crewai_core.lock_store:set_lock_backend": "crewai_core.lock_store:_backend",
    "crewai.knowledge.storage.factory:set_knowledge_storage_factory": "crewai.knowledge.storage.factory:_factory",
}
HOOK_GETTERS = {
    "crewai.hooks:register_before_tool_call_hook": "get_before_tool_call_hooks",
    "crewai.hooks:register_after_tool_call_hook": "get_after_tool_call_hooks",
    "crewai.hooks:register_before_llm_call_hook": "get_before_llm_call_hooks",
    "crewai.hooks:register_after_llm_call_hook": "get_after_llm_call_hooks",
}


def _lookup(dotted: str) -> Any:
    module_name, _, path = dotted.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, path.split(".")):
        obj = getattr(obj, part)
    return obj


def _probe(label: str) -> Any:
    """What ``label`` (a patched target from ``status()``) holds now, comparable by identity."""
    if label in SETTER_GLOBALS:
        return ("global", id(_lookup(SETTER_GLOBALS[label])))
    if label in HOOK_GETTERS:
        hooks = importlib.import_module("crewai.hooks")
        return ("hooks", tuple(sorted(id(h) for h in getattr(hooks, HOOK_GETTERS[label])())))
    module_name, _, path = label.partition(":")
    owner_path, _, attr = path.rpartition(".")
    owner = _lookup(f"{module_name}:{owner_path}")
    # Class attributes are compared raw (a function, not a fresh bound method).
    value = vars(owner).get(attr, getattr(owner, attr, None)) if isinstance(owner, type) else getattr(owner, attr, None)
    return ("attr", id(value))


class PatchKeeper:
    def __init__(self) -> None:
        self.snapshot: dict[str, Any] = {}
        self.reinstalls = 0
        self.log_path = os.environ.get("CREWAI_SUITE_PATCH_LOG")

    def install(self) -> None:
        import crewai_rust

        state = crewai_rust.patch()
        broken = {n: c["error"] for n, c in state["components"].items() if c["error"]}
        if broken:
            raise pytest.UsageError(f"crewai_rust.patch() failed: {broken}")
        self._write({"installed": {n: c["implementation"] for n, c in state["components"].items() if c["enabled"]},
                     "speedups": state["speedups_enabled"], "pid": os.getpid()})
        self.snapshot = {}
        for component in state["components"].values():
            for label in component["patched"]:
                try:
                    self.snapshot[label] = _probe(label)
                except Exception:  # noqa: S112 - a target we cannot read back is not checked
                    continue

    def changed(self) -> list[str]:
        out = []
        for label, before in self.snapshot.items():
            try:
                now = _probe(label)
            except Exception:
                now = None
            if now != before:
                out.append(label)
        return out

    def check(self, nodeid: str) -> None:
        changed = self.changed()
        if not changed:
            return
        import crewai_rust

        crewai_rust.unpatch()
        self.install()
        self.reinstalls += 1
        self._write({"test": nodeid, "changed": changed})

    def _write(self, record: dict[str, Any]) -> None:
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")


_keeper = PatchKeeper()


def pytest_configure(config: pytest.Config) -> None:
    _keeper.install()
    config.stash[_KEY] = _keeper


_KEY = pytest.StashKey[PatchKeeper]()


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    yield  # after every fixture of the test is finalised (monkeypatch undone)
    _keeper.check(item.nodeid)


def pytest_report_header(config: pytest.Config) -> str:
    import crewai_rust

    state = crewai_rust.status()
    parts = [f"{n}={c['implementation']}" for n, c in state["components"].items() if c["enabled"]]
    return f"crewai_rust patched: speedups={state['speedups_enabled']} " + " ".join(parts)
