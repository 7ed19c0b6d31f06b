"""The pure-Python twin of AgentMessage: validated fields in slots, orjson for the bytes."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import orjson

from . import _message_schema as schema
from ._errors import JSONDecodeError, MessageFormatError
from ._json import loads


def _copy(value: Any) -> Any:
    """Deep copy of a JSON value (dicts and lists only), so callers cannot alter a message."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


class AgentMessage:
    """One message of an agent run; immutable, compared by its JSON form."""

    __slots__ = ("_content", "_id", "_metadata", "_name", "_role", "_sender", "_task_id", "_timestamp",
                 "_tool_call_id", "_tool_calls")
    implementation = "python"

    def __init__(
        self,
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
    ) -> None:
        self._set(schema.check_fields(
            str(uuid.uuid4()) if id is None else id, role, content, sender, task_id, name, tool_calls, tool_call_id,
            datetime.now(timezone.utc) if timestamp is None else timestamp, metadata,
        ))

    def _set(self, fields: schema.Checked) -> None:
        (self._id, self._role, self._content, self._sender, self._task_id, self._name, self._tool_calls,
         self._tool_call_id, self._timestamp, self._metadata) = fields

    # -- fields -------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def role(self) -> str:
        return self._role

    @property
    def content(self) -> str | list[dict[str, Any]] | None:
        return _copy(self._content)

    @property
    def sender(self) -> str | None:
        return self._sender

    @property
    def task_id(self) -> str | None:
        return self._task_id

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        return _copy(self._tool_calls)

    @property
    def tool_call_id(self) -> str | None:
        return self._tool_call_id

    @property
    def timestamp(self) -> datetime:
        return self._timestamp

    @property
    def metadata(self) -> dict[str, Any]:
        return _copy(self._metadata)

    # -- documents ----------------------------------------------------------------------------
    def _document(self) -> dict[str, Any]:
        """The JSON object, fields in schema order, absent optionals left out (not copied)."""
        doc: dict[str, Any] = {"id": self._id, "role": self._role, "content": self._content}
        if self._sender is not None:
            doc["sender"] = self._sender
        if self._task_id is not None:
            doc["task_id"] = self._task_id
        if self._name is not None:
            doc["name"] = self._name
        if self._tool_calls is not None:
            doc["tool_calls"] = self._tool_calls
        if self._tool_call_id is not None:
            doc["tool_call_id"] = self._tool_call_id
        doc["timestamp"] = self._timestamp
        doc["metadata"] = self._metadata
        return doc

    def to_json(self) -> str:
        return orjson.dumps(self._document()).decode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        """A fresh JSON-ready dict, equal to ``json.loads(self.to_json())``."""
        doc = _copy(self._document())
        doc["timestamp"] = schema.format_timestamp(self._timestamp)
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> AgentMessage:
        return cls._from_document(doc, parsed=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> AgentMessage:
        doc, maybe_deep = _parse(text)
        return cls._from_document(doc, parsed=True, maybe_deep=maybe_deep)

    @classmethod
    def _from_document(cls, doc: Any, *, parsed: bool, maybe_deep: bool = True) -> AgentMessage:
        message = cls.__new__(cls)
        (message._id, message._role, message._content, message._sender, message._task_id, message._name,
         message._tool_calls, message._tool_call_id, message._timestamp, message._metadata,
         ) = schema.check_document(doc, parsed=parsed, maybe_deep=maybe_deep)
        return message

    # -- CrewAI message dicts -----------------------------------------------------------------
    @classmethod
    def from_crewai(
        cls,
        message: dict[str, Any],
        *,
        sender: str | None = None,
        task_id: str | None = None,
        id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AgentMessage:
        """From a CrewAI ``LLMMessage`` dict; its unknown keys travel in ``metadata["crewai_extra"]``."""
        merged = schema.crewai_metadata(message, metadata)
        return cls(
            message["role"],
            message.get("content"),
            id=id,
            sender=sender,
            task_id=task_id,
            name=message.get("name"),
            tool_calls=message.get("tool_calls"),
            tool_call_id=message.get("tool_call_id"),
            timestamp=timestamp,
            metadata=merged,
        )

    def to_crewai(self) -> dict[str, Any]:
        """The ``LLMMessage`` dict CrewAI keeps in ``TaskOutput.messages``."""
        message: dict[str, Any] = {"role": self._role, "content": _copy(self._content)}
        if self._tool_call_id is not None:
            message["tool_call_id"] = self._tool_call_id
        if self._name is not None:
            message["name"] = self._name
        if self._tool_calls is not None:
            message["tool_calls"] = _copy(self._tool_calls)
        extra = self._metadata.get(schema.CREWAI_EXTRA)
        if isinstance(extra, dict):
            message.update(_copy(extra))
        return message

    # -- value semantics ----------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        to_json = getattr(other, "to_json", None)
        if to_json is None or getattr(other, "implementation", None) not in ("python", "rust"):
            return NotImplemented
        return bool(self.to_json() == to_json())

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return f"AgentMessage({self.to_json()})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (AgentMessage.from_json, (self.to_json(),))


def _parse(text: Any, what: str = "from_json") -> tuple[Any, bool]:
    """The parsed document, and whether the text has enough brackets to be too deep."""
    if not isinstance(text, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"{what}() takes str or bytes, not {type(text).__qualname__}")
    try:
        doc = loads(text)
    except JSONDecodeError as exc:
        raise MessageFormatError(f"AgentMessage JSON is malformed: {exc}", field="") from exc
    if isinstance(text, str):
        brackets = text.count("{") + text.count("[")
    else:
        raw = bytes(text)
        brackets = raw.count(b"{") + raw.count(b"[")
    return doc, brackets > schema.MAX_DEPTH


def dumps_many(messages: list[AgentMessage]) -> str:
    return orjson.dumps([message._document() for message in messages]).decode("utf-8")


def loads_many(text: str | bytes) -> list[AgentMessage]:
    docs, maybe_deep = _parse(text, "loads_many")
    if not isinstance(docs, list):
        raise MessageFormatError(f"AgentMessage list: expected a JSON array, got {schema.type_label(docs)}")
    messages = []
    for index, doc in enumerate(docs):
        try:
            messages.append(AgentMessage._from_document(doc, parsed=True, maybe_deep=maybe_deep))
        except MessageFormatError as exc:
            raise MessageFormatError(f"message [{index}]: {exc}", field=f"[{index}].{exc.field}") from None
    return messages


__all__ = ["AgentMessage", "dumps_many", "loads_many"]
