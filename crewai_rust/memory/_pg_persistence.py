"""Memory records on PostgreSQL: the seam's ``RecordStore`` for ``postgresql://`` URLs.

Why this shape:

* **One schema per store** (the ``namespace``), so tenants share a database.
* **Embeddings as float32 ``bytea``**: no server extension; the in-RAM index
  does the exact search, as on SQLite. The initial load streams with binary COPY.
* **A change log numbered in commit order.** Every writing transaction first
  locks the store's one ``head`` row (``SELECT … FOR UPDATE``), numbers its log
  entries after it and moves it on. Writers of one store are serialised by that
  row lock, so a transaction that took numbers commits before the next one can
  take any: the committed numbers are always a gap-free prefix, and a reader
  that applied up to ``n`` misses nothing by reading ``num > n`` (a plain
  sequence would hand out 1 and 2 and let 2 commit first).
* **LISTEN/NOTIFY is a hint only**: the head row is read before every search,
  so a lost notification (a reconnect, a pooler) delays nothing but the
  background catch-up, and after every reconnect the listener catches up from
  the log.
* **Faults**: a dropped connection or a restarting server is retried (every
  write here is idempotent: upserts by id, deletes by id or predicate) until a
  deadline; a write is acknowledged only after its COMMIT returned. Messages
  never hold the URL's password.
* Text a user wrote (content, scope, source) is stored as UTF-8 ``bytea``:
  PostgreSQL ``text`` cannot hold a NUL, and scopes then compare bytewise,
  exactly as on SQLite.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._env import env_str
from .._postgres import PostgresError, PostgresUnavailableError, open_pool, redact, require_psycopg, scrub, validate_url
from ._pg_copy import COLUMNS, RECORD_COLUMNS, copy_payload, nul_in_text
from ._seam import ChangeSet, FullRow, IndexRow, Keep, RecordRow

logger = logging.getLogger("crewai_rust.memory")

T = TypeVar("T")

DEFAULT_NAMESPACE = "crewai_memory"
NAMESPACE_ENV = "CREWAI_RUST_MEMORY_NAMESPACE"
#: ``?namespace=…`` in a store URL picks the schema; it is removed before libpq sees the URL.
NAMESPACE_PARAM = "namespace"
_NAMESPACE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,46}$")
_SCHEMA_VERSION = "1"
#: Text of the error a save's dimension check raises when the store holds another size.
_DIM_MARKER = "crewai_rust: the store holds dimension "
#: How long a write or read keeps retrying through a dropped connection or a restart.
RETRY_SECONDS = 60.0
_CHANGES_KEPT = 20_000
_TRIM_EVERY = 2_000
#: How long the listener waits for a wake-up before it checks that it should still run.
_LISTEN_TIMEOUT = 0.5

#: The largest ``toast_tuple_target`` PostgreSQL accepts: a row up to one page stays in the table.
_TOAST_TUPLE_TARGET = 8160

_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    num bigint NOT NULL,
    trimmed_through bigint NOT NULL DEFAULT 0
);
INSERT INTO {s}.head(one, num) VALUES (true, 0) ON CONFLICT DO NOTHING;
INSERT INTO {s}.meta(key, value) VALUES ('schema', '{version}') ON CONFLICT DO NOTHING;
CREATE SEQUENCE IF NOT EXISTS {s}.record_seq;
CREATE TABLE IF NOT EXISTS {s}.records (
    seq bigint NOT NULL DEFAULT nextval('{s}.record_seq'),
    id text PRIMARY KEY,
    content bytea NOT NULL,
    scope bytea NOT NULL,
    categories text NOT NULL,
    metadata text NOT NULL,
    importance double precision NOT NULL,
    created_at text NOT NULL,
    created_us bigint NOT NULL,
    last_accessed text NOT NULL,
    source bytea,
    private boolean NOT NULL,
    embedding bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS records_seq ON {s}.records(seq);
CREATE INDEX IF NOT EXISTS records_scope ON {s}.records(scope);
CREATE INDEX IF NOT EXISTS records_created ON {s}.records(created_us);
CREATE TABLE IF NOT EXISTS {s}.changes (num bigint PRIMARY KEY, record_id text, op text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.quarantine (
    qid bigserial PRIMARY KEY,
    id text, reason text NOT NULL, quarantined_at text NOT NULL,
    content bytea, scope bytea, categories text, metadata text, importance double precision,
    created_at text, created_us bigint, last_accessed text, source bytea, private boolean, embedding bytea
)
"""

_COPIED = RECORD_COLUMNS
_FULL = "id, content, scope, categories, metadata, importance, created_at, last_accessed, source, private, embedding, seq"


class _DimensionTaken(Exception):
    """Raised inside a write transaction to roll it back: the store holds another size."""

    def __init__(self, stored: int) -> None:
        super().__init__(stored)
        self.stored = stored


