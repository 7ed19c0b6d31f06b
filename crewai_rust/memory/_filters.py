"""Scope prefixes and the category/metadata filters over stored rows (shared by reads, deletes and listings).

Split out of ``_storage``: the filters read the JSON text the database holds, not the index.
"""

from __future__ import annotations

from typing import Any


def normalised(prefix: str | None) -> str | None:
    """LanceDB's listing normalisation: no trailing slash, a leading one; None for the root."""
    if prefix is None or not prefix.strip("/"):
        return None
    prefix = prefix.rstrip("/")
    return prefix if prefix.startswith("/") else "/" + prefix


def json_list(text: str) -> list[str]:
    from ._quarantine import load_stored

    try:
        value = load_stored(text or "[]")
    except ValueError:
        return []
    return list(value) if isinstance(value, list) else []


def matches(cat_json: str, meta_json: str, categories: list[str] | None, metadata_filter: dict[str, Any] | None) -> bool:
    from ._quarantine import load_stored

    if categories:
        have = json_list(cat_json)
        if not any(c in have for c in categories):
            return False
    if metadata_filter:
        meta = load_stored(meta_json or "{}")
        if not isinstance(meta, dict) or not all(meta.get(k) == v for k, v in metadata_filter.items()):
            return False
    return True
