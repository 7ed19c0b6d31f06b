"""Type stubs for the compiled module ``crewai_rust._speedups`` (built from rust/)."""

from typing import TypedDict

from typing_extensions import Self, final

# Each section extends __all__ with its own names (PyO3 sets the module's __all__).
__all__ = ["__version__", "build_info", "cpu_features"]

__version__: str

class _BuildInfo(TypedDict):
    version: str
    profile: str
    cpu_features: list[str]

def build_info() -> _BuildInfo:
    """Version, cargo profile and detected SIMD features of this build."""

def cpu_features() -> list[str]:
    """SIMD features of this CPU that the kernels can use, sorted."""

# --- serialization ---
__all__ += ["AgentMessage", "dumps_many", "loads_many"]
from datetime import datetime
from typing import Any

@final
class AgentMessage:
    """AgentMessage held in Rust (serde + a writer emitting orjson's exact bytes)."""

    implementation: str
    def __new__(
        cls,
        role: str,
        content: str | list[dict[str, Any]] | None = None,
        *,
        id: str | None = None,
        sender: str | None = None,
        task_id: str | None = None,
        name: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Self: ...
    @property
    def id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str | list[dict[str, Any]] | None: ...
    @property
    def sender(self) -> str | None: ...
    @property
    def task_id(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def tool_calls(self) -> list[dict[str, Any]] | None: ...
    @property
    def tool_call_id(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_crewai(self) -> dict[str, Any]: ...
    @staticmethod
    def from_json(text: str | bytes | bytearray | memoryview) -> AgentMessage: ...
    @staticmethod
    def from_dict(doc: dict[str, Any]) -> AgentMessage: ...
    @staticmethod
    def from_crewai(
        message: dict[str, Any],
        *,
        sender: str | None = None,
        task_id: str | None = None,
        id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AgentMessage: ...

def dumps_many(messages: list[AgentMessage]) -> str:
    """One JSON array of Rust-held messages."""

def loads_many(text: str | bytes | bytearray | memoryview) -> list[AgentMessage]:
    """A JSON array of message documents; errors name the index and the field."""
# --- database ---
__all__ += ["SqlitePool", "SqliteConn", "sqlite_version", "sqlite_library_address"]
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_Params = Sequence[Any] | Mapping[str, Any] | None

def sqlite_version() -> str:
    """Version of the SQLite library the Rust twin links (the system ``libsqlite3``)."""

def sqlite_library_address() -> int:
    """Address of ``sqlite3_libversion`` in that library (same as ``_sqlite3``'s when shared)."""

@final
class SqlitePool:
    """r2d2 pool of SQLite connections (system libsqlite3); statements run with the GIL released.

    Values and errors follow stdlib ``sqlite3`` (its exception classes are raised).
    """

    def __new__(
        cls,
        path: str,
        pool_size: int = 4,
        busy_timeout: float = 30.0,
        statement_cache: int = 256,
        synchronous: str = "NORMAL",
    ) -> Self: ...
    def execute(self, sql: str, params: _Params = None) -> tuple[int, int]:
        """(rowcount, lastrowid) of one statement run to completion in autocommit."""
    def executemany(self, sql: str, seq: Iterable[_Params]) -> int:
        """Rows changed by one DML statement per parameter set, in one BEGIN IMMEDIATE transaction."""
    def query(self, sql: str, params: _Params = None, as_dict: bool = False) -> list[Any]: ...
    def query_one(self, sql: str, params: _Params = None, as_dict: bool = False) -> Any: ...
    def checkout(self) -> SqliteConn:
        """Hold one pooled connection (for a transaction) until ``release()``."""
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

@final
class SqliteConn:
    """One pooled connection checked out of a :class:`SqlitePool`."""

    def execute(self, sql: str, params: _Params = None) -> tuple[int, int]: ...
    def executemany(self, sql: str, seq: Iterable[_Params]) -> int: ...
    def query(self, sql: str, params: _Params = None, as_dict: bool = False) -> list[Any]: ...
    def query_one(self, sql: str, params: _Params = None, as_dict: bool = False) -> Any: ...
    @property
    def in_transaction(self) -> bool: ...
    def release(self) -> None:
        """Roll back anything left open and return the connection to the pool."""
# --- tools ---
__all__ += ["tool_canonical", "tool_fingerprint", "tool_call_fingerprint", "ToolGuard"]
from typing import Any

def tool_canonical(value: Any) -> bytes:
    """Canonical encoding of a value (key-order free, numbers by value, long text hashed)."""

def tool_fingerprint(value: Any) -> str:
    """Hex BLAKE2b-128 of ``tool_canonical(value)``."""

def tool_call_fingerprint(agent: Any, tool: Any, args: Any) -> str:
    """Fingerprint of one tool call: the canonical (agent, tool, args) triple."""

class _ToolCounters(TypedDict):
    calls: int
    refusals: dict[str, int]
    seconds: float

@final
class ToolGuard:
    """Loop-guard window per run, call budget per run, counters per tool (thread-safe)."""

    def __new__(
        cls,
        loop_window: int,
        max_repeats: int,
        cycle_repeats: int,
        max_cycle_length: int,
        max_calls: int | None = None,
        max_runs: int = 256,
    ) -> Self: ...
    def admit(self, run: str, fingerprint: str, tool: str) -> str | None: ...
    def note_refusal(self, tool: str, reason: str) -> None: ...
    def add_time(self, tool: str, seconds: float) -> None: ...
    def run_calls(self, run: str) -> int: ...
    def forget_run(self, run: str) -> None: ...
    def reset(self) -> None: ...
    def counters(self) -> dict[str, _ToolCounters]: ...
# --- tasks ---
__all__ += ["Fanout", "fanout_active", "fanout_close"]
from collections.abc import Callable
from contextvars import Context
from typing import Any

@final
class Fanout:
    """Bounded concurrent execution of python callables on the shared Tokio runtime."""

    max_concurrency: int
    def __new__(cls, max_concurrency: int) -> Self: ...
    def submit(self, func: Callable[[], Any], ctx: Context) -> None:
        """Run ``ctx.copy().run(func)`` when a permit is free; errors go to ``sys.unraisablehook``."""
    def run_batch(
        self,
        func: Callable[[Any], Any],
        items: list[Any],
        ctx: Context,
        timeout: float | None,
        return_exceptions: bool,
        on_progress: Callable[[int, int], Any] | None,
    ) -> list[Any]:
        """``[func(item) for item in items]`` concurrently, in input order."""

def fanout_active() -> int:
    """Fan-out jobs that may still take the GIL (the exit hook waits for 0)."""

def fanout_close() -> None:
    """Interpreter exit: batch workers claim no further items."""
# --- memory ---
__all__ += ["vector_top_k", "vector_rerank", "embedding_f32_bytes"]
from typing_extensions import Buffer as _Buffer  # a protocol for type checkers only (collections.abc from 3.12)

def vector_rerank(
    matrix: _Buffer,
    seqs: _Buffer,
    rows: _Buffer,
    query: _Buffer,
    metric: int,
) -> tuple[list[int], list[float]]:
    """Float64 scores of candidate ``rows`` (int64) against ``query`` (float64), GIL released.

    The bits of ``_rerank.rerank`` (numpy's pairwise row sums): (rows, scores) ordered by
    score descending, then by ``seqs`` (int64) ascending.
    """

def vector_top_k(
    matrix: _Buffer,
    sqnorms: _Buffer,
    n: int,
    query: _Buffer,
    rows: _Buffer | None,
    k: int,
    metric: int,
    threads: int = 0,
) -> tuple[list[int], list[float]]:
    """Exact top-k over ``matrix[:n]`` (float32, C-contiguous) or only ``rows`` (int64), GIL released.

    ``metric`` 0 ranks by ``2 x.q - |x|^2`` (L2 order), 1 by ``x.q / |x|`` (cosine order);
    returns (rows, rank scores) best first, ties to the lower row. ``threads`` 0 = automatic.
    """

def embedding_f32_bytes(values: list[float]) -> bytes:
    """Validate an embedding and encode it as float32 bytes; NaN/inf/float32 overflow raise ValueError."""

__all__ += ["embeddings_f32_bytes_many"]

def embeddings_f32_bytes_many(embeddings: list[Any]) -> tuple[list[bytes], int, str]:
    """A save batch's embeddings as float32 bytes: ``(blobs, -1, "")``, or ``(blobs before it, i, reason)`` for the first refused one."""

__all__ += ["embedding_parallel_reads"]

def embedding_parallel_reads() -> int:
    """Save batches this process has read on two threads (a large batch: its floats are cold)."""

__all__ += ["memory_rows"]

def memory_rows(records: list[Any], blobs: list[Any], dim: int, make: Any) -> list[Any | None]:
    """Per record ``make(columns)`` (its ``RecordRow``), or None where the Python loop must build or refuse it."""

__all__ += ["vector_top_k_shadow", "vector_top_k_many", "vector_kernel_info", "vector_stream_read"]
__all__ += ["vector_shadow_rows"]

def vector_top_k_shadow(
    matrix: _Buffer,
    sqnorms: _Buffer,
    n: int,
    query: _Buffer,
    rows: _Buffer | None,
    k: int,
    metric: int,
    halves: _Buffer,
    inv_scale: _Buffer,
    norm: _Buffer,
    err: _Buffer,
    threads: int = 0,
) -> tuple[list[int], list[float]]:
    """``vector_top_k`` scanning a float16 shadow (``halves`` as uint16 bits) with a proven bound,
    re-scoring in float32 only the rows that could reach the top k: identical rows, order and scores."""

def vector_top_k_many(
    matrix: _Buffer,
    sqnorms: _Buffer,
    n: int,
    queries: _Buffer,
    rows: _Buffer | None,
    k: int,
    metric: int,
    threads: int = 0,
) -> list[tuple[list[int], list[float]]]:
    """``vector_top_k`` for every row of ``queries`` (2-D float32) in one pass over the matrix."""

def vector_kernel_info() -> tuple[str, list[tuple[int, float, float, bool, bool]]]:
    """(SIMD tier, [(log2 bytes class, ns/byte on 1 thread, ns/byte on ``vector_threads()``,
    whether 1 thread prefetches, whether all threads do)]) measured so far (the scan plans)."""

__all__ += ["vector_threads"]

def vector_threads() -> int:
    """Threads a parallel scan runs on (caller + persistent workers); the first call starts the workers."""

def vector_stream_read(matrix: _Buffer, n: int, threads: int = 1) -> float:
    """Sum of ``matrix[:n]`` on ``threads`` threads: a pure streaming read (the benchmarks' floor)."""

def vector_shadow_rows(block: _Buffer) -> tuple[bytes, bytes, bytes, bytes]:
    """The float16 shadow of 2-D float32 rows as ``_vector_py.shadow_rows`` builds it:
    (halves as uint16 bytes, inv_scale, norm, err as float32 bytes), little-endian."""

__all__ += ["snapshot_block_sums"]

def snapshot_block_sums(words: _Buffer, block: int, threads: int = 1) -> bytes:
    """Wrapping uint64 sum of each ``block``-word block of 1-D uint64 ``words`` (a short last block
    allowed) on ``threads`` threads, as little-endian uint64 bytes: twin of ``_snapshot.block_sums``."""
