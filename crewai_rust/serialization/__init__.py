"""Fast, strict JSON for what crewai_rust stores and hashes, and the typed AgentMessage.

``dumps``/``loads`` are orjson-based and apply the conversions of CrewAI's
``CrewJSONEncoder`` (see :mod:`crewai_rust.serialization._json` for the exact rules and
the deliberate differences: NaN/infinity and integers beyond 64 bits are refused).
"""

from __future__ import annotations

from ._errors import JSONDecodeError, JSONEncodeError, MessageFormatError, NonFiniteNumberError
from ._json import dumps, loads

__all__ = [
    "JSONDecodeError",
    "JSONEncodeError",
    "MessageFormatError",
    "NonFiniteNumberError",
    "dumps",
    "loads",
]
