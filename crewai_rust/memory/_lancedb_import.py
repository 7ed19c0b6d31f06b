"""Moving in: copy the records of a LanceDB memory table into a new RustMemoryStorage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ._persistence import RecordRow
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


def read_lancedb(directory: Path, table: str = LANCE_TABLE) -> tuple[list[RecordRow], int | None]:
    """Every record of the LanceDB table (last copy wins for duplicated ids) and its dimension."""
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
            rows[str(raw["id"])] = _row(raw)
    return list(rows.values()), dim


def import_lancedb(storage: Any, directory: Path | None = None, table: str = LANCE_TABLE) -> int:
    """Copy the LanceDB table at ``directory`` (default: the store's own) into ``storage``."""
    source = Path(directory) if directory is not None else storage.path
    rows, dim = read_lancedb(source, table)
    if not rows:
        return 0
    dim = dim or len(rows[0].embedding) // 4
    storage._import_rows(rows, dim)
    storage.refresh()
    return len(rows)


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
    try:
        rows, dim = read_lancedb(storage.path)
    except Exception:  # a broken LanceDB table must not stop the new store from opening
        logger.warning("crewai_rust memory: could not read the LanceDB table in %s", storage.path, exc_info=True)
        return 0
    if rows:
        storage._import_rows(rows, dim or len(rows[0].embedding) // 4, {IMPORT_MARK: f"{len(rows)} records"})
    else:
        store.set_meta(IMPORT_MARK, "0 records")
    logger.info("crewai_rust memory: imported %d records from LanceDB table %s/%s.lance",
                len(rows), storage.path, LANCE_TABLE)
    return len(rows)
