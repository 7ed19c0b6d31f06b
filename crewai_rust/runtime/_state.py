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
_classes: OrderedDict[tuple[type, str], type] = OrderedDict()
QUALNAME = "Flow._create_initial_state.<locals>.StateWithId"


DEFINITION_QUALNAME = "_build_definition_state_model.<locals>.StateWithId"


def state_class(flow_state: type, state_type: type, qualname: str = QUALNAME) -> type:
    """The ``StateWithId`` subclass of ``(FlowState, state_type)``, built on first use."""
    key = (state_type, qualname)
    with _lock:
        cls = _classes.get(key)
        if cls is not None:
            _classes.move_to_end(key)
            return cls
    cls = type("StateWithId", (flow_state, state_type), {"__module__": "crewai.flow.runtime", "__qualname__": qualname})
    with _lock:
        cls = _classes.setdefault(key, cls)
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


def make_create_initial_state(flow_cls: Any, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A ``Flow._create_initial_state`` that reuses state classes; everything else is CrewAI's own."""
    from crewai.flow.runtime import FlowState
    from pydantic import BaseModel

    pure_extensions = {flow_cls._create_default_extension_state}
    try:
        from crewai.flow.conversational_mixin import _ConversationalMixin

        pure_extensions.add(_ConversationalMixin._create_default_extension_state)
    except (ImportError, AttributeError):
        pass

    def _create_initial_state(self: Any) -> Any:
        # CrewAI's own extension hooks only read configuration, so asking one
        # here and again in CrewAI's path is harmless; a user override keeps
        # CrewAI's path untouched.
        if type(self)._create_default_extension_state not in pure_extensions:
            return original(self)
        init_state = self.initial_state
        if init_state is None:
            extension_state = self._create_default_extension_state()
            if extension_state is not None:
                return extension_state
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


def make_build_definition_state_model(runtime: Any) -> Callable[..., Any]:
    """CrewAI's ``_build_definition_state_model`` (typed ``Flow[T]`` states), with the class cached."""
    from pydantic import BaseModel, ValidationError

    FlowState = runtime.FlowState
    logger = runtime.logger

    def _build_definition_state_model(state_definition: Any, compose: Callable[[type], type] | None = None) -> Any:
        kwargs = dict(state_definition.default or {})
        model_class: Any = None
        state_ref = getattr(state_definition, "ref", None)
        if state_ref:
            try:
                resolved: Any = runtime.resolve_ref(state_ref, field="state")
            except Exception:
                logger.warning("Could not import state ref %r", state_ref, exc_info=True)
            else:
                if isinstance(resolved, type) and issubclass(resolved, BaseModel):
                    model_class = resolved
                else:
                    logger.warning("State ref %r is not a pydantic model", state_ref)
        json_schema = getattr(state_definition, "json_schema", None)
        if model_class is None and json_schema:
            from crewai.utilities.pydantic_schema_utils import create_model_from_schema

            try:
                model_class = create_model_from_schema(json_schema)
            except Exception:
                logger.warning("Could not build a state model from the declared json_schema", exc_info=True)
        if model_class is None:
            return None
        if compose is not None:
            model_class = compose(model_class)
        if not issubclass(model_class, FlowState):
            model_class = state_class(FlowState, model_class, DEFINITION_QUALNAME)
        try:
            return model_class(**kwargs)
        except ValidationError as e:
            if any(error.get("type") != "missing" for error in e.errors()):
                raise
            return model_class.model_construct(**kwargs)

    return _build_definition_state_model




def make_copy_and_serialize_state(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``Flow._copy_and_serialize_state`` without the deep copy CrewAI makes only to dump it.

    Stock deep-copies a model state and then dumps the copy with
    ``model_dump(mode="json")``, whose output shares nothing with the model.
    Dumping the live state gives the same dict without copying every message
    and list first (the copy was 95% of the cost for an agent executor's state,
    emitted with each FlowFinishedEvent). A dict state, or a model that JSON
    mode cannot dump, keeps CrewAI's path.
    """
    from pydantic import BaseModel

    def _copy_and_serialize_state(self: Any) -> Any:
        state = self._state
        if isinstance(state, BaseModel):
            try:
                return state.model_dump(mode="json")
            except Exception:  # noqa: BLE001 - CrewAI's own path decides what happens then
                return original(self)
        return original(self)

    _copy_and_serialize_state.__doc__ = original.__doc__
    _copy_and_serialize_state.__wrapped__ = original  # type: ignore[attr-defined]
    return _copy_and_serialize_state


__all__ = ["cached_classes", "clear", "make_build_definition_state_model", "make_copy_and_serialize_state",
           "make_create_initial_state", "state_class"]
