"""Memory-mapped vector snapshots: open a large store without reading its vectors back from the database.

Why: a store used to open by reading every embedding back (SQLite BLOBs, PostgreSQL
binary COPY): 0.2 s for 10k x 3072, seconds for 100k x 1536. A snapshot is the
in-RAM index (float32 matrix, row order, ids, sequence numbers, filter columns) as
it was at one change number, its *stamp*. Opening maps the file (``MAP_PRIVATE``:
the index's own later writes stay in this process), checks it and replays only the
change-log entries after the stamp.

Why it is safe:

* a snapshot is written to a temp file, fsynced and renamed over the old one, so a
  SIGKILL at any moment leaves the old file or the new one, never a mix (a killed
  writer's temp file is removed by the next writer);
* the stamp is the change number the index had applied when it was frozen, and the
  index is exactly the store at that number (or newer rows whose log entries follow
  it): replaying the log from the stamp yields the current store, deletes included;
* every byte is covered: the header by blake2b, the data (columns and matrix) by
  blake2b over the wrapping sums of its 64-bit words per 32 KiB block (one numpy
  pass, about as fast as reading the data); the header names the store (a random id
  kept in the store's ``meta``) and its dimension. A damaged, truncated or foreign
  file, one stamped past the database's head (a restored backup), or a log trimmed
  past the stamp, means the store loads from the database and a new snapshot is written;
* a database restored from a backup and then written past the stamp has a change head
  beyond it and log entries at the old numbers, but not the same ones. So before the
  file is written, its random *token* goes into the store's ``meta`` with the stamp,
  in a commit after every change up to the stamp. A backup that holds the token holds
  all those changes, so replaying from the stamp is exact; one taken before lacks the
  token and the file is refused. The file that a new one replaces has its token
  removed from ``meta`` (a killed writer can leave one orphan row, never a wrong answer).

The file also holds the index's float16 shadow when the index keeps one (format 2): the
scaled halves after the float32 matrix (both regions with spare rows) and its three bound
columns among the others, under a digest of their own, so an index reopened from the file
runs its first low-precision search without rebuilding the shadow (about twenty float32
scans). A format-1 file (no shadow, no explicit capacity) is refused once and rewritten.

Only this process's writer touches the file, through rename: a mapped file is
never truncated or rewritten in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._env import env_flag, env_int, env_str
from ._deferred_shadow import DeferredShadow

logger = logging.getLogger("crewai_rust.memory")

SNAPSHOT_ENV = "CREWAI_RUST_MEMORY_SNAPSHOT"
SNAPSHOT_DIR_ENV = "CREWAI_RUST_MEMORY_SNAPSHOT_DIR"
SNAPSHOT_AFTER_ENV = "CREWAI_RUST_MEMORY_SNAPSHOT_AFTER"
#: Changes (rows loaded from the database, or log entries applied) before a new snapshot is written.
DEFAULT_AFTER = 1000
#: File name beside a SQLite store's database.
SQLITE_NAME = "crewai_rust_memory.snapshot"
#: The store's ``meta`` key holding the random id a snapshot must name.
STORE_ID_KEY = "snapshot_store_id"
#: ``meta`` key prefix of a snapshot's token (value: its stamp); see the module docstring.
TOKEN_KEY_PREFIX = "snapshot_token:"

MAGIC = b"CRWRSNAP"
#: 2: the float16 shadow (halves region, bound columns, ``shadow_digest``) and an explicit ``cap``.
VERSION = 2
_PREFIX = struct.Struct("<8sII32s")  # magic, version, header length, blake2b-256 of the header
BLOCK = 32768  # checksum block and alignment of the data and the matrix
_WORDS = BLOCK // 8
_COLUMNS = (("seqs", "<i8"), ("sqnorms", "<f4"), ("scope_codes", "<i4"), ("category_codes", "<i4"),
            ("metadata_codes", "<i4"))
#: The shadow's bound columns (``VectorIndex`` attribute names), present when the file holds a shadow.
_SHADOW_COLUMNS = (("inv_scale", "<f4"), ("shadow_norm", "<f4"), ("shadow_err", "<f4"))
_CHUNK = 16 << 20  # bytes written between two looks at the cancel flag
_STALE_TEMP_SECONDS = 3600.0


class SnapshotRejected(Exception):
    """The file exists but cannot serve this store; the message says why (for stats and the log)."""


@dataclass
class Frozen:
    """What a snapshot holds: the index at ``stamp``, arrays shared (write-protected) with the live index."""

    stamp: int
    n: int
    dim: int
    matrix: np.ndarray  # at least n rows
    columns: dict[str, np.ndarray]
    ids: list[str]
    tables: dict[str, list[str]]
    #: the float16 shadow's first n rows (halves, inv_scale, norm, err) when the index keeps one
    shadow: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


@dataclass
class Restored:
    """A checked snapshot, mapped: the matrix is a private mapping of the file with ``cap`` rows."""

    stamp: int
    n: int
    dim: int
    matrix: np.ndarray
    columns: dict[str, np.ndarray]
    ids: list[str]
    tables: dict[str, list[str]]
    #: (halves [cap, dim] float16, a private mapping like the matrix; inv_scale, norm, err [n]), checked
    #: unless ``shadow_check`` is set
    shadow: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    #: with ``read_snapshot(defer_shadow=True)``: checks the halves (True when they hold what was written)
    shadow_check: Callable[[], bool] | None = None


@dataclass
class SnapshotStats:
    """What the snapshot machinery did in this process (tests and ``stats()`` read it)."""

    restored: int = 0  # opens served from a snapshot
    restored_rows: int = 0  # rows mapped by the latest of them
    restored_shadow: bool = False  # the latest of them took the file's float16 shadow too
    replayed: int = 0  # log entries applied after the stamp by the latest of them
    rejected: list[str] = field(default_factory=list)  # why a file present was not used
    full_loads: int = 0  # loads that read every vector from the database
    written: int = 0
    write_errors: int = 0
    last_stamp: int | None = None  # stamp of the latest snapshot written or restored

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()}


# -- the file format --------------------------------------------------------------------
def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def block_sums(words: np.ndarray) -> np.ndarray:
    """Wrapping uint64 sum of each 32 KiB block (``words`` is a whole number of blocks)."""
    return words.reshape(-1, _WORDS).sum(axis=1, dtype=np.uint64)


#: Words summed by one thread at least when an open checks a file (below this one thread does it all).
_PARALLEL_WORDS = 2 << 20  # 16 MiB


BlockSums = Callable[[np.ndarray], np.ndarray]


def compiled_block_sums(module: Any) -> BlockSums:
    """:func:`block_sums` by the Rust twin (``snapshot_block_sums``) on the scan workers."""
    threads = int(module.vector_threads())

    def sums(words: np.ndarray) -> np.ndarray:
        return np.frombuffer(module.snapshot_block_sums(words, _WORDS, threads), dtype="<u8")

    return sums


def checked_sums(*regions: np.ndarray, compiled: BlockSums | None = None) -> list[np.ndarray]:
    """:func:`block_sums` of each region (whole blocks of words), by ``compiled`` or by up to 4 threads.

    Opening a large store is checking its bytes: numpy's reduction releases the GIL,
    and two cores read a mapped file almost twice as fast as one (8 ms instead of
    15 ms for the 200 MB of a 10k x 3072 store with its shadow, on the Xeon); the Rust
    twin reads it as fast as memory streams.
    """
    if compiled is not None:
        return [compiled(r) for r in regions]
    total = sum(len(r) for r in regions)
    threads = max(1, min(4, os.cpu_count() or 1, total // _PARALLEL_WORDS))
    if threads == 1:
        return [block_sums(r) for r in regions]
    per = -(-total // threads // _WORDS) * _WORDS  # words per part, whole blocks
    parts: list[tuple[int, int, int]] = []  # (region, start, end)
    for k, region in enumerate(regions):
        for start in range(0, len(region), per):
            parts.append((k, start, min(start + per, len(region))))
    out: list[np.ndarray | None] = [None] * len(parts)

    def work(i: int) -> None:
        k, start, end = parts[i]
        out[i] = block_sums(regions[k][start:end])

    helpers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(1, len(parts))]
    for t in helpers:
        t.start()
    try:
        work(0)
    finally:
        for t in helpers:
            t.join()
    return [np.concatenate([got for (k, _, _), got in zip(parts, out) if k == want] or [np.zeros(0, np.uint64)])
            for want in range(len(regions))]


def _matrix_sums(matrix: np.ndarray) -> np.ndarray:
    """:func:`block_sums` of the matrix bytes zero-padded to a whole block, without copying the bulk."""
    raw = matrix.reshape(-1).view(np.uint8)
    whole = len(raw) // BLOCK * BLOCK
    head = block_sums(raw[:whole].view(np.uint64)) if whole else np.zeros(0, dtype=np.uint64)
    if whole == len(raw):
        return head
    tail = np.zeros(BLOCK, dtype=np.uint8)
    tail[: len(raw) - whole] = raw[whole:]
    return np.concatenate([head, block_sums(tail.view(np.uint64))])


def _digest(sums: np.ndarray) -> str:
    return hashlib.blake2b(sums.astype("<u8").tobytes(), digest_size=32).hexdigest()


def _layout(frozen: Frozen) -> tuple[bytes, dict[str, Any]]:
    """(data bytes before the matrix, header fields): columns then the tables' JSON, padded to a block."""
    parts: list[bytes] = []
    sections: dict[str, list[int]] = {}
    offset = 0
    n = frozen.n
    named = list(_COLUMNS)
    columns = dict(frozen.columns)
    if frozen.shadow is not None:
        named += _SHADOW_COLUMNS
        columns.update(zip((name for name, _ in _SHADOW_COLUMNS), frozen.shadow[1:]))
    for name, dtype in named:
        blob = np.ascontiguousarray(columns[name][:n], dtype=dtype).tobytes()
        sections[name] = [offset, len(blob)]
        blob += b"\0" * (_round_up(len(blob), 64) - len(blob))
        parts.append(blob)
        offset += len(blob)
    # ensure_ascii: ids and scopes may hold lone surrogates, which UTF-8 cannot carry
    tables = json.dumps({"ids": frozen.ids, **frozen.tables}, ensure_ascii=True).encode("ascii")
    sections["tables"] = [offset, len(tables)]
    parts.append(tables)
    offset += len(tables)
    data = b"".join(parts)
    data += b"\0" * (_round_up(max(len(data), 1), BLOCK) - len(data))
    return data, {"sections": sections, "matrix_offset": len(data)}


