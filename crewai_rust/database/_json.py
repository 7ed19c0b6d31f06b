"""JSON for stored values: the serialization component's orjson codec, never stricter than stock.

Task outputs are written with :func:`crewai_rust.serialization.dumps` (CrewJSONEncoder's
conversions, orjson speed). Where it refuses a value the stock encoder accepts (NaN,
integers beyond 64 bits), we fall back to ``json.dumps(cls=CrewJSONEncoder)`` so a value
stock could store is never lost; reading falls back to ``json.loads`` the same way, so
rows written by stock CrewAI always load.
"""

from __future__ import annotations

import json
from typing import Any

from ..serialization import dumps as _fast_dumps
from ..serialization import loads as _fast_loads


def _crew_encoder() -> type[json.JSONEncoder]:
    from crewai.utilities.crew_json_encoder import CrewJSONEncoder

    return CrewJSONEncoder


def dumps(value: Any) -> str:
    """Encode like ``json.dumps(value, cls=CrewJSONEncoder)``, fast when possible."""
    try:
        return _fast_dumps(value)
    except (TypeError, ValueError):
        return json.dumps(value, cls=_crew_encoder())


def loads(text: str | bytes | None) -> Any:
    """Decode a stored JSON column; accepts what stock ``json.loads`` accepts."""
    if text is None:
        return json.loads(text)  # type: ignore[arg-type]  # same TypeError as stock
    try:
        return _fast_loads(text)
    except ValueError:
        return json.loads(text)
