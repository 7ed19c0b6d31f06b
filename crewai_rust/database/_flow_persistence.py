"""Flow state on a shared pool, schema- and encoding-compatible with stock ``SQLiteFlowPersistence``.

Stock opens a connection per call and takes a cross-process file lock around
every write. Here calls run on the process's pooled connections for the file;
SQLite's own WAL locking keeps writers (ours or stock's, any process) apart.
States are encoded exactly as stock encodes them, so either side resumes a
flow the other persisted.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from crewai.flow.persistence import sqlite as _stock_sqlite
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence
from pydantic import BaseModel, PrivateAttr

from . import _json
from ._shared import ensure_schema, shared_database
from ._wrapper import RustSQLiteWrapper

if TYPE_CHECKING:
    from crewai.flow.async_feedback.types import PendingFeedbackContext


def _json_default_fallback(obj: Any) -> Any:
    """Stock's ``_json_default`` (used if a CrewAI release renames it)."""
    if isinstance(obj, BaseModel):
        try:
            return obj.model_dump(mode="json")
        except Exception:
            return obj.model_dump(mode="python")
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


_json_default = getattr(_stock_sqlite, "_json_default", _json_default_fallback)


def _encode(value: dict[str, Any]) -> str:
    return json.dumps(value, default=_json_default)


def _create_schema(db: RustSQLiteWrapper) -> None:
    with db.transaction():
        db.execute(
            """
            CREATE TABLE IF NOT EXISTS flow_states (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                flow_uuid TEXT NOT NULL,
                method_name TEXT NOT NULL,
                timestamp DATETIME NOT NULL,
                state_json TEXT NOT NULL
            )
            """
        )
        db.execute("CREATE INDEX IF NOT EXISTS idx_flow_states_uuid ON flow_states(flow_uuid)")
        db.execute(
            """
            CREATE TABLE IF NOT EXISTS pending_feedback (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                flow_uuid TEXT NOT NULL UNIQUE,
                context_json TEXT NOT NULL,
                state_json TEXT NOT NULL,
                created_at DATETIME NOT NULL
            )
            """
        )
        db.execute("CREATE INDEX IF NOT EXISTS idx_pending_feedback_uuid ON pending_feedback(flow_uuid)")


_INSERT_STATE = "INSERT INTO flow_states (flow_uuid, method_name, timestamp, state_json) VALUES (?, ?, ?, ?)"


class PooledFlowPersistence(SQLiteFlowPersistence):
    """Drop-in for ``SQLiteFlowPersistence`` on a pooled connection.

    ``persistence_type`` stays ``"SQLiteFlowPersistence"``: a flow serialised
    with this persistence deserialises, without crewai_rust, as the stock class
    on the same file.
    """

    _database: Any = PrivateAttr(default=None)

    # Stock deep-copies and pickles (Flow deep-copies class attributes named like its
    # config fields, e.g. a ``@persist`` method called ``checkpoint``). The open pool is
    # process state: copies leave it out and take the process's pool for the file on
    # first use (registering as its users).
    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> PooledFlowPersistence:
        memo = {} if memo is None else memo
        db = self._database
        if db is not None:
            memo[id(db)] = None
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private and private.get("_database") is not None:
            state = {**state, "__pydantic_private__": {**private, "_database": None}}
        return state

    def _db(self) -> RustSQLiteWrapper:
        db = self._database
        if db is None or db.closed:
            db = self._database = shared_database(self.db_path, user=self)
        return db

    @property
    def implementation(self) -> str:
        return self._db().implementation

    def init_db(self) -> None:
        ensure_schema(self._db(), "flow_states", _create_schema)

    def save_state(self, flow_uuid: str, method_name: str, state_data: dict[str, Any] | BaseModel) -> None:
        state = self._to_state_dict(state_data)
        row = (flow_uuid, method_name, datetime.now(timezone.utc).isoformat(), _encode(state))
        self._db().execute(_INSERT_STATE, row)

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        row = self._db().query_one(
            "SELECT state_json FROM flow_states WHERE flow_uuid = ? ORDER BY id DESC LIMIT 1", (flow_uuid,)
        )
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
        state = self._to_state_dict(state_data)
        now = datetime.now(timezone.utc).isoformat()
        state_json = _encode(state)
        db = self._db()
        with db.transaction():
            db.execute(_INSERT_STATE, (flow_uuid, context.method_name, now, state_json))
            db.execute(
                "INSERT OR REPLACE INTO pending_feedback (flow_uuid, context_json, state_json, created_at) "
                "VALUES (?, ?, ?, ?)",
                (flow_uuid, json.dumps(context.to_dict(), default=_json_default), state_json, now),
            )

    def load_pending_feedback(self, flow_uuid: str) -> tuple[dict[str, Any], PendingFeedbackContext] | None:
        from crewai.flow.async_feedback.types import PendingFeedbackContext

        row = self._db().query_one(
            "SELECT state_json, context_json FROM pending_feedback WHERE flow_uuid = ?", (flow_uuid,)
        )
        if row:
            return (_json.loads(row[0]), PendingFeedbackContext.from_dict(_json.loads(row[1])))
        return None

    def clear_pending_feedback(self, flow_uuid: str) -> None:
        self._db().execute("DELETE FROM pending_feedback WHERE flow_uuid = ?", (flow_uuid,))


def flow_persistence_factory() -> PooledFlowPersistence:
    """The factory registered with ``set_flow_persistence_factory``."""
    return PooledFlowPersistence()
