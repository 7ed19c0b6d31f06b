"""Tool description text (name, argument JSON schema, description) built once per distinct tool.

``format_description_for_llm`` regenerates the argument schema of a tool
(``generate_model_description`` plus ``json.dumps``) every time an executor
renders its tools into a prompt. The text depends only on the tool's name, its
``args_schema`` class and its authored description, so it is kept per
(name, schema class, description). CrewAI binds the function by name in
``crewai.tools.base_tool``; both bindings are replaced.

Native function calling (``agent_utils.convert_tools_to_openai_schema``) asks
``generate_model_description`` for every tool of every executor; its result
depends only on the model class and ``strip_null_types``, so it is kept per
(class, flag) and each caller gets its own copy (CrewAI edits the dict it gets).
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


_descriptions: OrderedDict[tuple[type, bool], Any] = OrderedDict()


def _fresh(value: Any) -> Any:
    """A copy of a JSON-shaped value (dicts, lists, scalars): what a new build would return."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return value


def _json_shaped(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_shaped(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_shaped(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def make_generate_model_description(original: Callable[..., Any]) -> Callable[..., Any]:
    def generate_model_description(model: Any, *, strip_null_types: bool = True) -> Any:
        if not isinstance(model, type):
            return original(model, strip_null_types=strip_null_types)
        key = (model, bool(strip_null_types))
        with _lock:
            cached = _descriptions.get(key)
            if cached is not None:
                _descriptions.move_to_end(key)
        if cached is not None:
            return _fresh(cached)
        built = original(model, strip_null_types=strip_null_types)
        if _json_shaped(built):
            with _lock:
                _descriptions[key] = _fresh(built)
                while len(_descriptions) > MAX_CACHED:
                    _descriptions.popitem(last=False)
        return built

    generate_model_description.__doc__ = original.__doc__
    generate_model_description.__wrapped__ = original  # type: ignore[attr-defined]
    return generate_model_description


def cached_descriptions() -> int:
    with _lock:
        return len(_descriptions)


def cached_texts() -> int:
    with _lock:
        return len(_texts)


def clear() -> None:
    with _lock:
        _texts.clear()
        _descriptions.clear()