def _prefix(header: dict[str, Any]) -> bytes:
    text = json.dumps(header, sort_keys=True).encode("ascii")
    return _PREFIX.pack(MAGIC, VERSION, len(text), hashlib.blake2b(text, digest_size=32).digest()) + text


def _region(rows: int, row_bytes: int) -> int:
    """Bytes of a matrix region with ``rows`` rows: whole blocks, so the next region stays aligned."""
    return _round_up(max(rows * row_bytes, 1), BLOCK)


def _write_array(out: Any, array: np.ndarray, cancel: threading.Event | None) -> bool:
    """Write ``array``'s bytes in chunks, looking at ``cancel`` between them; False when cancelled."""
    raw = array.reshape(-1).view(np.uint8)
    for start in range(0, len(raw), _CHUNK):
        if cancel is not None and cancel.is_set():
            return False
        view = memoryview(raw[start : start + _CHUNK].data)
        while len(view):
            view = view[out.write(view) :]
    return True


def write_snapshot(path: Path, frozen: Frozen, store_id: str, cancel: threading.Event | None = None,
                   token: str | None = None) -> bool:
    """Write ``frozen`` to ``path`` atomically (temp file, fsync, rename, fsync of the directory).

    Returns False when cancelled (nothing is left behind). Spare rows (an eighth)
    are a hole at the end of the matrix (and of the shadow's halves), so the index
    can grow in the mapping without copying it.
    """
    data, fields = _layout(frozen)
    n, dim = frozen.n, frozen.dim
    matrix = np.ascontiguousarray(frozen.matrix[:n], dtype=np.float32)
    mbytes = n * dim * 4
    sums = np.concatenate([block_sums(np.frombuffer(data, dtype=np.uint64)), _matrix_sums(matrix)])
    cap = n + max(n // 8, 64)
    header = {
        "format": VERSION, "store": store_id, "stamp": int(frozen.stamp), "n": n, "dim": dim, "cap": cap,
        "matrix_bytes": mbytes, "digest": _digest(sums), "written_at": time.time(), **fields,
    }
    halves = None
    if frozen.shadow is not None:
        halves = np.ascontiguousarray(frozen.shadow[0][:n], dtype="<f2")
        # the halves region follows the matrix region (cap rows, whole blocks)
        header["halves_offset"] = fields["matrix_offset"] + _region(cap, dim * 4)
        header["shadow_digest"] = _digest(_matrix_sums(halves))
    if token is not None:
        header["token"] = token
    prefix = _prefix(header)
    data_offset = _round_up(len(prefix), BLOCK)
    header_pad = b"\0" * (data_offset - len(prefix))
    matrix_offset = data_offset + fields["matrix_offset"]
    size = matrix_offset + _region(cap, dim * 4)
    if halves is not None:
        size += _region(cap, dim * 2)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the file holds the embeddings
    remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    done = False
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            out.write(prefix + header_pad)
            out.write(data)
            if not _write_array(out, matrix, cancel):
                return False
            if halves is not None:
                out.seek(data_offset + header["halves_offset"])  # the matrix's spare rows stay a hole
                if not _write_array(out, halves, cancel):
                    return False
            out.truncate(size)  # zeros: padding blocks and the spare rows (holes)
            os.fsync(out.fileno())
        if cancel is not None and cancel.is_set():
            return False
        os.replace(tmp, path)
        done = True
        _fsync_dir(path.parent)
        return True
    finally:
        if not done:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(path: Path) -> int:
    """Delete temp files left by killed writers (their process is gone, or they are an hour old)."""
    removed = 0
    try:
        entries = list(path.parent.glob(f".{path.name}.*.tmp"))
    except OSError:
        return 0
    for entry in entries:
        parts = entry.name[len(path.name) + 2 :].split(".")
        try:
            pid = int(parts[0])
        except (ValueError, IndexError):
            continue
        try:
            old = time.time() - entry.stat().st_mtime > _STALE_TEMP_SECONDS
        except OSError:
            continue
        if pid != os.getpid() and (old or not _alive(pid)):
            try:
                entry.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def read_header(path: Path) -> dict[str, Any] | None:
    """The checked header of the file at ``path``, or None (absent or unreadable): cheap, no data read."""
    try:
        with open(path, "rb") as f:
            head = f.read(_PREFIX.size)
            if len(head) < _PREFIX.size:
                return None
            magic, version, length, digest = _PREFIX.unpack(head)
            if magic != MAGIC or version != VERSION or length > 1 << 20:
                return None
            text = f.read(length)
    except OSError:
        return None
    if len(text) != length or hashlib.blake2b(text, digest_size=32).digest() != digest:
        return None
    try:
        header = json.loads(text)
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def read_snapshot(path: Path, store_id: str, dim: int | None, head: int,
                  recorded: Callable[[str], str | None] | None = None, shadow: bool = False,
                  sums: BlockSums | None = None, defer_shadow: bool = False) -> Restored:
    """Map and check the snapshot at ``path`` for a store with this id, dimension and change head.

    ``recorded(token)``: the stamp the database holds for a snapshot token (None when it
    holds none); when given, a file whose token the database does not hold with its stamp
    is refused (a restored backup older than the file, or a file without a token).
    ``shadow``: also map and check the file's float16 shadow, when it holds one (a damaged
    shadow refuses the whole file: it is rewritten whole). ``defer_shadow``: map the shadow but
    leave its halves unchecked: ``Restored.shadow_check`` checks them (``_deferred_shadow``).
    ``sums``: the compiled :func:`block_sums` (None: numpy's).

    Raises FileNotFoundError when there is none and :class:`SnapshotRejected` when it cannot serve.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        if size < _PREFIX.size:
            raise SnapshotRejected(f"truncated ({size} bytes)")
        # copy-on-write (MAP_PRIVATE where there is one): the index's own writes never reach the file
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    magic, version, length, digest = _PREFIX.unpack_from(mm, 0)
    if magic != MAGIC:
        raise SnapshotRejected("not a crewai_rust snapshot")
    if version != VERSION:
        raise SnapshotRejected(f"format {version}, expected {VERSION}")
    if _PREFIX.size + length > size:
        raise SnapshotRejected("truncated header")
    text = mm[_PREFIX.size : _PREFIX.size + length]
    if hashlib.blake2b(text, digest_size=32).digest() != digest:
        raise SnapshotRejected("header checksum mismatch")
    try:
        header = json.loads(text)
        n, sdim, stamp = int(header["n"]), int(header["dim"]), int(header["stamp"])
        mbytes, sections, cap = int(header["matrix_bytes"]), header["sections"], int(header["cap"])
        data_offset = _round_up(_PREFIX.size + length, BLOCK)
        matrix_offset = data_offset + int(header["matrix_offset"])
        halves_at = header.get("halves_offset")
        halves_offset = None if halves_at is None else data_offset + int(halves_at)
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotRejected(f"unreadable header ({exc})") from None
    if header.get("store") != store_id:
        raise SnapshotRejected("written for another store")
    if dim is not None and sdim != dim:
        raise SnapshotRejected(f"dimension {sdim}, the store holds {dim}")
    if stamp > head:
        raise SnapshotRejected(f"stamped {stamp}, past the store's change head {head} (a restored backup?)")
    if recorded is not None:
        token = header.get("token")
        if not isinstance(token, str):
            raise SnapshotRejected("written without a database token (an earlier version)")
        if recorded(token) != str(stamp):
            raise SnapshotRejected(
                f"stamped {stamp} but the database does not hold its token (restored from a backup older than the file?)"
            )
    if n < 0 or sdim <= 0 or mbytes != n * sdim * 4 or matrix_offset % BLOCK or cap < n:
        raise SnapshotRejected("inconsistent header")
    end = matrix_offset + _region(cap, sdim * 4)
    if halves_offset is not None:
        if halves_offset != end:
            raise SnapshotRejected("inconsistent header")
        end += _region(cap, sdim * 2)
    if size < end:  # the spare rows' holes too: the mapping covers them
        raise SnapshotRejected(f"truncated ({size} of {end} bytes)")
    checked_end = matrix_offset + _round_up(mbytes, BLOCK)
    use_shadow = shadow and halves_offset is not None
    regions = [np.frombuffer(mm, dtype="<u8", count=(checked_end - data_offset) // 8, offset=data_offset)]
    halves_words = None
    if use_shadow and halves_offset is not None:
        halves_words = np.frombuffer(mm, dtype="<u8", count=_round_up(n * sdim * 2, BLOCK) // 8,
                                     offset=halves_offset)
        if not defer_shadow:
            regions.append(halves_words)
    checked = checked_sums(*regions, compiled=sums)
    del regions
    if _digest(checked[0]) != header.get("digest"):
        raise SnapshotRejected("data checksum mismatch (damaged)")
    named = list(_COLUMNS)
    shadow_check = None
    if use_shadow:
        want_digest = header.get("shadow_digest")
        if defer_shadow and halves_words is not None:
            words = halves_words

            def shadow_check() -> bool:
                return _digest(checked_sums(words, compiled=sums)[0]) == want_digest
        elif _digest(checked[1]) != want_digest:
            raise SnapshotRejected("shadow checksum mismatch (damaged)")
        named += _SHADOW_COLUMNS
    columns: dict[str, np.ndarray] = {}
    for name, dtype in named:
        start, nbytes = sections[name]
        if nbytes != n * np.dtype(dtype).itemsize:
            raise SnapshotRejected(f"inconsistent column {name}")
        columns[name] = np.frombuffer(mm, dtype=dtype, count=n, offset=data_offset + start).astype(
            np.dtype(dtype).newbyteorder("="))
    start, nbytes = sections["tables"]
    tables = json.loads(mm[data_offset + start : data_offset + start + nbytes])
    ids = tables.pop("ids")
    if len(ids) != n:
        raise SnapshotRejected("inconsistent ids")
    matrix = np.frombuffer(mm, dtype=np.float32, count=cap * sdim, offset=matrix_offset).reshape(cap, sdim)
    restored_shadow = None
    if use_shadow and halves_offset is not None:
        halves = np.frombuffer(mm, dtype=np.float16, count=cap * sdim, offset=halves_offset).reshape(cap, sdim)
        inv_scale, norm, err = (columns.pop(name) for name, _ in _SHADOW_COLUMNS)
        restored_shadow = (halves, inv_scale, norm, err)
    return Restored(stamp, n, sdim, matrix, columns, ids, tables, restored_shadow, shadow_check)


# -- where snapshots go ---------------------------------------------------------------------
def default_cache_dir() -> Path:
    """The per-user cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``) for PostgreSQL stores' snapshots."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base else Path.home() / ".cache"
    return root / "crewai_rust" / "memory-snapshots"