def split_namespace(url: str) -> tuple[str, str | None]:
    """(URL without ``?namespace=…``, that namespace or None)."""
    parts = urlsplit(url)
    if not parts.query:
        return url, None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    found = [v for k, v in pairs if k == NAMESPACE_PARAM]
    if not found:
        return url, None
    rest = [(k, v) for k, v in pairs if k != NAMESPACE_PARAM]
    return urlunsplit(parts._replace(query=urlencode(rest, safe="/"))), found[-1]


def check_namespace(namespace: str) -> str:
    """A schema name we can quote safely: lower-case letters, digits, underscores, at most 47 chars."""
    if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
        raise ValueError(
            f"memory namespace must match [a-z_][a-z0-9_]* and be at most 47 characters, got {namespace!r}"
        )
    return namespace


def resolve(url: str, namespace: str | None = None) -> tuple[str, str]:
    """(URL for libpq, namespace): the argument, else ``?namespace=``, else the environment, else the default."""
    url, from_url = split_namespace(validate_url(url))
    chosen = namespace or from_url or env_str(NAMESPACE_ENV) or DEFAULT_NAMESPACE
    return url, check_namespace(chosen)


def store_exists(url: str, namespace: str | None = None) -> bool:
    """Whether the namespace holds a memory store already (so a look does not create one)."""
    psycopg = require_psycopg()
    url, namespace = resolve(url, namespace)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = 'records'", (namespace,),
            ).fetchone()
    except psycopg.Error as exc:
        raise PostgresUnavailableError(f"cannot connect to {redact(url)}: {scrub(str(exc), url)}") from None
    return row is not None


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8")


def _opt_text(value: Any) -> str | None:
    return None if value is None else bytes(value).decode("utf-8")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8")


def _scope_clause(scope: str | None) -> tuple[str, list[Any]]:
    """Path-aware and bytewise: ``scope = p`` or ``p/ <= scope < p0`` (``0`` follows ``/``), index-friendly."""
    if not scope:
        return "true", []
    raw = scope.encode("utf-8")
    return "(scope = %s OR (scope >= %s AND scope < %s))", [raw, raw + b"/", raw + b"0"]


