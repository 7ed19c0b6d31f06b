"""Memory storage: stock LanceDBStorage vs RustMemoryStorage (python twin, rust twin), one process.

Cases: per-query search (limit 10) at several store sizes and dimensions, with
and without a selective scope filter (5% of records); save of 1, 100 and 1000
records per call (batches built before the clock starts); opening an existing store (reading every
vector back, and mapping the vector snapshot) and the first search after it; ``Memory.recall``
shallow and deep at 1k and 10k (scripted LLM, hashed embedder; ours under ``crewai_rust.patch()``, stock unpatched);
and the scan rate of the unfiltered rust search beside
this machine's memory-bandwidth floor (performance-notes: about 20 GB/s on one
core, 37 GB/s on both).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import main, measure, row, settle_blas  # noqa: E402

#: Streaming-read floor of this machine (performance-notes.md), bytes per second.
FLOOR_ONE_CORE = 20e9
FLOOR_TWO_CORES = 37e9
TARGET_SCOPE = "/crew/bench/target"
#: LanceDB inserts and scans are too slow to include at these sizes within a bench run.
LANCE_MAX_ROWS = 100_000
#: "NxD,NxD" overrides the sizes of the search cases (e.g. to run only 1000000x384).
SIZES_ENV = "CREWAI_RUST_BENCH_MEMORY_SIZES"


def _offline() -> None:
    from crewai_rust.testing import configure_offline

    configure_offline(os.environ.get("CREWAI_STORAGE_DIR"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import crewai  # noqa: F401


def _record_batches(n: int, dim: int, seed: int = 0, batch: int = 10_000) -> Any:
    """Unit-vector records in batches (a 1M-record list of Python floats would not fit in RAM)."""
    from datetime import datetime, timedelta

    from crewai.memory.types import MemoryRecord

    rng = np.random.default_rng(seed)
    base = datetime(2025, 1, 1)
    for start in range(0, n, batch):
        block = rng.normal(size=(min(batch, n - start), dim)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out = []
        for j, vec in enumerate(block):
            i = start + j
            scope = TARGET_SCOPE if i % 20 == 0 else f"/crew/bench/other{i % 7}"
            out.append(MemoryRecord.model_construct(
                id=f"bench-{seed}-{i}", content=f"benchmark memory number {i}", scope=scope,
                categories=["bench"], metadata={}, importance=0.5, created_at=base + timedelta(seconds=i),
                last_accessed=base, embedding=vec.tolist(), source=None, private=False))
        yield out


def _records(n: int, dim: int, seed: int = 0) -> list[Any]:
    return [r for batch in _record_batches(n, dim, seed) for r in batch]


def save_round_inputs(names: list[str], cases: dict[str, Any], raw: dict[str, Any], batch: int, dim: int,
                      seed: int) -> Callable[[str, int], Callable[[], Any]]:
    """``interleaved_rounds``' ``call`` for save cases: a fresh batch per case and round (a save
    of records already stored would time an update), as rows for a raw writer."""
    from crewai_rust.memory._storage import to_rows

    def prepared(name: str, k: int) -> Callable[[], Any]:
        records = _records(batch, dim, seed=seed + 17 * k + names.index(name))
        if name in raw:
            rows = to_rows(records, dim)
            return lambda: raw[name](rows)
        return lambda: cases[name](records)

    return prepared


def _save_all(store: Any, records: list[Any], batch: int = 5_000) -> None:
    for start in range(0, len(records), batch):
        store.save(records[start : start + batch])


def _sizes(quick: bool) -> list[tuple[int, int]]:
    override = os.environ.get(SIZES_ENV, "").strip()
    if override:
        return [(int(a), int(b)) for a, b in (item.split("x") for item in override.split(","))]
    sizes = [(1_000, 1536), (1_000, 3072), (10_000, 1536), (10_000, 3072)]
    if not quick:
        sizes += [(100_000, 1536), (100_000, 3072), (1_000_000, 384)]
    return sizes


def _search_rows(quick: bool, tmp: Path) -> list[dict[str, Any]]:
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from crewai_rust import speedups_enabled
    from crewai_rust.memory import RustMemoryStorage

    out: list[dict[str, Any]] = []
    for n, dim in _sizes(quick):
        query = np.random.default_rng(99).normal(size=dim).astype(np.float32)
        query = (query / np.linalg.norm(query)).tolist()
        directory = tmp / f"search-{n}-{dim}"
        stores: dict[str, Any] = {}
        if n <= LANCE_MAX_ROWS:
            stores["stock"] = LanceDBStorage(path=directory / "lance")
        else:
            print(f"note: LanceDB skipped at {n} x {dim} (inserting and flat-scanning it takes minutes)",
                  file=sys.stderr)
        stores["python"] = RustMemoryStorage(directory / "ours", use_rust=False)
        for batch in _record_batches(n, dim):
            for store in stores.values():
                store.save(batch)
        if speedups_enabled():
            stores["rust"] = RustMemoryStorage(directory / "ours", use_rust=True)
        big = n * dim >= 50_000_000
        repeat = 5 if big else 15
        for label, prefix in (("all", None), ("scope 5%", TARGET_SCOPE)):
            case = f"{n // 1000}k x {dim} {label}"
            for impl, store in stores.items():
                rounds = min(repeat, 5) if impl == "stock" else repeat
                settle_blas(lambda: None)  # the previous store's BLAS workers must not slow this one
                def searched(s: Any = store, p: str | None = prefix) -> Any:
                    return s.search(query, scope_prefix=p, limit=10)

                warm_up(searched)
                out.append(measure("search", case, impl, searched, repeat=rounds, warmup=0))
        if "rust" in stores:
            out.extend(_scan_rate(stores["rust"], n, dim, query))
        for store in stores.values():
            if hasattr(store, "close"):
                store.close()
        stores.clear()
    return out


def _scan_rate(store: Any, n: int, dim: int, query: list[float]) -> list[dict[str, Any]]:
    """The kernel alone (one and two threads) and a numpy read of the same matrix, as GB/s."""
    from crewai_rust import _speedups

    index = store._index
    q = np.asarray(query, dtype=np.float32)
    nbytes = n * dim * 4
    out = []
    for threads in (1, 2):
        r = measure("scan", f"{n // 1000}k x {dim} kernel {threads}t", "rust",
                    lambda t=threads: _speedups.vector_top_k(index.matrix, index.sqnorms, n, q, None, 36, 0, t),
                    repeat=5)
        floor = nbytes / (FLOOR_ONE_CORE if threads == 1 else FLOOR_TWO_CORES)
        r["gb_per_s"] = nbytes / r["median_s"] / 1e9
        r["floor_s"] = floor
        r["vs_floor"] = r["median_s"] / floor
        out.append(r)
    block = index.matrix[:n]
    r = measure("scan", f"{n // 1000}k x {dim} numpy sum (read)", "numpy", block.sum, repeat=5)
    r["gb_per_s"] = nbytes / r["median_s"] / 1e9
    out.append(r)
    return out


#: (records per save, timed saves): every save inserts fresh ids into a store seeded with 1k records.
#: The batches are built before the clock starts and freed after it stopped (dropping 100 x 3072
#: Python floats costs about 2 ms, the same for every store, and is the caller's, not the save's).
SAVE_BATCHES = ((1, 15), (100, 7), (1000, 3))


def _fresh_batches(size: int, count: int, dim: int, seed: int) -> list[list[Any]]:
    """``count`` batches of ``size`` new records, built before the clock starts."""
    return [_records(size, dim, seed=seed + k) for k in range(count)]


def save_cases(stores: dict[str, Any], dim: int, group: str = "save") -> list[dict[str, Any]]:
    """Save of 1, 100 and 1000 records per call for each store, side by side (shared with the PostgreSQL bench)."""
    out = []
    for size, rounds in SAVE_BATCHES:
        for n, (impl, store) in enumerate(stores.items()):
            prepared = _fresh_batches(size, rounds + 1, dim, seed=10_000 * (size + n) + 1)
            saved: list[list[Any]] = []  # freed after the clock stops: freeing the caller's floats is not the save

            def save(s: Any = store, p: list[list[Any]] = prepared, kept: list[list[Any]] = saved) -> None:
                kept.append(p.pop())
                s.save(kept[-1])

            out.append(measure(group, f"{size} record(s) x {dim} into 1k", impl, save, repeat=rounds, warmup=1))
            del prepared, saved
    return out


def _save_rows(quick: bool, tmp: Path) -> list[dict[str, Any]]:
    """Both twins beside stock LanceDB; the Rust twin encodes a batch in one call (one transaction either way)."""
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from crewai_rust import speedups_enabled
    from crewai_rust.memory import RustMemoryStorage

    dim = 3072
    seed_records = _records(1_000, dim)
    lance = LanceDBStorage(path=tmp / "save" / "lance")
    lance.save(seed_records)
    stores: dict[str, Any] = {"stock": lance, "python": RustMemoryStorage(tmp / "save" / "py", use_rust=False)}
    stores["python"].save(seed_records)
    if speedups_enabled():
        stores["rust"] = RustMemoryStorage(tmp / "save" / "rs", use_rust=True)
        stores["rust"].save(seed_records)
    del seed_records
    out = save_cases(stores, dim)
    for store in stores.values():
        if hasattr(store, "close"):
            store.close()
    out.extend(_encode_rows(dim))
    return out


def _encode_rows(dim: int) -> list[dict[str, Any]]:
    """Validating and encoding embeddings as float32 bytes: one list, and a save batch of 100 in one call."""
    from crewai_rust._selection import speedups_module
    from crewai_rust.memory._records import batch_encoder, encoder

    values = np.random.default_rng(5).normal(size=dim).tolist()
    batch = [np.random.default_rng(k).normal(size=dim).tolist() for k in range(100)]
    encode_python, encode_many_python = encoder(False), batch_encoder(False)
    out = [measure("encode", f"1 embedding x {dim}", "python", lambda: encode_python(values, "e"),
                   repeat=7, number=200),
           measure("encode", f"100 embeddings x {dim}, one call", "python", lambda: encode_many_python(batch),
                   repeat=7, number=10)]
    module = speedups_module()
    if module is not None:
        encode = encoder(True)
        out.append(measure("encode", f"1 embedding x {dim}", "rust", lambda: encode(values, "e"),
                           repeat=7, number=200))
        many = batch_encoder(True)
        out.append(measure("encode", f"100 embeddings x {dim}, one call", "rust", lambda: many(batch),
                           repeat=7, number=10))
    return out


#: Searches, and seconds of them, before the timed rounds: past a new store's kernel calibration
#: (every kernel timed CALIBRATION_CALLS times, and compiled kernels not timed within
#: BLAS_SETTLE_S of numpy's calls), so a row is the steady state a long-running crew sees. The
#: cost of a store's first search is in the "open+search" rows.
WARMUP_SEARCHES = 30
WARMUP_SECONDS = 0.6


def warm_up(fn: Any) -> None:
    """Call ``fn`` at least WARMUP_SEARCHES times and for at least WARMUP_SECONDS."""
    start = time.perf_counter()
    calls = 0
    while calls < WARMUP_SEARCHES or time.perf_counter() - start < WARMUP_SECONDS:
        fn()
        calls += 1


#: Sizes of the "open" cases; "NxD,NxD" overrides (the full run adds 100k x 1536).
OPEN_SIZES_ENV = "CREWAI_RUST_BENCH_MEMORY_OPEN_SIZES"
#: Comma list of the groups to run (search, save, open, recall); all when unset.
GROUPS_ENV = "CREWAI_RUST_BENCH_MEMORY_GROUPS"


def _open_sizes(quick: bool) -> list[tuple[int, int]]:
    override = os.environ.get(OPEN_SIZES_ENV, "").strip()
    if override:
        return [(int(a), int(b)) for a, b in (item.split("x") for item in override.split(","))]
    return [(1_000, 3072), (10_000, 3072)] + ([] if quick else [(100_000, 1536)])


def _open_rows(quick: bool, tmp: Path) -> list[dict[str, Any]]:
    """Open of an existing store: LanceDB; ours reading every vector back (``snapshot=False``) and
    mapping the vector snapshot (``+snapshot``); then the first search after each open."""
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from crewai_rust import speedups_enabled
    from crewai_rust.memory import RustMemoryStorage

    out = []
    for n, dim in _open_sizes(quick):
        base = tmp / f"open-{n}-{dim}"
        lance = LanceDBStorage(path=base / "lance") if n <= LANCE_MAX_ROWS else None
        first = RustMemoryStorage(base / "ours", use_rust=False, snapshot=False)
        for batch in _record_batches(n, dim):
            first.save(batch)
            if lance is not None:
                lance.save(batch)
        first.close()
        # the file holds the float16 shadow where the compiled twin keeps one (format 2)
        compiled = speedups_enabled()
        writer = RustMemoryStorage(base / "ours", use_rust=compiled, shadow=True if compiled else None)
        assert writer.save_snapshot()
        writer.close()
        case = f"existing {n // 1000}k x {dim}"
        query = np.random.default_rng(3).normal(size=dim).astype(np.float32).tolist()
        if lance is not None:
            # LanceDB reads no vector at open (its first search does), so compare open+search too.
            out.append(measure("open", case, "stock", lambda b=base: LanceDBStorage(path=b / "lance"), repeat=3))
            out.append(measure("open+search", case, "stock",
                               lambda b=base: LanceDBStorage(path=b / "lance").search(query, limit=10), repeat=3))
        impls = [("python", False)] + ([("rust", True)] if speedups_enabled() else [])
        for impl, flag in impls:
            # "+snap+f16": shadow=True, so the first search is the low-precision scan of the restored shadow
            variants = [("", False, None), ("+snap", True, None)] + ([("+snap+f16", True, True)] if flag else [])
            for label, snap, shadow in variants:
                def opened(b: Path = base, f: bool = flag, s: bool = snap, sh: bool | None = shadow) -> Any:
                    return RustMemoryStorage(b / "ours", use_rust=f, snapshot=s, snapshot_after=10**9, shadow=sh)

                r = measure("open", case, impl + label, lambda o=opened: o().close(), repeat=3)
                probe = opened()
                r["snapshot_restored"] = probe.snapshot_stats.get("restored", 0)
                r["shadow_restored"] = bool(probe.snapshot_stats.get("restored_shadow", False))
                probe.close()
                out.append(r)

                def first_search(o: Any = opened) -> None:
                    store = o()
                    store.search(query, limit=10)
                    store.close()

                out.append(measure("open+search", case, impl + label, first_search, repeat=3))
        shutil.rmtree(base, ignore_errors=True)
    return out


#: Store sizes of the ``Memory.recall`` cases (the issue's target is deep recall at 10k).
RECALL_SIZES = (1_000, 10_000)


def _recall_rows(quick: bool, tmp: Path) -> list[dict[str, Any]]:
    out = []
    for n in RECALL_SIZES:
        out.extend(_recall_at(n, tmp / f"recall-{n}"))
    return out


def _recall_at(n: int, base: Path) -> list[dict[str, Any]]:
    from crewai.memory.storage.lancedb_storage import LanceDBStorage
    from crewai.memory.unified_memory import Memory

    import crewai_rust
    from crewai_rust import speedups_enabled
    from crewai_rust.memory import RustMemoryStorage
    from crewai_rust.testing import HashEmbedder, ScriptedLLM

    dim = 1536
    records = _records(n, dim)
    for r in records:
        r.scope = "/"
    backends: dict[str, Any] = {"stock": LanceDBStorage(path=base / "lance")}
    backends["python"] = RustMemoryStorage(base / "ours", use_rust=False)
    if speedups_enabled():
        backends["rust"] = RustMemoryStorage(base / "ours", use_rust=True)
    _save_all(backends["stock"], records)
    _save_all(backends["python"], records)
    del records
    for impl in ("python", "rust"):
        if impl in backends:  # caught up and its snapshot written now: no background write during the rounds
            backends[impl].refresh()
            backends[impl].save_snapshot()
    out = []
    for depth in ("shallow", "deep"):
        for impl, storage in backends.items():
            memory = Memory(storage=storage, embedder=HashEmbedder(dim), llm=ScriptedLLM())
            if impl != "stock":  # what a crewai_rust user runs: MEMORY's recall search and RUNTIME's flow paths
                crewai_rust.patch()
            try:
                def recalled(m: Any = memory, d: str = depth) -> Any:
                    return m.recall("benchmark memory", limit=5, depth=d)

                # steady state, as the search rows: every impl warmed up alike (our stores' kernel
                # calibration and float16 shadow build done before the rounds), the previous impl's
                # BLAS workers idle first (the python twin's spinning ones ran all the rust twin's
                # rounds on one thread, uncounted); the first-use cost is in the "open+search" rows
                settle_blas(lambda: None)
                warm_up(recalled)
                out.append(measure("recall", f"{n // 1000}k x {dim} {depth}", impl, recalled, repeat=5, warmup=0))
            finally:
                crewai_rust.unpatch()
    for storage in backends.values():
        if hasattr(storage, "close"):
            storage.close()
    shutil.rmtree(base, ignore_errors=True)
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    _offline()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        path = Path(tmp)
        groups = {g.strip() for g in os.environ.get(GROUPS_ENV, "search,save,open,recall").split(",")}
        rows = []
        for name, fn in (("search", _search_rows), ("save", _save_rows), ("open", _open_rows),
                         ("recall", _recall_rows)):
            if name in groups:
                rows += fn(quick, path)
    rows.append(row("meta", "bench_memory wall time", "all", [time.perf_counter() - started]))
    return rows


def _print_scan(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if "gb_per_s" in r:
            extra = f"  floor {r['floor_s'] * 1e3:.2f} ms  x{r['vs_floor']:.2f} of floor" if "floor_s" in r else ""
            print(f"scan {r['case']:<34} {r['gb_per_s']:6.1f} GB/s{extra}")


if __name__ == "__main__":
    import atexit

    captured: list[dict[str, Any]] = []

    def _run(quick: bool) -> list[dict[str, Any]]:
        captured.extend(run(quick))
        return captured

    atexit.register(lambda: _print_scan(captured))
    main(_run)
