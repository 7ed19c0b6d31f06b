"""CrewAI's task-output log on a shared pool: same file, table, columns and JSON as stock.

Stock ``KickoffTaskOutputsSQLiteStorage`` opens a connection (and takes a
cross-process file lock) per call, and ``TaskOutputStorageHandler.update``
reloads and decodes the whole table before every task just to check it is not
None. Here every call runs on the process's pooled connection for the file,
writes are single WAL statements (SQLite itself serialises writers across
processes), and the per-task update is one ``INSERT OR REPLACE``.
"""

from __future__ import annotations

import copy
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from crewai.memory.storage.kickoff_task_outputs_storage import KickoffTaskOutputsSQLiteStorage
from crewai.utilities.errors import DatabaseError, DatabaseOperationError

from . import _json
from ._shared import ensure_schema, shared_database
from ._wrapper import RustSQLiteWrapper

logger = logging.getLogger(__name__)

TABLE = "latest_kickoff_task_outputs"
COLUMNS = (
    "task_id",
    "task_key",
    "expected_output",
    "output",
    "task_index",
    "inputs",
    "was_replayed",
    "timestamp",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY task_index"  # noqa: S608 - fixed text
_INSERT = (
    f"INSERT OR REPLACE INTO {TABLE} "  # noqa: S608 - fixed text
    "(task_id, task_key, expected_output, output, task_index, inputs, was_replayed) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _create_schema(db: RustSQLiteWrapper) -> None:
    """Stock's table (and its task_key migration) plus an index for the by-index update."""
    with db.transaction():
        db.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {TABLE} (
                task_id TEXT PRIMARY KEY,
                task_key TEXT,
                expected_output TEXT,
                output JSON,
                task_index INTEGER,
                inputs JSON,
                was_replayed BOOLEAN,
                timestamp DATETIME DEFAULT CURRENT_TIMESTAMP
            )
            """
        )
        columns = {row[1] for row in db.query(f"PRAGMA table_info({TABLE})")}
        if "task_key" not in columns:
            db.execute(f"ALTER TABLE {TABLE} ADD COLUMN task_key TEXT")
        db.execute(f"CREATE INDEX IF NOT EXISTS idx_{TABLE}_task_index ON {TABLE}(task_index)")


def row_of(task: Any, output: dict[str, Any], task_index: int, was_replayed: Any, inputs: dict[str, Any] | None) -> tuple[Any, ...]:
    """The stored row of one task output, in ``COLUMNS`` order (both backends write it)."""
    return (
        str(task.id),
        task.key,
        task.expected_output,
        _json.dumps(output),
        task_index,
        _json.dumps(inputs or {}),
        was_replayed,
    )


def record_of(row: Any) -> dict[str, Any]:
    """One loaded row as the dict stock's ``load()`` returns (output and inputs decoded)."""
    return {
        "task_id": row[0],
        "task_key": row[1],
        "expected_output": row[2],
        "output": _json.loads(row[3]),
        "task_index": row[4],
        "inputs": _json.loads(row[5]),
        "was_replayed": row[6],
        "timestamp": row[7],
    }


def _fail(template: str, exc: BaseException) -> DatabaseOperationError:
    message = DatabaseError.format_error(template, exc)  # type: ignore[arg-type]
    logger.error(message)
    return DatabaseOperationError(message, exc)  # type: ignore[arg-type]


class PooledTaskOutputsStorage(KickoffTaskOutputsSQLiteStorage):
    """Drop-in for ``KickoffTaskOutputsSQLiteStorage`` (a subclass, so isinstance checks hold)."""

    def __init__(self, db_path: str | None = None, *, use_rust: bool | None = None) -> None:
        if db_path is None:
            from crewai_core.paths import db_storage_path

            db_path = str(Path(db_storage_path()) / "latest_kickoff_task_outputs.db")
        self.db_path = db_path
        self._lock_name = f"sqlite:{os.path.realpath(self.db_path)}"
        self._use_rust = use_rust
        self._database: RustSQLiteWrapper | None = None
        self._initialize_db()

    @property
    def implementation(self) -> str:
        return self._db().implementation

    # Stock deep-copies and pickles (TaskOutputStorageHandler is deep-copied with its
    # owner). The open pool is process state: copies leave it out and take the process's
    # pool for the file on first use (registering as its users).
    def __deepcopy__(self, memo: dict[int, Any]) -> PooledTaskOutputsStorage:
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            setattr(clone, key, None if key == "_database" else copy.deepcopy(value, memo))
        return clone

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_database": None}

    def _db(self) -> RustSQLiteWrapper:
        db = self._database
        if db is None or db.closed:
            db = self._database = shared_database(self.db_path, self._use_rust, user=self)
        return db

    def _initialize_db(self) -> None:
        try:
            ensure_schema(self._db(), TABLE, _create_schema)
        except sqlite3.Error as exc:
            raise _fail(DatabaseError.INIT_ERROR, exc) from exc

    def add(
        self,
        task: Any,
        output: dict[str, Any],
        task_index: int,
        was_replayed: bool = False,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        """Insert or replace the row of ``task`` (one pooled statement)."""
        try:
            self._db().execute(_INSERT, row_of(task, output, task_index, was_replayed, inputs))
        except sqlite3.Error as exc:
            raise _fail(DatabaseError.SAVE_ERROR, exc) from exc

    def update(self, task_index: int, **kwargs: Any) -> None:
        """Update the row at ``task_index``; dict values are JSON-encoded as stock does."""
        unknown = sorted(set(kwargs) - set(COLUMNS))
        if unknown:
            exc = sqlite3.OperationalError(f"no such column(s) in {TABLE}: {', '.join(unknown)}")
            raise _fail(DatabaseError.UPDATE_ERROR, exc) from exc
        if not kwargs:
            return
        assignments = ", ".join(f"{key} = ?" for key in kwargs)
        values = [_json.dumps(v) if isinstance(v, dict) else v for v in kwargs.values()]
        values.append(task_index)
        sql = f"UPDATE {TABLE} SET {assignments} WHERE task_index = ?"  # noqa: S608 - column names checked above
        try:
            rowcount = self._db().execute(sql, values).rowcount
        except sqlite3.Error as exc:
            raise _fail(DatabaseError.UPDATE_ERROR, exc) from exc
        if rowcount == 0:
            logger.warning(f"No row found with task_index {task_index}. No update performed.")

    def load(self) -> list[dict[str, Any]]:
        """Every row ordered by task_index, with output/inputs decoded (same dicts as stock)."""
        try:
            rows = self._db().query(_SELECT)
        except sqlite3.Error as exc:
            raise _fail(DatabaseError.LOAD_ERROR, exc) from exc
        return [record_of(row) for row in rows]

    def delete_all(self) -> None:
        try:
            self._db().execute(f"DELETE FROM {TABLE}")  # noqa: S608 - fixed text
        except sqlite3.Error as exc:
            raise _fail(DatabaseError.DELETE_ERROR, exc) from exc


def handler_update(self: Any, task_index: int, log: dict[str, Any]) -> None:
    """``TaskOutputStorageHandler.update`` without the whole-table reload stock does first."""
    if log.get("was_replayed", False):
        replayed = {
            "task_id": str(log["task"].id),
            "task_key": log["task"].key,
            "expected_output": log["task"].expected_output,
            "output": log["output"],
            "was_replayed": log["was_replayed"],
            "inputs": log["inputs"],
        }
        self.storage.update(task_index, **replayed)
    else:
        self.storage.add(**log)