class PostgresRecordStore:
    """One memory store in schema ``namespace`` of the database at ``url`` (see the module docstring)."""

    def __init__(self, url: str, namespace: str | None = None) -> None:
        self._psycopg = require_psycopg()
        url, self.namespace = resolve(url, namespace)
        self._url = url
        self.location = f"{redact(url)} (namespace {self.namespace})"
        self._s = f'"{self.namespace}"'
        self.channel = f"crewai_rust_mem_{self.namespace}"
        self._writes_since_trim = 0
        #: id -> (log number, index row) of rows this process wrote, until the index applied them
        self._own: dict[str, tuple[int, IndexRow]] = {}
        #: (head before, head after, index rows) of this process's last save: a reader at the first
        #: number needs nothing from the server to reach the second (see ``changes_since``)
        self._span: tuple[int, int, list[IndexRow]] | None = None
        self._closed = False
        self._watcher: _Watcher | None = None
        # No liveness round trip per checkout: every call here is retried on a dead connection (``_run``).
        self._pool = open_pool(url, min_size=1, max_size=4, application_name="crewai_rust-memory", check=False)
        # A store dropped without close() (CrewAI does not always close its storage) still
        # returns its connections when it is collected.
        self._finalizer = weakref.finalize(self, self._pool.close)
        try:
            self._create_schema()
        except BaseException:
            self._pool.close()
            raise

    # -- plumbing ------------------------------------------------------------------
    def _transient(self) -> tuple[type[BaseException], ...]:
        from psycopg_pool import PoolClosed, PoolTimeout

        del PoolClosed  # a closed pool is our own close(), not a fault to wait out
        return (self._psycopg.OperationalError, self._psycopg.InterfaceError, PoolTimeout)

    def _run(self, fn: Callable[[Any], T], what: str) -> T:
        """``fn(connection)``, retried through dropped connections and restarts until ``RETRY_SECONDS``.

        Safe because every operation here is idempotent; a write counts as done
        only when ``fn`` returned, i.e. after its COMMIT.
        """

        def attempt() -> T:
            with self._pool.connection() as conn:
                return fn(conn)

        return self._retrying(attempt, what)

    def _retrying(self, attempt: Callable[[], T], what: str) -> T:
        transient = self._transient()
        deadline = time.monotonic() + RETRY_SECONDS
        delay = 0.02
        while True:
            if self._closed:
                raise PostgresError(f"the memory store at {self.location} is closed")
            try:
                return attempt()
            except _DimensionTaken:
                raise
            except transient as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailableError(
                        f"{what} on {self.location} failed for {RETRY_SECONDS:.0f} s: {scrub(str(exc), self._url)}"
                    ) from None
                logger.info("crewai_rust memory: %s on %s interrupted (%s); retrying", what, self.location,
                            type(exc).__name__)
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
            except self._psycopg.Error as exc:
                raise PostgresError(f"{what} on {self.location} failed: {scrub(str(exc), self._url)}") from None

    def _create_schema(self) -> None:
        def create(conn: Any) -> str | None:
            with conn.transaction():
                # Two processes creating the same schema at once would collide on the catalog.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("crewai_rust_memory:" + self.namespace,))
                for statement in _SCHEMA.format(s=self._s, version=_SCHEMA_VERSION).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                storage = conn.execute(
                    "SELECT attstorage FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'",
                    (f"{self._s}.records",),
                ).fetchone()
                if storage is not None and storage[0] != "e":
                    # Float32 noise does not compress: skip pglz's attempt on every save (once, on a new table).
                    conn.execute(f"ALTER TABLE {self._s}.records ALTER COLUMN embedding SET STORAGE EXTERNAL")
                self._keep_rows_inline(conn)
                row = conn.execute(f"SELECT value FROM {self._s}.meta WHERE key='schema'").fetchone()
            return None if row is None else str(row[0])

        version = self._run(create, "creating the memory schema")
        if version != _SCHEMA_VERSION:
            raise PostgresError(f"{self.location} has memory schema version {version!r}; expected {_SCHEMA_VERSION}")

    def _keep_rows_inline(self, conn: Any) -> None:
        """Store a row up to a page (8160 bytes) in the table itself instead of in TOAST chunks.

        PostgreSQL moves a row past about 2 KB to TOAST: a 1536-dimension embedding
        (6 KB) became four chunks in the TOAST table plus four entries in its index.
        With ``toast_tuple_target`` at its maximum such a row is written once, in
        place; larger rows (3072 dimensions) are still moved out. A storage option,
        so it applies to rows written from now on and an existing store is migrated in
        place (under the caller's DDL lock, once: the option is read first).
        """
        options = conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass",
                               (f"{self._s}.records",)).fetchone()
        wanted = f"toast_tuple_target={_TOAST_TUPLE_TARGET}"
        if options is not None and wanted not in (options[0] or []):
            conn.execute(f"ALTER TABLE {self._s}.records SET (toast_tuple_target = {_TOAST_TUPLE_TARGET})")

    def _write(self, body: Callable[[Any], tuple[T, list[str], str]], what: str) -> T:
        """One write transaction: lock the head row, run ``body``, log its ids under the next numbers, notify.

        ``body(cursor)`` returns (result, ids to log, op); op ``"r"`` logs one reset entry.
        """

        def run(conn: Any) -> T:
            with conn.transaction():
                cur = conn.cursor()
                base = int(cur.execute(f"SELECT num FROM {self._s}.head FOR UPDATE").fetchone()[0])
                result, ids, op = body(cur)
                entries = [None] if op == "r" else ids
                if entries:
                    head = base + len(entries)
                    self._maybe_trim(cur, head, len(entries))
                    # Log, head and wake-up in one round trip (data-modifying CTEs always run).
                    cur.execute(
                        f"WITH logged AS (INSERT INTO {self._s}.changes(num, record_id, op)"
                        " SELECT %s + t.ord, t.id, %s FROM unnest(%s::text[]) WITH ORDINALITY AS t(id, ord)),"
                        f" moved AS (UPDATE {self._s}.head SET num = %s)"
                        " SELECT pg_notify(%s, %s)",
                        (base, op, entries, head, self.channel, str(head)),
                    )
            return result

        return self._run(run, what)

    def _maybe_trim(self, cur: Any, head: int, added: int) -> None:
        self._writes_since_trim += added
        if self._writes_since_trim < _TRIM_EVERY:
            return
        self._writes_since_trim = 0
        cut = head - _CHANGES_KEPT
        if cut > 0:
            cur.execute(f"DELETE FROM {self._s}.changes WHERE num <= %s", (cut,))
            cur.execute(f"UPDATE {self._s}.head SET trimmed_through = GREATEST(trimmed_through, %s)", (cut,))

    def _read(self, fn: Callable[[Any], T], what: str) -> T:
        """``fn(cursor)`` in one REPEATABLE READ snapshot."""

        def run(conn: Any) -> T:
            with conn.transaction():
                cur = conn.cursor()
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return fn(cur)

        return self._run(run, what)

    def _query(self, sql: str, params: Sequence[Any] = (), what: str = "a read") -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall(), what)

    # -- change log ------------------------------------------------------------------
    def head(self) -> int:
        return int(self._query(f"SELECT num FROM {self._s}.head", what="reading the change head")[0][0])

    def changes_since(self, seq: int, after_own_write: bool = False) -> ChangeSet:
        """Deltas committed after ``seq``: one cheap head read when there are none, two or three queries else.

        No snapshot is needed: committed numbers are a gap-free prefix, so the log
        read up to the head is complete; a row fetched after a later commit is
        newer than its log entry, and that later entry is applied again next time.
        Rows this process wrote itself (and nobody changed since) come from
        ``_own`` instead of being read back.
        """

        span, self._span = self._span, None
        if after_own_write and span is not None and span[0] == seq:
            # Everything after ``seq`` up to ``span[1]`` is the caller's own save, just committed:
            # no read needed. Later commits by others are picked up by the next read, from ``span[1]``.
            self._own = {k: v for k, v in self._own.items() if v[0] > span[1]}
            return ChangeSet(span[1], False, list(span[2]), [])

        def read(conn: Any) -> ChangeSet:
            # The head and the log after ``seq`` in one round trip: the join is empty when nothing is
            # new (one cheap row) or when the log was trimmed past the reader (stale).
            joined = conn.execute(
                f"SELECT h.num, h.trimmed_through, c.num, c.record_id, c.op FROM {self._s}.head h"
                f" LEFT JOIN {self._s}.changes c ON c.num > %s AND c.num <= h.num AND h.trimmed_through <= %s"
                " ORDER BY c.num", (seq, seq),
            ).fetchall()
            head, trimmed = int(joined[0][0]), int(joined[0][1])
            if head <= seq:
                return ChangeSet(head, False, [], [])
            if trimmed > seq:
                return ChangeSet(head, False, [], [], stale=True)
            log = [(num, record_id, op) for _, _, num, record_id, op in joined if num is not None]
            reset = False
            last: dict[str, tuple[int, str]] = {}
            for num, record_id, op in log:
                if op == "r":
                    reset = True
                    last.clear()
                else:
                    last[record_id] = (int(num), op)
            own = self._own
            upserted: list[IndexRow] = []
            fetch: list[str] = []
            for rid, (num, op) in last.items():
                if op != "u":
                    continue
                mine = own.get(rid)
                if mine is not None and mine[0] == num:
                    upserted.append(mine[1])
                else:
                    fetch.append(rid)
            if fetch:
                for s, rid, scope, cats, meta, emb in conn.execute(
                    f"SELECT seq, id, scope, categories, metadata, embedding FROM {self._s}.records"
                    " WHERE id = ANY(%s)", (fetch,),
                ):
                    upserted.append((int(s), rid, _text(scope), cats, meta, bytes(emb)))
            upserted.sort(key=lambda r: r[0])
            found = {row[1] for row in upserted}
            deleted = [rid for rid, (_, op) in last.items() if op == "d"]
            deleted.extend(rid for rid in fetch if rid not in found)  # deleted again since
            return ChangeSet(head, reset, upserted, deleted)

        changes = self._run(read, "reading the change log")
        if self._own and changes.head > seq:
            self._own = {k: v for k, v in self._own.items() if v[0] > changes.head}
        return changes

    def load_index_rows(self, batch: int = 20_000) -> tuple[int, int, Generator[list[IndexRow], None, None]]:
        """(head, count, batches) from one snapshot, the rows streamed with binary COPY."""
        holder = _Snapshot(self)
        try:
            head, count = holder.begin()
        except BaseException:
            holder.end()
            raise
        return head, count, holder.batches(batch)

    # -- settings ----------------------------------------------------------------------
    def get_dim(self) -> int | None:
        value = self.get_meta("dim")
        return None if value is None else int(value)

    def get_meta(self, key: str) -> str | None:
        rows = self._query(f"SELECT value FROM {self._s}.meta WHERE key = %s", (key,), "reading store settings")
        return None if not rows else str(rows[0][0])

    def set_meta(self, key: str, value: str) -> None:
        self._run(lambda conn: conn.execute(
            f"INSERT INTO {self._s}.meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        ), "writing store settings")

    def delete_meta(self, key: str) -> None:
        self._run(lambda conn: conn.execute(f"DELETE FROM {self._s}.meta WHERE key = %s", (key,)),
                  "writing store settings")

    # -- writes --------------------------------------------------------------------------
    def upsert(
        self, rows: Sequence[RecordRow], dim: int, meta: dict[str, str] | None = None,
        quarantined: Sequence[tuple[RecordRow, str]] = (),
    ) -> int:
        """Insert or replace by id (with ``meta`` and ``quarantined`` in the same commit); returns the store's dimension.

        Three steps and four round trips whatever the batch size (see :meth:`_send_upsert`):
        one pipeline locks and advances the head row, checks the dimension, removes the rows
        being replaced (keeping their ``seq``), reserves the new ``seq`` values and logs the ids;
        one binary COPY writes every row; COMMIT. The dimension check fails its statement when
        the store holds another size, so the server skips the rest of the pipeline, no row is
        sent and the transaction is rolled back: nothing was written.
        """
        unique = list({r.id: r for r in rows}.values())
        if nul_in_text(unique):  # what psycopg says for a NUL in a text parameter, before anything is sent
            raise PostgresError(f"saving {len(rows)} records on {self.location} failed:"
                                " PostgreSQL text fields cannot contain NUL (0x00) bytes")
        n = len(unique)
        got: dict[str, Any] = {}
        self._span = None

        def run(conn: Any) -> int:
            got.clear()
            try:
                head_seqs = self._send_upsert(conn, unique, dim, meta, quarantined)
                conn.execute("COMMIT")  # acknowledged once this returned: the server has flushed it
            except self._psycopg.errors.InvalidTextRepresentation as exc:
                _rollback(conn)
                stored = _taken_dimension(exc)
                if stored is None:
                    raise
                raise _DimensionTaken(stored) from None
            except BaseException:
                _rollback(conn)
                raise
            got["head"], got["seqs"] = head_seqs
            return dim

        try:
            result = self._run(run, f"saving {len(rows)} records")
        except _DimensionTaken as taken:
            return taken.stored
        if unique:
            head, seqs = got["head"], got["seqs"]
            base = head - n
            written = [(seq, r.id, r.scope, r.categories, r.metadata, r.embedding) for r, seq in zip(unique, seqs)]
            for offset, index_row in enumerate(written, start=1):  # log numbers base+1.. in this order
                self._own[index_row[1]] = (base + offset, index_row)
            self._span = (base, head, written)
        return result

    def _send_upsert(
        self, conn: Any, unique: list[RecordRow], dim: int, meta: dict[str, str] | None,
        quarantined: Sequence[tuple[RecordRow, str]],
    ) -> tuple[int, list[int]]:
        """A save's transaction up to its COMMIT (the caller's): (new head, ``seq`` of each row of ``unique``).

        Why COPY and not an upsert per row: ``executemany`` costs the server an executor
        start and a speculative insert per row and psycopg an adaptation of 12 parameters
        per row; a binary COPY of a payload built in one pass (``_pg_copy``) takes about a
        third off the write of 100 x 1536 (README, PostgreSQL section). A replaced row
        is deleted and inserted again with its old ``seq`` (so it keeps its place, as an
        upsert kept it); writers of the store are serialised by the head row, so nobody
        inserts the same id in between. The connection is autocommit: BEGIN goes in the pipeline.
        """
        s = self._s
        n = len(unique)
        seq_cur = None
        with conn.pipeline():
            conn.execute("BEGIN")
            # Locks the head row (writers of the store queue here) and reserves numbers head-n+1..head.
            head_cur = conn.execute(f"UPDATE {s}.head SET num = num + %s RETURNING num", (n,))
            # The stored size, fixed to ours when there is none (one row whichever case).
            # A store of another size fails the statement (a cast of the marker text: SQL has no raise),
            # so the server skips the rest of the pipeline and leaving it raises: no row is sent.
            conn.execute(
                f"WITH fixed AS (INSERT INTO {s}.meta(key, value) VALUES ('dim', %s) ON CONFLICT DO NOTHING"
                f" RETURNING value), stored AS (SELECT value FROM fixed UNION ALL SELECT value FROM {s}.meta"
                f" WHERE key = 'dim') SELECT CASE WHEN value = %s THEN value ELSE (%s || value)::int::text END FROM stored",
                (str(dim), str(dim), _DIM_MARKER),
            )
            cur = conn.cursor()
            now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            if quarantined:
                cur.executemany(
                    f"INSERT INTO {s}.quarantine(reason, quarantined_at, {_COPIED})"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    [(reason, now, *_params(r)) for r, reason in quarantined],
                )
            for key, value in (meta or {}).items():
                cur.execute(
                    f"INSERT INTO {s}.meta(key, value) VALUES (%s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value),
                )
            if n:
                ids = [r.id for r in unique]
                # The rows being replaced go (their ``seq`` comes back, to be kept) and one new ``seq``
                # per new id is drawn; the COPY below writes every row.
                seq_cur = conn.cursor()
                seq_cur.execute(
                    f"WITH gone AS (DELETE FROM {s}.records WHERE id = ANY(%s) RETURNING id, seq)"
                    " SELECT id, seq FROM gone UNION ALL"
                    f" SELECT NULL, nextval('{s}.record_seq') FROM generate_series(1, %s - (SELECT count(*) FROM gone))",
                    (ids, n),
                )
                self._maybe_trim_pipelined(cur, n)
                # Log and wake-up in one statement, numbered from the head this transaction moved.
                cur.execute(
                    f"WITH h AS (SELECT num FROM {s}.head), logged AS (INSERT INTO {s}.changes(num, record_id, op)"
                    " SELECT h.num - %s + t.ord, t.id, 'u' FROM h, unnest(%s::text[]) WITH ORDINALITY AS t(id, ord))"
                    " SELECT pg_notify(%s, h.num::text) FROM h",
                    (n, ids, self.channel),
                )
        # The pipeline has synced: a failed dimension check raised above, before any row was sent.
        head = int(head_cur.fetchone()[0])
        seqs: list[int] = []
        if seq_cur is not None:
            seqs = _assign_seqs(seq_cur.fetchall(), [r.id for r in unique])
            with conn.cursor().copy(f"COPY {s}.records({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(copy_payload(unique, seqs))
        return head, seqs

    def _maybe_trim_pipelined(self, cur: Any, added: int) -> None:
        """:meth:`_maybe_trim` with the head read on the server (the write is pipelined)."""
        self._writes_since_trim += added
        if self._writes_since_trim < _TRIM_EVERY:
            return
        self._writes_since_trim = 0
        cur.execute(f"DELETE FROM {self._s}.changes WHERE num <= (SELECT num FROM {self._s}.head) - %s",
                    (_CHANGES_KEPT,))
        cur.execute(f"UPDATE {self._s}.head SET trimmed_through = GREATEST(trimmed_through, num - %s)",
                    (_CHANGES_KEPT,))

    def delete_ids(self, ids: Sequence[str]) -> int:
        return self.delete_matching(None, None, None, list(ids)) if ids else 0

    def delete_matching(
        self, scope: str | None, older_than_us: int | None = None, keep: Keep | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Select and delete under the head lock, in one transaction (a concurrent move is never lost)."""
        clause, params = _scope_clause(scope)
        if older_than_us is not None:
            clause += " AND created_us < %s"
            params.append(older_than_us)
        if ids is not None:
            clause += " AND id = ANY(%s)"
            params.append(list(dict.fromkeys(ids)))
        s = self._s

        def body(cur: Any) -> tuple[int, list[str], str]:
            if keep is None:
                gone = [r[0] for r in cur.execute(f"DELETE FROM {s}.records WHERE {clause} RETURNING id", params)]
            else:
                rows = cur.execute(f"SELECT id, categories, metadata FROM {s}.records WHERE {clause} FOR UPDATE",
                                   params).fetchall()
                gone = [r[0] for r in rows if keep(r[1], r[2])]
                if gone:
                    cur.execute(f"DELETE FROM {s}.records WHERE id = ANY(%s)", (gone,))
            return len(gone), gone, "d"

        return self._write(body, "deleting records")

    def reset_all(self) -> None:
        s = self._s

        def body(cur: Any) -> tuple[None, list[str], str]:
            cur.execute(f"DELETE FROM {s}.records")
            cur.execute(f"DELETE FROM {s}.meta WHERE key = 'dim'")
            return None, [], "r"

        self._write(body, "resetting the store")

    def touch(self, ids: Sequence[str], when: str) -> None:
        """Set ``last_accessed``; not logged (the index does not hold it)."""
        if ids:
            self._run(lambda conn: conn.execute(
                f"UPDATE {self._s}.records SET last_accessed = %s WHERE id = ANY(%s)", (when, list(ids))
            ), "touching records")

    # -- quarantine ---------------------------------------------------------------------
    def quarantine(self, bad: Sequence[tuple[str, str]]) -> int:
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        s = self._s

        def body(cur: Any) -> tuple[int, list[str], str]:
            moved = []
            for record_id, reason in bad:
                cur.execute(
                    f"INSERT INTO {s}.quarantine(reason, quarantined_at, {_COPIED}) SELECT %s, %s, {_COPIED}"
                    f" FROM {s}.records WHERE id = %s", (reason, now, record_id),
                )
                if cur.rowcount:
                    cur.execute(f"DELETE FROM {s}.records WHERE id = %s", (record_id,))
                    moved.append(record_id)
            return len(moved), moved, "d"

        return self._write(body, "quarantining records")

    def quarantined(self) -> list[tuple[Any, ...]]:
        rows = self._query(
            f"SELECT qid, id, reason, quarantined_at, categories, metadata, embedding FROM {self._s}.quarantine ORDER BY qid"
        )
        return [(q, i, r, w, c, m, None if e is None else bytes(e)) for q, i, r, w, c, m, e in rows]

    def restore(self, qid: int, categories: str, metadata: str) -> bool:
        s = self._s

        def body(cur: Any) -> tuple[bool, list[str], str]:
            row = cur.execute(f"SELECT id FROM {s}.quarantine WHERE qid = %s", (qid,)).fetchone()
            if row is None or cur.execute(f"SELECT 1 FROM {s}.records WHERE id = %s", (row[0],)).fetchone():
                return False, [], "u"
            cur.execute(
                f"INSERT INTO {s}.records({_COPIED}) SELECT id, content, scope, %s, %s, importance, created_at,"
                f" created_us, last_accessed, source, private, embedding FROM {s}.quarantine WHERE qid = %s",
                (categories, metadata, qid),
            )
            cur.execute(f"DELETE FROM {s}.quarantine WHERE qid = %s", (qid,))
            return True, [row[0]], "u"

        return self._write(body, "restoring a quarantined record")

    # -- reads ------------------------------------------------------------------------
    def fetch(self, ids: Sequence[str]) -> dict[str, FullRow]:
        if not ids:
            return {}
        rows = self._query(f"SELECT {_FULL} FROM {self._s}.records WHERE id = ANY(%s)", (list(ids),))
        return {r[0]: _full(r) for r in rows}

    def list_rows(self, scope: str | None, limit: int, offset: int) -> list[FullRow]:
        clause, params = _scope_clause(scope)
        rows = self._query(
            f"SELECT {_FULL} FROM {self._s}.records WHERE {clause}"
            " ORDER BY created_us DESC, seq DESC LIMIT %s OFFSET %s", [*params, limit, offset],
        )
        return [_full(r) for r in rows]

    def count(self, scope: str | None) -> int:
        clause, params = _scope_clause(scope)
        return int(self._query(f"SELECT count(*) FROM {self._s}.records WHERE {clause}", params)[0][0])

    def scope_summary(self, scope: str | None) -> tuple[int, str | None, str | None]:
        clause, params = _scope_clause(scope)
        r = self._s + ".records"
        row = self._query(
            f"SELECT (SELECT count(*) FROM {r} WHERE {clause}),"
            f" (SELECT created_at FROM {r} WHERE {clause} ORDER BY created_us ASC LIMIT 1),"
            f" (SELECT created_at FROM {r} WHERE {clause} ORDER BY created_us DESC LIMIT 1)", params * 3,
        )[0]
        return int(row[0]), row[1], row[2]

    def distinct_scopes(self, scope: str | None) -> list[str]:
        clause, params = _scope_clause(scope)
        rows = self._query(f"SELECT DISTINCT scope FROM {self._s}.records WHERE {clause} ORDER BY scope", params)
        return [_text(r[0]) for r in rows]

    def category_counts(self, scope: str | None) -> list[tuple[str, int]]:
        clause, params = _scope_clause(scope)
        rows = self._query(
            f"SELECT categories, count(*) FROM {self._s}.records WHERE {clause} GROUP BY categories", params
        )
        return [(c, int(n)) for c, n in rows]

    def iter_rows(self, batch: int = 5_000) -> Generator[list[RecordRow], None, None]:
        last = -1
        while True:
            rows = self._query(
                f"SELECT seq, {_COPIED} FROM {self._s}.records WHERE seq > %s ORDER BY seq LIMIT %s", (last, batch)
            )
            if not rows:
                return
            last = rows[-1][0]
            yield [
                RecordRow(r[1], _text(r[2]), _text(r[3]), r[4], r[5], float(r[6]), r[7], int(r[8]), r[9],
                          _opt_text(r[10]), bool(r[11]), bytes(r[12]))
                for r in rows
            ]

    def file_size(self) -> int:
        """Bytes the store's tables and indexes take on the server."""
        s = self.namespace
        total = self._query(
            "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (s,),
        )[0][0]
        return int(total)

    # -- wake-ups and lifecycle -------------------------------------------------------
    def watch(self, callback: Callable[[int | None], bool | None]) -> None:
        """Call ``callback(head)`` (from a background thread) when a process may have committed: ``head``
        is the highest change number the wake-ups announced, None after every (re)connect of the
        listener (anything may have been missed). It returns False once it has nothing left to serve.
        A hint: readers check the head row anyway."""
        if self._watcher is None:
            self._watcher = _Watcher(self._url, self.channel, callback, self.location)
            self._watcher.start()

    def drop(self) -> None:
        """Remove the whole namespace (tests and ``memory copy --replace``)."""
        self._run(lambda conn: conn.execute(f"DROP SCHEMA IF EXISTS {self._s} CASCADE"), "dropping the store")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.stop()
        self._finalizer()


def _rollback(conn: Any) -> None:
    """Leave a failed pipeline's transaction (the pool would otherwise roll it back with a warning)."""
    try:
        if conn.info.transaction_status != 0:  # not IDLE
            conn.rollback()
    except Exception:  # noqa: BLE001 - a dead connection: the pool discards it
        pass


def _assign_seqs(fetched: Sequence[tuple[str | None, int]], ids: Sequence[str]) -> list[int]:
    """The ``seq`` of each id: a replaced row keeps its own (``(id, seq)``), a new one takes the
    drawn numbers (``(None, seq)``) in increasing order, in batch order."""
    kept: dict[str, int] = {}
    drawn: list[int] = []
    for rid, seq in fetched:
        if rid is None:
            drawn.append(int(seq))
        else:
            kept[rid] = int(seq)
    drawn.sort(reverse=True)
    return [kept[rid] if rid in kept else drawn.pop() for rid in ids]


def _announced(payload: str, highest: int | None) -> int | None:
    """The highest head the wake-ups announced so far (every write notifies its new head); None when
    one of them said nothing readable, so the catch-up must read."""
    if highest is None or not payload.isdigit():
        return None
    return max(highest, int(payload))


def _taken_dimension(exc: BaseException) -> int | None:
    """The stored dimension named by the save's failed check, or None for any other bad input."""
    found = re.search(re.escape(_DIM_MARKER) + r"(\d+)", str(exc))
    return None if found is None else int(found.group(1))


def _params(r: RecordRow) -> tuple[Any, ...]:
    return (r.id, _bytes(r.content), _bytes(r.scope), r.categories, r.metadata, float(r.importance), r.created_at,
            int(r.created_us), r.last_accessed, _bytes(r.source), bool(r.private), r.embedding)


def _full(r: tuple[Any, ...]) -> FullRow:
    rid, content, scope, cats, meta, importance, created, accessed, source, private, emb, seq = r
    return (rid, _text(content), _text(scope), cats, meta, importance, created, accessed, _opt_text(source),
            bool(private), bytes(emb), seq)


class _Snapshot:
    """A pooled connection held in one REPEATABLE READ transaction while the index loads."""

    def __init__(self, store: PostgresRecordStore) -> None:
        self.store = store
        self.conn: Any = None

    def begin(self) -> tuple[int, int]:
        store = self.store

        def attempt() -> tuple[int, int]:
            try:
                self.conn = store._pool.getconn()
                self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                head = int(self.conn.execute(f"SELECT num FROM {store._s}.head").fetchone()[0])
                count = int(self.conn.execute(f"SELECT count(*) FROM {store._s}.records").fetchone()[0])
                return head, count
            except BaseException:
                self.end()
                raise

        return store._retrying(attempt, "opening the store")

    def batches(self, batch: int) -> Generator[list[IndexRow], None, None]:
        store = self.store
        try:
            with self.conn.cursor() as cur:
                with cur.copy(
                    f"COPY (SELECT seq, id, scope, categories, metadata, embedding FROM {store._s}.records"
                    " ORDER BY seq) TO STDOUT (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["int8", "text", "bytea", "text", "text", "bytea"])
                    out: list[IndexRow] = []
                    for s, rid, scope, cats, meta, emb in copy.rows():
                        out.append((s, rid, _text(scope), cats, meta, bytes(emb)))
                        if len(out) >= batch:
                            yield out
                            out = []
                    if out:
                        yield out
        except store._psycopg.Error as exc:
            raise PostgresUnavailableError(
                f"loading {store.location} was interrupted: {scrub(str(exc), store._url)}; open the store again"
            ) from None
        finally:
            self.end()

    def end(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - a dead connection: the pool discards it
            pass
        try:
            self.store._pool.putconn(conn)
        except Exception:  # noqa: BLE001
            pass


class _Watcher(threading.Thread):
    """LISTEN on the store's channel; every notification (and every reconnect) calls back. Never raises."""

    def __init__(self, url: str, channel: str, callback: Callable[[int | None], bool | None], location: str) -> None:
        super().__init__(name=f"crewai_rust-memory-listen-{channel}", daemon=True)
        self._url = url
        self._channel = channel
        self._callback = callback
        self._location = location
        self._stopping = threading.Event()
        # The listening connection, set and cleared under the lock: stop() shuts its socket down so
        # the wait ends at once instead of at its timeout, and never touches a socket already closed.
        self._conn_lock = threading.Lock()
        self._conn: Any = None
        self.connects = 0  # for tests: how often it (re)connected

    def stop(self) -> None:
        self._stopping.set()
        self._interrupt()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=3)

    def _interrupt(self) -> None:
        """Wake a listener blocked in ``notifies()``: shutting the socket down makes it readable (EOF).

        The shutdown goes through a duplicate of the descriptor, so psycopg still owns and closes its own;
        the server sees an ordinary disconnect."""
        with self._conn_lock:
            conn = self._conn
            if conn is None:
                return
            try:
                dup = os.dup(conn.pgconn.socket)
            except Exception:  # noqa: BLE001 - already closed: nothing is waiting on it
                return
            try:
                with socket.socket(fileno=dup) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _call(self, head: int | None) -> None:
        try:
            if self._callback(head) is False:  # the store it served was collected: nothing left to wake
                self._stopping.set()
        except Exception:  # noqa: BLE001 - a hint failing is never fatal; the next read catches up
            logger.debug("crewai_rust memory: background catch-up on %s failed", self._location, exc_info=True)

    def run(self) -> None:
        import psycopg

        while not self._stopping.is_set():
            try:
                conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5,
                                       application_name="crewai_rust-memory-listen")
            except Exception:  # noqa: BLE001 - the server is away; try again shortly
                self._stopping.wait(0.5)
                continue
            with self._conn_lock:
                self._conn = conn
            try:
                if self._stopping.is_set():  # stop() ran before the connection was published
                    continue
                conn.execute(f'LISTEN "{self._channel}"')
                self.connects += 1
                self._call(None)  # what was committed while we were not listening
                while not self._stopping.is_set():
                    got = False
                    head: int | None = 0
                    # stop_after=1: the generator returns at the first wake-up (with any that came in the
                    # same packet) instead of collecting 64 or waiting out the timeout, so the catch-up
                    # starts within a round trip of the commit; wake-ups during it come at the next call.
                    for note in conn.notifies(timeout=_LISTEN_TIMEOUT, stop_after=1):
                        got = True
                        head = _announced(note.payload, head)
                    if got:
                        self._call(head)
                    elif conn.closed:
                        break
            except Exception:  # noqa: BLE001 - connection lost: reconnect and catch up
                logger.debug("crewai_rust memory: listener on %s lost its connection", self._location)
            finally:
                with self._conn_lock:
                    self._conn = None
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass

