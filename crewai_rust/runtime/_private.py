"""Private attributes of CrewAI's Flow models read without pydantic's ``__getattr__`` detour.

A pydantic model keeps private attributes (``_definition``, ``_state``, ...) in
``__pydantic_private__``; every read first misses the instance and the whole
class MRO, then runs ``BaseModel.__getattr__`` in Python, which asks the
``ModelPrivateAttr`` for ``__get__`` through its own ``__getattr__``: ~1.3 µs a
read, ~1,700 reads per kickoff of a one-agent crew with memory (the flow engine,
the agent executor and memory's recall/encoding flows are all Flows).

RUNTIME puts a non-data descriptor on the class for each plain private
attribute (one whose default is not itself a descriptor), so a read costs one
dict lookup. Lookup order is unchanged: a value in the instance ``__dict__``
still wins (a non-data descriptor comes after it, as the failed lookup did), a
subclass that redeclares the attribute gets pydantic's own path, an unset one
still raises pydantic's ``AttributeError``, and the class attribute is the
``ModelPrivateAttr`` pydantic's metaclass returned. Writes are untouched
(pydantic's ``__setattr__`` never looks at class attributes for private names).
"""

from __future__ import annotations

from typing import Any


class PrivateSlot:
    """``obj.<name>`` for one pydantic private attribute of one class (and its subclasses that keep it)."""

    __slots__ = ("attribute", "name")

    def __init__(self, name: str, attribute: Any) -> None:
        self.name = name
        self.attribute = attribute

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return owner.__private_attributes__[self.name]  # type: ignore[union-attr]  # what ModelMetaclass.__getattr__ returns
        if type(obj).__private_attributes__.get(self.name) is self.attribute:
            private = obj.__pydantic_private__
            if private is not None and self.name in private:
                return private[self.name]
        # unset, or redeclared by a subclass: pydantic's ``__getattr__`` answers (and raises) as in stock
        raise AttributeError(self.name)


def install(cls: type) -> list[str]:
    """Put a :class:`PrivateSlot` on ``cls`` for each plain private attribute no class in its MRO defines.

    Skipped: a default that is a descriptor (pydantic calls its ``__get__``) and a
    name some class in the MRO already holds (a real attribute stock finds before
    ``__getattr__``, or a slot installed on a base). Returns the names installed.
    """
    names = []
    for name, attribute in getattr(cls, "__private_attributes__", {}).items():
        if hasattr(attribute, "__get__") or any(name in vars(k) for k in cls.__mro__):
            continue
        setattr(cls, name, PrivateSlot(name, attribute))
        names.append(name)
    return names


def uninstall(cls: type, names: list[str]) -> None:
    """Remove the slots :func:`install` put on ``cls``."""
    for name in names:
        if isinstance(vars(cls).get(name), PrivateSlot):
            delattr(cls, name)


__all__ = ["PrivateSlot", "install", "uninstall"]