def snapshot_path(store: Any, directory: str | os.PathLike[str] | None) -> Path:
    """The snapshot file of ``store``: beside a SQLite database unless ``directory`` is given; for
    PostgreSQL in ``directory``, else ``CREWAI_RUST_MEMORY_SNAPSHOT_DIR``, else the cache directory, named by a hash of the server, database, user and namespace
    (``store.location`` holds no password, and the name reveals none of it)."""
    db_path = getattr(store, "path", None)
    if directory is None and db_path is not None:
        return Path(db_path).with_name(SQLITE_NAME)
    if directory is None:
        directory = env_str(SNAPSHOT_DIR_ENV)
    root = Path(directory) if directory is not None else default_cache_dir()
    key = hashlib.sha256(str(store.location).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return root / f"{key}.snapshot"


def store_id(store: Any) -> str:
    """The store's random snapshot id, created on first use (a race leaves one winner; a loser's file is ignored)."""
    value = store.get_meta(STORE_ID_KEY)
    if value is None:
        store.set_meta(STORE_ID_KEY, uuid.uuid4().hex)
        value = store.get_meta(STORE_ID_KEY)
    return str(value)


@dataclass(frozen=True)
class SnapshotSettings:
    """``snapshot`` (on/off), ``directory`` (None = beside SQLite / the cache dir), ``after`` (changes)."""

    enabled: bool
    directory: str | None
    after: int

    @staticmethod
    def resolve(enabled: bool | None, directory: str | os.PathLike[str] | None, after: int | None) -> SnapshotSettings:
        on = env_flag(SNAPSHOT_ENV, True) if enabled is None else bool(enabled)
        where = directory
        if after is None:
            after = env_int(SNAPSHOT_AFTER_ENV, DEFAULT_AFTER, minimum=1)
        elif not isinstance(after, int) or isinstance(after, bool) or after < 1:
            raise ValueError(f"snapshot_after must be a positive integer, got {after!r}")
        return SnapshotSettings(bool(on), None if where is None else os.fspath(where), after)


# -- the keeper: one per open store -----------------------------------------------------------
class SnapshotKeeper:
    """Restores the index from the snapshot on open and writes a new one in the background after
    ``after`` changes. ``lock`` is the storage's lock: the index is frozen and thawed under it."""

    def __init__(self, store: Any, settings: SnapshotSettings, lock: Any,
                 shadow: Callable[[int], bool] | None = None,
                 shadow_builder: Callable[[np.ndarray], Any] | None = None,
                 sums: BlockSums | None = None, shadow_can_wait: Callable[[], bool] | None = None) -> None:
        self.path = snapshot_path(store, settings.directory)
        self._sums = sums  # the compiled file check, with the Rust twin
        #: whether an index of so many float32 bytes keeps the float16 shadow (``KernelSet.wants_shadow``)
        self._wants_shadow = shadow
        self._shadow_builder = shadow_builder
        #: whether the store's searches scan float32 first (``KernelSet.shadow_can_wait``)
        self._shadow_can_wait = shadow_can_wait
        self.after = settings.after
        self.stats = SnapshotStats()
        self.pending = 0  # changes the file on disk does not hold
        self._store_id = store_id(store)
        self._store = store
        self._lock = lock
        self._cancel = threading.Event()
        self._writer: threading.Thread | None = None
        self._idle = threading.Event()  # set while no write holds frozen arrays
        self._idle.set()
        self.last_rejected = False  # the latest restore found a file it could not use
        self._deferred: DeferredShadow | None = None  # the latest restore's shadow check

    # -- open --------------------------------------------------------------------------
    def restore(self, index: Any, store: Any) -> int | None:
        """Put the snapshot's rows into ``index``; its stamp, or None (the reason is in ``stats.rejected``).

        Where a store of the file's size keeps the float16 shadow (the keeper's ``shadow``
        predicate), the file's shadow, when it holds one, is adopted too: at once when the
        store scans it from its first search (``shadow=True``); else (``shadow_can_wait``) checked
        on a thread and taken over after the open (``_deferred_shadow``), which then checks the
        float32 side only.
        """
        self.last_rejected = False
        header = read_header(self.path)
        want = False
        shadow = self._wants_shadow
        if shadow is not None and header is not None:
            try:
                want = shadow(int(header["n"]) * int(header["dim"]) * 4)
            except (KeyError, TypeError, ValueError):
                want = False
        defer = want and not index.shadow_enabled and self._shadow_can_wait is not None and self._shadow_can_wait()
        try:
            got = read_snapshot(self.path, self._store_id, store.get_dim(), store.head(),
                                lambda token: store.get_meta(TOKEN_KEY_PREFIX + token), shadow=want,
                                sums=self._sums, defer_shadow=defer)
        except FileNotFoundError:
            return None
        except (SnapshotRejected, OSError, ValueError, KeyError, TypeError) as exc:
            reason = str(exc) if isinstance(exc, SnapshotRejected) else f"unreadable ({type(exc).__name__}: {exc})"
            self.stats.rejected.append(reason)
            self.last_rejected = True
            logger.info("crewai_rust memory: snapshot %s not used: %s; loading from the database", self.path, reason)
            return None
        deferred = None
        if got.shadow is not None and got.shadow_check is not None:
            deferred = DeferredShadow(got.shadow, got.n, got.shadow_check, self._shadow_taken)
        try:
            index.adopt(got.matrix, got.n, got.columns, got.ids, got.tables, None if deferred else got.shadow)
        except ValueError as exc:
            self.stats.rejected.append(f"inconsistent ({exc})")
            self.last_rejected = True
            index.clear(None)
            return None
        if deferred is not None:
            index.defer_shadow(deferred)
            deferred.start()
            self._deferred = deferred
        self.stats.restored += 1
        self.stats.restored_rows = got.n
        self.stats.restored_shadow = got.shadow is not None and deferred is None
        self.stats.last_stamp = got.stamp
        self.pending = 0
        return got.stamp

    def _shadow_taken(self, ok: bool) -> None:
        """The index took the deferred shadow over, or found it damaged (lock held): then the file is rewritten."""
        if ok:
            self.stats.restored_shadow = True
            return
        self.stats.rejected.append("shadow checksum mismatch (damaged)")
        self.last_rejected = True  # the next write replaces the file, whatever its stamp
        self.pending = max(self.pending, self.after)
        logger.info("crewai_rust memory: the float16 shadow in snapshot %s is damaged; built from the rows", self.path)

    def outdated(self) -> None:
        """The snapshot just restored is older than the change log reaches: a full load follows."""
        self.stats.restored -= 1
        self.stats.rejected.append("the change log was trimmed past its stamp")
        self.last_rejected = True

    def replayed(self, entries: int) -> None:
        """The log entries applied right after a restore (counted apart, for tests and stats)."""
        self.stats.replayed = entries
        self.pending += entries

    def full_load(self, rows: int) -> None:
        """Every vector came from the database: all of them are pending; a rejected file is rebuilt now."""
        self.stats.full_loads += 1
        self.pending = max(rows, self.after) if self.last_rejected else rows

    def applied(self, entries: int) -> None:
        self.pending += entries

    # -- write -----------------------------------------------------------------------------
    def due(self) -> bool:
        return self.pending >= self.after and self._idle.is_set() and not self._cancel.is_set()

    @property
    def busy(self) -> bool:
        """A write (background or :meth:`begin`/:meth:`finish`) holds frozen arrays of the index."""
        return not self._idle.is_set()

    @property
    def closing(self) -> bool:
        return self._cancel.is_set()

    def begin(self, index: Any, stamp: int, force: bool = False) -> tuple[Frozen, int, bool] | None:
        """Freeze ``index`` at ``stamp`` for one write (caller holds the storage lock); None when one runs."""
        if self.busy or index.dim is None or self._cancel.is_set():
            return None
        self._idle.clear()
        force = force or self.last_rejected  # a rejected file is replaced, whatever its stamp
        self.last_rejected = False
        return index.freeze(stamp), self.pending, force

    def start(self, index: Any, stamp: int) -> bool:
        """:meth:`begin`, then :meth:`finish` in a background (daemon) thread: exit never waits for it."""
        job = self.begin(index, stamp)
        if job is None:
            return False
        self._writer = threading.Thread(target=self.finish, args=(index, job),
                                        name="crewai_rust-memory-snapshot", daemon=True)
        self._writer.start()
        return True

    def finish(self, index: Any, job: tuple[Frozen, int, bool]) -> bool:
        """Write the frozen rows (without the storage lock), then thaw them under it. True when the file holds them."""
        frozen, counted, force = job
        ok = False
        try:
            previous = read_header(self.path)
            current = None if force else previous
            if current is not None and current.get("store") == self._store_id and int(current.get("stamp", -1)) >= frozen.stamp:
                ok = True  # another process wrote this far already
            else:
                ok = self._with_shadow(frozen) and self._write_with_token(frozen, previous)
        except Exception as exc:  # noqa: BLE001 - a snapshot is an optimisation: never fail the store for it
            self.stats.write_errors += 1
            logger.warning("crewai_rust memory: could not write the snapshot %s: %s", self.path, exc)
        finally:
            with self._lock:
                index.thaw(frozen)
                # a failure waits for as many changes again before retrying
                self.pending = max(0, self.pending - counted)
                self._idle.set()
        return ok

    def _with_shadow(self, frozen: Frozen) -> bool:
        """Give ``frozen`` the shadow a store of its size keeps, when the index has not built it yet
        (it builds one lazily): the next open then searches at once. False when cancelled."""
        wants, build = self._wants_shadow, self._shadow_builder
        if frozen.shadow is not None or wants is None or build is None or not frozen.n:
            return True
        if not wants(frozen.n * frozen.dim * 4):
            return True
        n = frozen.n
        halves = np.empty((n, frozen.dim), dtype=np.float16)
        bounds = [np.empty(n, dtype=np.float32) for _ in range(3)]
        for start in range(0, n, 4096):  # in blocks: the cancel flag is looked at between them
            if self._cancel.is_set():
                return False
            end = min(start + 4096, n)
            got = build(np.ascontiguousarray(frozen.matrix[start:end]))
            halves[start:end] = got[0]
            for column, part in zip(bounds, got[1:]):
                column[start:end] = part
        frozen.shadow = (halves, bounds[0], bounds[1], bounds[2])
        return True

    def _write_with_token(self, frozen: Frozen, previous: dict[str, Any] | None) -> bool:
        """Record a new token with the stamp in the database, write the file naming it, drop the replaced file's token."""
        token = uuid.uuid4().hex
        key = TOKEN_KEY_PREFIX + token
        # Committed after every change up to the stamp (the index applied them): see the module docstring.
        self._store.set_meta(key, str(frozen.stamp))
        ok = False
        try:
            ok = write_snapshot(self.path, frozen, self._store_id, self._cancel, token=token)
        finally:
            if not ok and (read_header(self.path) or {}).get("token") != token:
                self._store.delete_meta(key)  # no file names it (an error after the rename keeps it)
        if not ok:
            return False  # cancelled: nothing was written
        self.stats.written += 1
        self.stats.last_stamp = frozen.stamp
        old = None if previous is None or previous.get("store") != self._store_id else previous.get("token")
        if isinstance(old, str) and old != token:
            self._store.delete_meta(TOKEN_KEY_PREFIX + old)
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no write runs (tests, ``save_snapshot``); False on timeout."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop a running write (its temp file is removed) and wait briefly; call without the storage lock."""
        self._cancel.set()
        self.wait(timeout=5.0)
        if self._deferred is not None:
            self._deferred.join(timeout=5.0)


def describe(keeper: SnapshotKeeper | None) -> dict[str, Any]:
    """The ``snapshot`` entry of ``stats()``."""
    if keeper is None:
        return {"enabled": False}
    return {"enabled": True, "path": str(keeper.path), "after": keeper.after, **keeper.stats.as_dict()}
