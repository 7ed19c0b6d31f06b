"""AgentMessage: the public face that hands out the Rust or the Python twin.

It checks nothing itself: each twin holds its own single copy of the checks
(``_message_schema.py`` for the Python twin, ``rust/src/message/checks.rs`` for the Rust one).

``AgentMessage(...)`` returns an instance of the chosen twin (both are registered as
virtual subclasses, so ``isinstance(m, AgentMessage)`` holds); ``m.implementation``
says which. Both write byte-identical JSON and compare equal when their JSON is equal.
"""

from __future__ import annotations

import sys
from abc import ABCMeta
from datetime import datetime
from typing import Any

from .._selection import speedups_module, twin, use_rust as resolve_use_rust
from . import _message_py


def _rust_class() -> Any:
    """The compiled twin's class, registered as a virtual subclass of AgentMessage."""
    rust_class = twin(_message_py.AgentMessage, True)
    if rust_class not in _registered:
        AgentMessage.register(rust_class)
        _registered.add(rust_class)
    return rust_class


def _twin(use_rust: bool | None) -> Any:
    """The class implementing the chosen twin."""
    return _rust_class() if resolve_use_rust(use_rust) else _message_py.AgentMessage


class AgentMessage(metaclass=ABCMeta):
    """A typed message of an agent run (id, role, content, sender, task id, tool calls, ...).

    Immutable; ``to_json``/``from_json``, ``to_dict``/``from_dict``, ``to_crewai``/
    ``from_crewai`` (the ``LLMMessage`` dicts of ``TaskOutput.messages``). Malformed input
    raises :class:`MessageFormatError` with ``.field`` naming the culprit.
    """

    def __new__(  # type: ignore[misc]
        cls,
        role: str,
        content: str | list[dict[str, Any]] | None = None,
        *,
        id: str | None = None,
        sender: str | None = None,
        task_id: str | None = None,
        name: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
        use_rust: bool | None = None,
    ) -> Any:
        return _twin(use_rust)(
            role,
            content,
            id=id,
            sender=sender,
            task_id=task_id,
            name=name,
            tool_calls=tool_calls,
            tool_call_id=tool_call_id,
            timestamp=timestamp,
            metadata=metadata,
        )

    @staticmethod
    def from_json(text: str | bytes, *, use_rust: bool | None = None) -> Any:
        return _twin(use_rust).from_json(text)

    @staticmethod
    def from_dict(doc: dict[str, Any], *, use_rust: bool | None = None) -> Any:
        return _twin(use_rust).from_dict(doc)

    @staticmethod
    def from_crewai(
        message: dict[str, Any],
        *,
        sender: str | None = None,
        task_id: str | None = None,
        id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
        use_rust: bool | None = None,
    ) -> Any:
        """From a CrewAI ``LLMMessage`` dict; unknown keys (``files``, ``raw_tool_call_parts``)
        travel in ``metadata["crewai_extra"]`` and must be JSON values."""
        return _twin(use_rust).from_crewai(
            message, sender=sender, task_id=task_id, id=id, timestamp=timestamp, metadata=metadata
        )

    @staticmethod
    def from_task_output(task_output: Any, *, task_id: str | None = None, use_rust: bool | None = None) -> list[Any]:
        """The messages of a CrewAI ``TaskOutput``, sent by its agent."""
        return [
            AgentMessage.from_crewai(message, sender=task_output.agent, task_id=task_id, use_rust=use_rust)
            for message in task_output.messages
        ]


_registered: set[Any] = set()
AgentMessage.register(_message_py.AgentMessage)


def dumps_many(messages: list[Any]) -> str:
    """One JSON array of messages, the same bytes whichever twins they are."""
    messages = list(messages)
    module = sys.modules.get("crewai_rust._speedups")  # Rust messages exist only once it is loaded
    rust_class = getattr(module, "AgentMessage", None)
    if messages and rust_class is not None and all(type(m) is rust_class for m in messages):
        return str(module.dumps_many(messages))  # type: ignore[union-attr]
    if all(type(m) is _message_py.AgentMessage for m in messages):
        return _message_py.dumps_many(messages)
    for index, message in enumerate(messages):
        if not isinstance(message, AgentMessage):
            raise TypeError(f"dumps_many: item [{index}] is {type(message).__qualname__}, not an AgentMessage")
    return "[" + ",".join(message.to_json() for message in messages) + "]"


def loads_many(text: str | bytes, *, use_rust: bool | None = None) -> list[Any]:
    """A JSON array of message documents; errors name the index and the field."""
    if resolve_use_rust(use_rust):
        _rust_class()
        return list(speedups_module().loads_many(text))  # type: ignore[union-attr]
    return _message_py.loads_many(text)


__all__ = ["AgentMessage", "dumps_many", "loads_many"]
