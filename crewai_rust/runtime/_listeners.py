"""Which listeners a finished Flow method triggers, from an index built once per flow definition.

``Flow._find_triggered_methods`` walks every listening method after each step,
re-deriving its condition shape and reading three private attributes through
pydantic's slow ``__getattr__`` per listener. The walk, its order and its side
effects (every listener's pending set records the trigger, exactly as CrewAI's
``_condition_met`` does) stay; the per-listener facts come from an index of the
definition and the private attributes are read once per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: Bound on indexed definitions (a flow given a ``name`` copies its definition per instance).
MAX_INDEXED = 1024

_lock = threading.Lock()
_index: dict[int, tuple[Any, tuple[tuple[Any, bool, bool, Any, Any], ...]]] = {}


def listener_index(definition: Any, runtime: Any) -> tuple[tuple[Any, bool, bool, Any, Any], ...]:
    """(name, is_router, is multi-event or, pending key, condition) per listener, in CrewAI's order."""
    entry = _index.get(id(definition))
    if entry is not None and entry[0] is definition:
        return entry[1]
    rows = []
    for method_name, method_definition in definition.methods.items():
        condition = method_definition.listen
        if condition is None:
            continue
        name = runtime.FlowMethodName(method_name)
        is_router = bool(method_definition.router)
        rows.append((name, is_router, runtime._is_multi_event_or(condition) and not is_router,
                     runtime.PendingListenerKey(str(name)), condition))
    built = tuple(rows)
    with _lock:
        if len(_index) >= MAX_INDEXED:
            _index.clear()
        _index[id(definition)] = (definition, built)
    return built


def clear() -> None:
    with _lock:
        _index.clear()


def make_find_triggered_methods(flow_cls: Any, original: Callable[..., Any]) -> Callable[..., Any]:
    """A ``Flow._find_triggered_methods`` over the index; subclasses that override its parts keep CrewAI's."""
    from crewai.flow import runtime

    base_listener_methods = flow_cls._listener_methods
    base_condition_met = flow_cls._condition_met
    satisfied = runtime._condition_satisfied

    def _find_triggered_methods(self: Any, trigger_method: Any, router_only: bool) -> list[Any]:
        cls = type(self)
        if cls._listener_methods is not base_listener_methods or cls._condition_met is not base_condition_met:
            return original(self, trigger_method, router_only)
        private = self.__pydantic_private__
        try:
            pending = private["_pending_events"]
            fired = private["_fired_or_listeners"]
            definition = private["_definition"]
        except (KeyError, TypeError):
            return original(self, trigger_method, router_only)
        trigger = str(trigger_method)
        triggered: list[Any] = []
        for name, is_router, check_fired, key, condition in listener_index(definition, runtime):
            if router_only != is_router:
                continue
            if check_fired and name in fired:
                continue
            seen = pending.setdefault(key, set())
            seen.add(trigger)
            if not satisfied(condition, seen):
                continue
            del pending[key]
            triggered.append(name)
            if check_fired:
                fired.add(name)
        return triggered

    _find_triggered_methods.__doc__ = original.__doc__
    _find_triggered_methods.__wrapped__ = original  # type: ignore[attr-defined]
    return _find_triggered_methods
