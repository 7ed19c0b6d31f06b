"""Flow state: the ``StateWithId`` class CrewAI builds per Flow instance, built once per state type.

``Flow._create_initial_state`` defines ``class StateWithId(FlowState, T)`` inside
the method, so every Flow instance (every agent executor, every memory recall
and save) pays for a new pydantic model class. The class only depends on ``T``;
building it once per ``T`` gives instances of the same shape and values.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from uuid import uuid4

#: Bound on cached classes, so state types built on the fly cannot grow it forever.
MAX_CACHED = 256

_lock = threading.Lock()
_classes: OrderedDict[type, type] = OrderedDict()
QUALNAME = "Flow._create_initial_state.<locals>.StateWithId"


def state_class(flow_state: type, state_type: type) -> type:
    """The ``StateWithId`` subclass of ``(FlowState, state_type)``, built on first use."""
    with _lock:
        cls = _classes.get(state_type)
        if cls is not None:
            _classes.move_to_end(state_type)
            return cls
    cls = type("StateWithId", (flow_state, state_type), {"__module__": "crewai.flow.runtime", "__qualname__": QUALNAME})
    with _lock:
        cls = _classes.setdefault(state_type, cls)
        while len(_classes) > MAX_CACHED:
            _classes.popitem(last=False)
    return cls


def cached_classes() -> int:
    """How many state classes are cached (for tests)."""
    with _lock:
        return len(_classes)


def clear() -> None:
    with _lock:
        _classes.clear()


def make_create_initial_state(flow_cls: type, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A ``Flow._create_initial_state`` that reuses state classes; everything else is CrewAI's own."""
    from crewai.flow.runtime import FlowState
    from pydantic import BaseModel

    default_extension = flow_cls._create_default_extension_state

    def _create_initial_state(self: Any) -> Any:
        # Only the default (pure, returns None) extension hook lets us decide
        # without calling it twice; any override keeps CrewAI's path.
        if type(self)._create_default_extension_state is not default_extension:
            return original(self)
        init_state = self.initial_state
        if init_state is None:
            if not hasattr(self, "_initial_state_t"):
                return original(self)
            state_type = self._initial_state_t
            if (
                isinstance(state_type, type)
                and issubclass(state_type, BaseModel)
                and not issubclass(state_type, FlowState)
            ):
                instance = state_class(FlowState, state_type)()
                if not getattr(instance, "id", None):
                    object.__setattr__(instance, "id", str(uuid4()))
                return instance
            return original(self)
        if isinstance(init_state, BaseModel) and not isinstance(init_state, type) and not hasattr(init_state, "id"):
            state_dict = init_state.model_dump()
            state_dict["id"] = str(uuid4())
            return state_class(FlowState, type(init_state))(**state_dict)
        return original(self)

    _create_initial_state.__doc__ = original.__doc__
    _create_initial_state.__wrapped__ = original  # type: ignore[attr-defined]
    return _create_initial_state


__all__ = ["cached_classes", "clear", "make_create_initial_state", "state_class"]
