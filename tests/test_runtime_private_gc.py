"""RUNTIME's private-attribute slots on CrewAI's Flows and its heap freeze: stock behaviour, less work."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, PrivateAttr

import crewai_rust

sys.path.insert(0, str(Path(__file__).parent))
import _runtime_scenarios as scenarios


def _flow_classes() -> list[type]:
    from crewai.agents.agent_executor import AgentExecutor
    from crewai.flow.runtime import Flow
    from crewai.memory.encoding_flow import EncodingFlow
    from crewai.memory.recall_flow import RecallFlow

    return [Flow, AgentExecutor, RecallFlow, EncodingFlow]


def _counting_getattr(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count reads that reach pydantic's ``BaseModel.__getattr__`` (the slow path for private attributes)."""
    calls: list[str] = []
    original = BaseModel.__getattr__

    def counting(self: Any, item: str) -> Any:
        calls.append(item)
        return original(self, item)

    monkeypatch.setattr(BaseModel, "__getattr__", counting)
    return calls


def test_private_reads_skip_pydantic_getattr(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = scenarios.RouterFlow()
    calls = _counting_getattr(monkeypatch)
    stock = (flow._definition, flow._method_outputs, flow.state)
    assert "_definition" in calls  # stock: every private read goes through __getattr__
    crewai_rust.patch("runtime")
    calls.clear()
    patched = (flow._definition, flow._method_outputs, flow.state)
    assert patched[0] is stock[0] and patched[1] is stock[1] and patched[2] is stock[2]
    assert "_definition" not in calls and "_method_outputs" not in calls and "_state" not in calls


def test_private_slots_keep_pydantic_semantics() -> None:
    from crewai.flow.runtime import Flow

    stock_class_attr = Flow._definition
    crewai_rust.patch("runtime")
    assert Flow._definition is stock_class_attr  # class access: the ModelPrivateAttr, as ModelMetaclass returns it

    class Redeclared(scenarios.RouterFlow):  # type: ignore[misc]
        _method_outputs: list[Any] = PrivateAttr(default_factory=lambda: ["mine"])

    flow = Redeclared()
    assert flow._method_outputs == ["mine"]  # a subclass that redeclares keeps pydantic's own path
    del flow.__pydantic_private__["_cel_now"]
    with pytest.raises(AttributeError, match="_cel_now"):
        _ = flow._cel_now  # unset: pydantic's error, as in stock
    object.__setattr__(flow, "_flow_match_id", "in-dict")
    assert flow._flow_match_id == "in-dict"  # the instance __dict__ still wins, as it did over __getattr__
    flow._is_execution_resuming = True  # writes go to pydantic's private storage as before
    assert flow.__pydantic_private__["_is_execution_resuming"] is True and flow._is_execution_resuming is True


def test_private_slots_are_removed_by_unpatch() -> None:
    from crewai_rust.runtime._private import PrivateSlot

    classes = _flow_classes()
    before = [dict(vars(c)) for c in classes]
    state = crewai_rust.patch("runtime")["components"]["RUNTIME"]
    assert sum(isinstance(v, PrivateSlot) for c in classes for v in vars(c).values()) > 20
    assert sum("<private attributes>" in p for p in state["patched"]) == len(classes)
    crewai_rust.unpatch()
    assert [dict(vars(c)) for c in classes] == before
    crewai_rust.patch("runtime", runtime={"private_attrs": False})
    assert not any(isinstance(v, PrivateSlot) for c in classes for v in vars(c).values())


def _in_old_generation(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects(generation=2))


def test_patch_freezes_the_heap_and_unpatch_gives_it_back() -> None:
    from crewai import Crew

    start = gc.get_freeze_count()
    if start:  # CPython 3.12 starts with objects frozen: unfreeze() could not undo only ours
        state = crewai_rust.patch("runtime")["components"]["RUNTIME"]
        assert "gc.freeze" not in state["patched"]
        assert any(k["target"] == "gc.freeze" and "already frozen" in k["reason"] for k in state["kept"])
        crewai_rust.unpatch()
        assert gc.get_freeze_count() == start
        return
    assert _in_old_generation(Crew)  # stock: every full collection walks CrewAI's classes
    state = crewai_rust.patch("runtime")["components"]["RUNTIME"]
    assert "gc.freeze" in state["patched"]
    assert gc.get_freeze_count() > 10_000
    assert not _in_old_generation(Crew)  # frozen: full collections skip it
    crewai_rust.unpatch()
    assert gc.get_freeze_count() == 0 and _in_old_generation(Crew)
    crewai_rust.patch("runtime", runtime={"gc_freeze": False})
    assert gc.get_freeze_count() == 0


def test_an_application_freeze_or_disabled_collector_is_left_alone() -> None:
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        state = crewai_rust.patch("runtime")["components"]["RUNTIME"]
        assert "gc.freeze" not in state["patched"]
        assert any(k["target"] == "gc.freeze" and "already frozen" in k["reason"] for k in state["kept"])
        crewai_rust.unpatch()
        assert gc.get_freeze_count() >= theirs * 0.9  # still frozen: not ours to undo
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        state = crewai_rust.patch("runtime")["components"]["RUNTIME"]
        assert any(k["target"] == "gc.freeze" and "disabled" in k["reason"] for k in state["kept"])
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
