"""patch()/unpatch() over every component: CrewAI is put back exactly as it was."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import crewai_rust


def _snapshot() -> dict[tuple[str, str], Any]:
    """Every attribute of every loaded crewai module and of the classes defined in them.

    Containers held in module globals (hook registries, factories) are copied
    shallowly so that a registration left behind shows up as a difference.
    """
    snap: dict[tuple[str, str], Any] = {}
    for name, module in list(sys.modules.items()):
        if not (name == "crewai" or name.startswith(("crewai.", "crewai_core"))) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            snap[(name, attr)] = value
            if isinstance(value, (list, dict, set)):
                snap[(name, attr + "[contents]")] = type(value)(value)
            if isinstance(value, type) and value.__module__ == name:
                for cls_attr, cls_value in list(vars(value).items()):
                    snap[(f"{name}:{attr}", cls_attr)] = cls_value
    return snap


def _differences(before: dict[tuple[str, str], Any], after: dict[tuple[str, str], Any]) -> list[str]:
    diffs = []
    for key, value in before.items():
        if key not in after:
            diffs.append(f"{key} removed")
        elif key[1].endswith("[contents]"):
            if after[key] != value:
                diffs.append(f"{key} changed")
        elif after[key] is not value:
            diffs.append(f"{key} not restored")
    diffs += [f"{key} added" for key in after.keys() - before.keys() if key[0].split(":")[0] in {k[0] for k in before}]
    return diffs


def test_patch_then_unpatch_restores_every_crewai_attribute_by_identity(use_rust: bool) -> None:
    crewai_rust.patch()  # import everything the components touch
    crewai_rust.unpatch()
    before = _snapshot()
    state = crewai_rust.patch()
    assert any(c["enabled"] for c in state["components"].values()), state
    patched_labels = [label for c in state["components"].values() for label in c["patched"]]
    assert patched_labels, "patch() changed nothing"
    assert _snapshot() != before
    crewai_rust.unpatch()
    assert _differences(before, _snapshot()) == []
    crewai_rust.unpatch()  # twice is harmless
    assert _differences(before, _snapshot()) == []


def test_patch_is_idempotent_and_reports_implementation(use_rust: bool) -> None:
    first = crewai_rust.patch()
    second = crewai_rust.patch()
    assert first["components"] == second["components"]
    expected = "rust" if use_rust else "python"
    for name, comp in first["components"].items():
        assert comp["enabled"], (name, comp)
        # RUNTIME is Python-only: it removes work, it has no kernel to twin.
        assert comp["implementation"] == ("python" if name == "RUNTIME" else expected), (name, comp)
        assert comp["missing"] == [], (name, comp["missing"])


def test_import_shim_patches(use_rust: bool) -> None:
    sys.modules.pop("crewai_rust.shim", None)
    import crewai_rust.shim  # noqa: F401

    assert all(c["enabled"] for c in crewai_rust.status()["components"].values())


def test_missing_target_is_reported_not_skipped(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Hide one CrewAI seam: the component reports it as missing and warns."""
    import crewai.memory.storage.factory as factory

    monkeypatch.delattr(factory, "set_memory_storage_factory")
    with caplog.at_level("WARNING", logger="crewai_rust"):
        state = crewai_rust.patch("memory")
    missing = state["components"]["MEMORY"]["missing"]
    assert any("set_memory_storage_factory" in m["target"] for m in missing), state["components"]["MEMORY"]
    assert any("set_memory_storage_factory" in r.getMessage() for r in caplog.records)


def test_status_lists_every_component_before_patch() -> None:
    state = crewai_rust.status()
    assert set(state["components"]) == {"MEMORY", "TOOLS", "TASKS", "DATABASE", "SERIALIZATION", "RUNTIME"}
    assert all(not c["enabled"] for c in state["components"].values())
