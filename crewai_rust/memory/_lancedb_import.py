"""Moving in: copy the records of a LanceDB memory table into a new RustMemoryStorage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ._seam import RecordRow
from ._records import to_micros

logger = logging.getLogger("crewai_rust.memory")

LANCE_TABLE = "memories"
_PLACEHOLDER_ID = "__schema_placeholder__"


def lancedb_table_present(directory: Path, table: str = LANCE_TABLE) -> bool:
    """Whether CrewAI's LanceDB memory table exists in ``directory``."""
    return (Path(directory) / f"{table}.lance").is_dir()


def _row(raw: dict[str, Any]) -> RecordRow:
    from datetime import datetime

    created = str(raw.get("created_at") or "")
    created_dt = datetime.fromisoformat(created.replace("Z", "+00:00")) if created else datetime(1970, 1, 1)
    vector = np.asarray(raw["vector"], dtype=np.float32)
    return RecordRow(
        id=str(raw["id"]),
        content=str(raw.get("content") or ""),
        scope=str(raw.get("scope") or "/"),
        categories=raw.get("categories_str") or "[]",
        metadata=raw.get("metadata_str") or "{}",
        importance=float(raw.get("importance", 0.5)),
        created_at=created_dt.isoformat(),
        created_us=to_micros(created_dt),
        last_accessed=str(raw.get("last_accessed") or created_dt.isoformat()),
        source=raw.get("source") or "",
        private=bool(raw.get("private", False)),
        embedding=vector.tobytes(),
    )


def _raw_row(raw: dict[str, Any]) -> RecordRow:
    """A row that did not convert, kept as close to the original as text allows (for the quarantine)."""
    vector = raw.get("vector")
    try:
        blob = np.asarray(vector, dtype=np.float32).tobytes()
    except (TypeError, ValueError):
        blob = b""
    return RecordRow(
        id=str(raw.get("id")), content=str(raw.get("content")), scope=str(raw.get("scope")),
        categories=str(raw.get("categories_str")), metadata=str(raw.get("metadata_str")), importance=0.0,
        created_at=str(raw.get("created_at")), created_us=0, last_accessed=str(raw.get("last_accessed")),
        source=str(raw.get("source") or ""), private=bool(raw.get("private")), embedding=blob,
    )


def split_rows(rows: list[RecordRow], dim: int, broken: dict[str, str] | None = None) -> tuple[list[RecordRow], list[tuple[RecordRow, str]]]:
    """(rows that read back, (row, reason) for the quarantine), checked before anything is committed."""
    from ._quarantine import note_loose_json, problem

    good: list[RecordRow] = []
    bad: list[tuple[RecordRow, str]] = []
    for row in rows:
        reason = (broken or {}).get(row.id) or problem(row.id, row.categories, row.metadata, row.embedding, dim)
        if reason is None:
            note_loose_json(row.id, row.metadata, row.categories)
            good.append(row)
        else:
            logger.warning("crewai_rust memory: LanceDB record %r cannot be read back (%s); it goes to the "
                           "quarantine table instead (`python -m crewai_rust memory check`)", row.id, reason)
            bad.append((row, reason))
    return good, bad


def read_lancedb(
    directory: Path, table: str = LANCE_TABLE, broken: dict[str, str] | None = None
) -> tuple[list[RecordRow], int | None]:
    """Every record of the LanceDB table (last copy wins for duplicated ids) and its dimension.

    A row that does not even convert is returned raw, with its reason in ``broken``.
    """
    import lancedb

    tbl = lancedb.connect(str(directory)).open_table(table)
    dim = None
    for field in tbl.schema:
        if field.name == "vector":
            dim = int(field.type.list_size)
    rows: dict[str, RecordRow] = {}
    for batch in tbl.to_arrow().to_batches():
        for raw in batch.to_pylist():
            if raw.get("id") == _PLACEHOLDER_ID:
                continue
            try:
                row = _row(raw)
            except Exception as exc:  # noqa: BLE001 - any unconvertible row goes to the quarantine
                row = _raw_row(raw)
                if broken is not None:
                    broken[row.id] = f"unreadable LanceDB row: {exc}"
            rows[row.id] = row
    return list(rows.values()), dim


def import_lancedb(storage: Any, directory: Path | None = None, table: str = LANCE_TABLE) -> int:
    """Copy the LanceDB table at ``directory`` (default: the store's own) into ``storage``."""
    source = Path(directory) if directory is not None else storage.path
    broken: dict[str, str] = {}
    rows, dim = read_lancedb(source, table, broken)
    if not rows:
        return 0
    dim = dim or len(rows[0].embedding) // 4
    good, bad = split_rows(rows, dim, broken)
    storage._import_rows(good, dim, None, bad)
    storage.refresh()
    return len(good)


IMPORT_MARK = "lancedb_import"


def import_if_present(storage: Any) -> int:
    """Once per store: import the LanceDB table beside it, if any, when the store is still new.

    A marker committed with the imported rows (or alone when there is nothing
    to import) makes this run once, even if the first open was interrupted.
    """
    store = storage._store
    if store.get_meta(IMPORT_MARK) is not None:
        return 0
    if not lancedb_table_present(storage.path) or store.head() > 0:
        store.set_meta(IMPORT_MARK, "none")
        return 0
    broken: dict[str, str] = {}
    try:
        rows, dim = read_lancedb(storage.path, LANCE_TABLE, broken)
    except Exception:  # a broken LanceDB table must not stop the new store from opening
        logger.warning("crewai_rust memory: could not read the LanceDB table in %s", storage.path, exc_info=True)
        return 0
    if rows:
        dim = dim or len(rows[0].embedding) // 4
        good, bad = split_rows(rows, dim, broken)
        mark = f"{len(good)} records" + (f", {len(bad)} quarantined" if bad else "")
        storage._import_rows(good, dim, {IMPORT_MARK: mark}, bad)
        rows = good
    else:
        store.set_meta(IMPORT_MARK, "0 records")
    logger.info("crewai_rust memory: imported %d records from LanceDB table %s/%s.lance",
                len(rows), storage.path, LANCE_TABLE)
    return len(rows)
