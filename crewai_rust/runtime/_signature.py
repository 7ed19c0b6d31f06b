"""``FlowMethod`` signatures computed once per method function, not once per bound instance.

Every attribute access to a flow method on a Flow instance (``flow.some_step``)
goes through ``FlowMethod.__get__``, which builds a new bound wrapper, and its
``__init__`` asks ``inspect.signature`` and ``inspect.iscoroutinefunction``
about the same class-level function again. Both answers depend only on that
function, so they are kept per function. CrewAI's ``flow_wrappers`` module
reaches ``inspect`` through its module global; RUNTIME points that global at
:class:`FlowInspect`, the real module except for those two names. A kept answer
is used only while the function still has the code, defaults, annotations,
``__signature__`` and ``__wrapped__`` it had when it was asked; anything that
is not a plain function, or any extra argument, goes to ``inspect`` itself.
"""

from __future__ import annotations

import inspect
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

_MISSING = object()


def _fingerprint(func: types.FunctionType) -> tuple[Any, ...]:
    """What ``inspect.signature`` / ``iscoroutinefunction`` read from a function, by identity."""
    own = func.__dict__
    return (func.__code__, func.__defaults__, func.__kwdefaults__, func.__annotations__,
            own.get("__signature__", _MISSING), own.get("__wrapped__", _MISSING),
            own.get("_is_coroutine_marker", _MISSING))


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return all(x is y for x, y in zip(a, b))


class FlowInspect(types.ModuleType):
    """The ``inspect`` module as ``crewai.flow.flow_wrappers`` sees it: real, with two answers kept."""

    def __init__(self) -> None:
        super().__init__("inspect", inspect.__doc__)
        self._lock = threading.Lock()
        self._signatures: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()
        self._coroutine: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()
        #: how many signatures came from ``inspect`` itself (for tests)
        self.computed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)

    def signature(self, obj: Any, *args: Any, **kwargs: Any) -> inspect.Signature:
        if args or kwargs or type(obj) is not types.FunctionType:
            return inspect.signature(obj, *args, **kwargs)
        return self._kept(self._signatures, obj, self._asked_signature)

    def iscoroutinefunction(self, obj: Any) -> bool:
        if type(obj) is not types.FunctionType:
            return inspect.iscoroutinefunction(obj)
        return self._kept(self._coroutine, obj, inspect.iscoroutinefunction)

    def _kept(self, table: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]],
              func: types.FunctionType, ask: Callable[[Any], Any]) -> Any:
        """``ask(func)``, answered from ``table`` while ``func`` still looks as it did when it was asked."""
        print_ = _fingerprint(func)
        with self._lock:
            kept = table.get(func)
        if kept is not None and _same(kept[0], print_):
            return kept[1]
        answer = ask(func)
        with self._lock:
            table[func] = (print_, answer)
        return answer

    def _asked_signature(self, func: types.FunctionType) -> inspect.Signature:
        signature = inspect.signature(func)
        with self._lock:
            self.computed += 1
        return signature


__all__ = ["FlowInspect"]
