"""Flow state in PostgreSQL: a flow persisted (or paused for feedback) on one machine resumes on another.

The PostgreSQL twin of ``_flow_persistence.PooledFlowPersistence``: the same
tables and columns as stock ``SQLiteFlowPersistence``, states encoded exactly as
stock encodes them, the same results for the same calls. ``flow_states`` also
has ``write_id`` (made by the client per save) so a save re-run after a lost
connection, whose first commit may have landed, is stored once.

The URL never leaves the process: it is excluded from ``model_dump`` (CrewAI
serialises a flow's persistence into checkpoints), and a persistence restored
from such a dump takes the configured URL again.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from crewai.flow.persistence.base import FlowPersistence
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence
from pydantic import BaseModel, Field, model_validator
from typing_extensions import Self

from .._postgres import redact, validate_url
from . import _json, _pg
from ._flow_persistence import _encode, _json_default

if TYPE_CHECKING:
    from crewai.flow.async_feedback.types import PendingFeedbackContext

_TABLES = ("flow_states", "pending_feedback")


def _ddl(schema: str) -> list[str]:
    return [
        f"""
        CREATE TABLE IF NOT EXISTS "{schema}".flow_states (
            id BIGSERIAL PRIMARY KEY,
            flow_uuid TEXT NOT NULL,
            method_name TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            state_json TEXT NOT NULL,
            write_id UUID UNIQUE
        )
        """,
        f'CREATE INDEX IF NOT EXISTS idx_flow_states_uuid ON "{schema}".flow_states (flow_uuid, id)',
        f"""
        CREATE TABLE IF NOT EXISTS "{schema}".pending_feedback (
            id BIGSERIAL PRIMARY KEY,
            flow_uuid TEXT NOT NULL UNIQUE,
            context_json TEXT NOT NULL,
            state_json TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """,
    ]


def _configured_schema() -> str:
    return _pg.current_settings().schema


def _configured_url() -> str:
    return _pg.configured_url()


class PostgresFlowPersistence(FlowPersistence):
    """``FlowPersistence`` on PostgreSQL; the default of ``@persist`` once the URL is configured."""

    persistence_type: str = Field(default="PostgresFlowPersistence")
    db_schema: str = Field(default_factory=_configured_schema)
    url: str = Field(default_factory=_configured_url, exclude=True, repr=False)

    def __init__(self, url: str | None = None, /, **kwargs: Any) -> None:
        if url is not None:
            kwargs["url"] = url
        super().__init__(**kwargs)

    @model_validator(mode="after")
    def _setup(self) -> Self:
        self.url = validate_url(self.url)
        _pg.check_schema(self.db_schema)
        self.init_db()
        return self

    @property
    def implementation(self) -> str:
        return "postgresql"

    @property
    def location(self) -> str:
        """Where the states live, secret-free (for messages and status)."""
        return f"{redact(self.url)} schema {self.db_schema}"

    def _db(self) -> _pg.PgDatabase:
        return _pg.database(self.url)

    def _t(self, table: str) -> str:
        return f'"{self.db_schema}".{table}'

    def init_db(self) -> None:
        ddl = _ddl(self.db_schema)
        self._db().ensure("flow_states", _TABLES, ddl, self.db_schema)

    @staticmethod
    def _to_state_dict(state_data: dict[str, Any] | BaseModel) -> dict[str, Any]:
        return SQLiteFlowPersistence._to_state_dict(state_data)  # stock's conversion and ValueError

    def _insert_state(self, conn: Any, row: tuple[Any, ...]) -> None:
        conn.execute(
            f"INSERT INTO {self._t('flow_states')} (flow_uuid, method_name, timestamp, state_json, write_id) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (write_id) DO NOTHING",
            row,
        )

    def save_state(self, flow_uuid: str, method_name: str, state_data: dict[str, Any] | BaseModel) -> None:
        state = self._to_state_dict(state_data)
        row = (flow_uuid, method_name, datetime.now(timezone.utc).isoformat(), _encode(state), uuid.uuid4())
        self._db().run(lambda conn: self._insert_state(conn, row))

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        sql = f"SELECT state_json FROM {self._t('flow_states')} WHERE flow_uuid = %s ORDER BY id DESC LIMIT 1"  # noqa: S608
        row = self._db().run(lambda conn: conn.execute(sql, (flow_uuid,)).fetchone())
        if row:
            result = _json.loads(row[0])
            return result if isinstance(result, dict) else None
        return None

    def save_pending_feedback(
        self,
        flow_uuid: str,
        context: PendingFeedbackContext,
        state_data: dict[str, Any] | BaseModel,
    ) -> None:
        import json

        state_json = _encode(self._to_state_dict(state_data))
        now = datetime.now(timezone.utc).isoformat()
        state_row = (flow_uuid, context.method_name, now, state_json, uuid.uuid4())
        pending_row = (flow_uuid, json.dumps(context.to_dict(), default=_json_default), state_json, now)
        upsert = (
            f"INSERT INTO {self._t('pending_feedback')} (flow_uuid, context_json, state_json, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s) ON CONFLICT (flow_uuid) DO UPDATE SET context_json = EXCLUDED.context_json, "
            "state_json = EXCLUDED.state_json, created_at = EXCLUDED.created_at"
        )

        def write(conn: Any) -> None:
            with conn.transaction():
                self._insert_state(conn, state_row)
                conn.execute(upsert, pending_row)

        self._db().run(write)

    def load_pending_feedback(self, flow_uuid: str) -> tuple[dict[str, Any], PendingFeedbackContext] | None:
        from crewai.flow.async_feedback.types import PendingFeedbackContext

        sql = f"SELECT state_json, context_json FROM {self._t('pending_feedback')} WHERE flow_uuid = %s"  # noqa: S608
        row = self._db().run(lambda conn: conn.execute(sql, (flow_uuid,)).fetchone())
        if row:
            return (_json.loads(row[0]), PendingFeedbackContext.from_dict(_json.loads(row[1])))
        return None

    def clear_pending_feedback(self, flow_uuid: str) -> None:
        sql = f"DELETE FROM {self._t('pending_feedback')} WHERE flow_uuid = %s"  # noqa: S608
        self._db().run(lambda conn: conn.execute(sql, (flow_uuid,)))


def flow_persistence_factory() -> PostgresFlowPersistence:
    """The factory registered with ``set_flow_persistence_factory`` when a URL is configured."""
    return PostgresFlowPersistence()
