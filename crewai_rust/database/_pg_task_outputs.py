"""CrewAI's kickoff task-output log in PostgreSQL, so ``crewai replay`` works from any machine.

The PostgreSQL twin of ``_task_outputs.PooledTaskOutputsStorage``: same methods,
same rows back (``was_replayed`` as 0/1, ``timestamp`` as SQLite's
``YYYY-MM-DD HH:MM:SS`` UTC text, JSON columns encoded by the same codec), same
``DatabaseOperationError`` on failure. The table keeps stock's name and columns,
plus ``seq``: SQLite's ``INSERT OR REPLACE`` gives a replaced row a new rowid, so
rows with one ``task_index`` come back in write order; ``seq`` does that here.
Every statement is idempotent, so a call cut off by a lost connection is re-run.
"""

from __future__ import annotations

import logging
from typing import Any

from crewai.memory.storage.kickoff_task_outputs_storage import KickoffTaskOutputsSQLiteStorage
from crewai.utilities.errors import DatabaseError, DatabaseOperationError

from .._postgres import PostgresError, is_postgres_url, redact, validate_url
from . import _json, _pg
from ._task_outputs import COLUMNS, TABLE, record_of, row_of

logger = logging.getLogger(__name__)

_NOW = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"


def _ddl(schema: str) -> list[str]:
    table = f'"{schema}".{TABLE}'
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {table} (
            task_id TEXT PRIMARY KEY,
            task_key TEXT,
            expected_output TEXT,
            output TEXT,
            task_index INTEGER,
            inputs TEXT,
            was_replayed INTEGER,
            timestamp TEXT DEFAULT {_NOW},
            seq BIGSERIAL
        )
        """,
        f"CREATE INDEX IF NOT EXISTS idx_{TABLE}_task_index ON {table} (task_index, seq)",
    ]


def _fail(template: str, exc: BaseException) -> DatabaseOperationError:
    message = DatabaseError.format_error(template, exc)  # type: ignore[arg-type]
    logger.error(message)
    return DatabaseOperationError(message, exc)  # type: ignore[arg-type]


def _stored(value: Any) -> Any:
    """Bind a value as SQLite would store it: bools as 0/1 (the column reads back an int)."""
    return int(value) if isinstance(value, bool) else value


class PostgresTaskOutputsStorage(KickoffTaskOutputsSQLiteStorage):
    """Drop-in for ``KickoffTaskOutputsSQLiteStorage`` on PostgreSQL (a subclass, so isinstance holds).

    ``db_path``: None (what CrewAI passes) uses the configured database, a
    ``postgresql://`` URL that database, and a file path gives that SQLite file's
    pooled storage, as stock would. It holds no connection
    (the process's pool is looked up per call), so copies and pickles are plain data.
    """

    def __new__(cls, db_path: str | None = None, **kwargs: Any) -> Any:
        # An explicit file path means that SQLite file (as stock); only the default goes to PostgreSQL.
        if db_path is not None and not is_postgres_url(db_path):
            from ._task_outputs import PooledTaskOutputsStorage

            return PooledTaskOutputsStorage(db_path)
        return super().__new__(cls)

    def __init__(self, db_path: str | None = None, *, url: str | None = None, schema: str | None = None) -> None:
        settings = _pg.current_settings()
        if url is None and is_postgres_url(db_path):
            url = db_path
        self._url = validate_url(url or _pg.configured_url())
        self._schema = _pg.check_schema(schema or settings.schema)
        self.db_path = redact(self._url)  # what stock code may print; never the password
        self._lock_name = f"postgresql:{self.db_path}/{self._schema}"
        table = f'"{self._schema}".{TABLE}'
        self._select = f"SELECT {', '.join(COLUMNS)} FROM {table} ORDER BY task_index, seq"  # noqa: S608
        self._upsert = (
            f"INSERT INTO {table} (task_id, task_key, expected_output, output, task_index, inputs, was_replayed) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (task_id) DO UPDATE SET "
            "task_key = EXCLUDED.task_key, expected_output = EXCLUDED.expected_output, output = EXCLUDED.output, "
            "task_index = EXCLUDED.task_index, inputs = EXCLUDED.inputs, was_replayed = EXCLUDED.was_replayed, "
            "timestamp = DEFAULT, seq = DEFAULT"
        )
        self._table = table
        self._initialize_db()

    @property
    def implementation(self) -> str:
        return "postgresql"

    def __repr__(self) -> str:
        return f"PostgresTaskOutputsStorage({self.db_path!r}, schema={self._schema!r})"

    def _db(self) -> _pg.PgDatabase:
        return _pg.database(self._url)

    def _initialize_db(self) -> None:
        ddl = _ddl(self._schema)
        try:
            self._db().ensure(TABLE, [TABLE], ddl, self._schema)
        except (PostgresError, ValueError) as exc:
            raise _fail(DatabaseError.INIT_ERROR, exc) from None

    def add(
        self,
        task: Any,
        output: dict[str, Any],
        task_index: int,
        was_replayed: bool = False,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        """Insert or replace the row of ``task`` (one upsert: re-running it is harmless)."""
        row = row_of(task, output, task_index, _stored(was_replayed), inputs)
        try:
            self._db().run(lambda conn: conn.execute(self._upsert, row))
        except PostgresError as exc:
            raise _fail(DatabaseError.SAVE_ERROR, exc) from None

    def update(self, task_index: int, **kwargs: Any) -> None:
        """Update the row at ``task_index``; dict values are JSON-encoded as stock does."""
        unknown = sorted(set(kwargs) - set(COLUMNS))
        if unknown:
            exc = PostgresError(f"no such column(s) in {TABLE}: {', '.join(unknown)}")
            raise _fail(DatabaseError.UPDATE_ERROR, exc)
        if not kwargs:
            return
        assignments = ", ".join(f"{key} = %s" for key in kwargs)
        values = [_json.dumps(v) if isinstance(v, dict) else _stored(v) for v in kwargs.values()]
        values.append(task_index)
        sql = f"UPDATE {self._table} SET {assignments} WHERE task_index = %s"  # noqa: S608 - columns checked
        try:
            rowcount = self._db().run(lambda conn: conn.execute(sql, values).rowcount)
        except PostgresError as exc:
            raise _fail(DatabaseError.UPDATE_ERROR, exc) from None
        if rowcount == 0:
            logger.warning(f"No row found with task_index {task_index}. No update performed.")

    def load(self) -> list[dict[str, Any]]:
        """Every row ordered by task_index (then write order), output/inputs decoded."""
        try:
            rows = self._db().run(lambda conn: conn.execute(self._select).fetchall())
        except PostgresError as exc:
            raise _fail(DatabaseError.LOAD_ERROR, exc) from None
        return [record_of(row) for row in rows]

    def delete_all(self) -> None:
        try:
            self._db().run(lambda conn: conn.execute(f"DELETE FROM {self._table}"))  # noqa: S608
        except PostgresError as exc:
            raise _fail(DatabaseError.DELETE_ERROR, exc) from None
