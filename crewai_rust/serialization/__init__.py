"""Fast, strict JSON for what crewai_rust stores and hashes, and the typed AgentMessage.

``dumps``/``loads`` are orjson-based and apply the conversions of CrewAI's
``CrewJSONEncoder`` (see :mod:`crewai_rust.serialization._json` for the exact rules and
the deliberate differences: NaN/infinity and integers beyond 64 bits are refused).
``AgentMessage`` has a Rust twin and a Python twin writing byte-identical JSON.
"""

from __future__ import annotations

from ._errors import JSONDecodeError, JSONEncodeError, MessageFormatError, NonFiniteNumberError
from ._json import dumps, loads
from ._message import AgentMessage, dumps_many, loads_many

__all__ = [
    "AgentMessage",
    "JSONDecodeError",
    "JSONEncodeError",
    "MessageFormatError",
    "NonFiniteNumberError",
    "dumps",
    "dumps_many",
    "loads",
    "loads_many",
]
