"""Tool description text (name, argument JSON schema, description) built once per distinct tool.

``format_description_for_llm`` regenerates the argument schema of a tool
(``generate_model_description`` plus ``json.dumps``) every time an executor
renders its tools into a prompt. The text depends only on the tool's name, its
``args_schema`` class and its authored description, so it is kept per
(name, schema class, description). CrewAI binds the function by name in
``crewai.tools.base_tool``; both bindings are replaced.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MAX_CACHED = 1024

_lock = threading.Lock()
_texts: OrderedDict[tuple[str, Any, str], str] = OrderedDict()


def make_format_description(original: Callable[[str, Any, str], str]) -> Callable[[str, Any, str], str]:
    def format_description_for_llm(name: str, args_schema: Any, description: str) -> str:
        try:
            key = (name, args_schema, description)
            hash(key)
        except TypeError:
            return original(name, args_schema, description)
        with _lock:
            text = _texts.get(key)
            if text is not None:
                _texts.move_to_end(key)
                return text
        text = original(name, args_schema, description)
        with _lock:
            _texts[key] = text
            while len(_texts) > MAX_CACHED:
                _texts.popitem(last=False)
        return text

    format_description_for_llm.__doc__ = original.__doc__
    format_description_for_llm.__wrapped__ = original  # type: ignore[attr-defined]
    return format_description_for_llm


def cached_texts() -> int:
    with _lock:
        return len(_texts)


def clear() -> None:
    with _lock:
        _texts.clear()
