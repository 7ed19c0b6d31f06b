"""Memory on PostgreSQL: stock LanceDBStorage vs RustMemoryStorage on SQLite vs on PostgreSQL.

Side by side in one run (the rust twin for ours; saves also with the python twin): save of
1, 100 and 1000 records, search at
10k x 1536 (it runs in RAM on both of ours), open of an existing 10k (and, without
``--quick``, 100k) x 1536 store (PostgreSQL streams it with binary COPY), and the latency
from a write in this process to its visibility in a search of another process
(median and p99 rows).

The server is a throwaway cluster started like the tests' (``tests/_pg_cluster.py``) but
durable: ``fsync`` and ``synchronous_commit`` on (the tests turn them off for speed).
``CREWAI_RUST_BENCH_PG_URL`` uses an existing server instead.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _harness import main, measure, row  # noqa: E402
from bench_memory import _offline, _records, _save_all, save_cases  # noqa: E402

from crewai_rust.memory._snapshot import SNAPSHOT_DIR_ENV  # noqa: E402

DIM = 1536
URL_ENV = "CREWAI_RUST_BENCH_PG_URL"


#: Comma list of the groups to run (save, search, visible, open); all when unset.
GROUPS_ENV = "CREWAI_RUST_BENCH_MEMORY_GROUPS"


def _server() -> tuple[Any, str]:
    """(cluster to destroy or None, URL of an empty database)."""
    url = os.environ.get(URL_ENV, "").strip()
    if url:
        return None, url
    from _pg_cluster import PgCluster

    cluster = PgCluster()
    with open(cluster.data_dir / "postgresql.conf", "a") as conf:
        conf.write("\n# benchmark: durable commits, as a production server runs\n"
                   "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\nshared_buffers = 512MB\n")
    cluster.start()
    return cluster, cluster.create_database("bench")


def _stores(tmp: Path, url: str, name: str) -> dict[str, Any]:
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from crewai_rust.memory import RustMemoryStorage

    return {
        "stock": LanceDBStorage(path=str(tmp / name / "lance")),
        "sqlite": RustMemoryStorage(tmp / name / "sqlite", use_rust=None),
        "postgres": RustMemoryStorage(url=url, namespace=name, use_rust=None),
    }


def _close(stores: dict[str, Any]) -> None:
    for store in stores.values():
        if hasattr(store, "close"):
            store.close()


def _save_rows(quick: bool, tmp: Path, url: str) -> list[dict[str, Any]]:
    """Save of 1, 100 and 1000 records per call: stock, both twins on SQLite and on PostgreSQL."""
    from crewai_rust import speedups_enabled
    from crewai_rust.memory import RustMemoryStorage

    stores = _stores(tmp, url, "save")
    if speedups_enabled():  # the stores above run the Rust twin; add the Python twin beside them
        stores["sqlite-python"] = RustMemoryStorage(tmp / "save" / "sqlite-py", use_rust=False)
        stores["postgres-python"] = RustMemoryStorage(url=url, namespace="save_py", use_rust=False)
    seed = _records(1_000, DIM)
    for store in stores.values():
        _save_all(store, seed)
    del seed
    out = save_cases(stores, DIM)
    _close(stores)
    return out


def _search_rows(quick: bool, tmp: Path, url: str) -> list[dict[str, Any]]:
    import numpy as np

    stores = _stores(tmp, url, "search")
    records = _records(10_000, DIM)
    for store in stores.values():
        _save_all(store, records)
    query = np.random.default_rng(9).normal(size=DIM).astype(np.float32)
    query = (query / np.linalg.norm(query)).tolist()
    out = [measure("search", f"10k x {DIM}, limit 10", impl, lambda s=store: s.search(query, limit=10),
                   repeat=5 if quick else 9, number=3) for impl, store in stores.items()]
    ours = [stores["sqlite"].search(query, limit=10), stores["postgres"].search(query, limit=10)]
    assert [(r.id, s) for r, s in ours[0]] == [(r.id, s) for r, s in ours[1]], "sqlite and postgres disagree"
    _close(stores)
    return out


def _open_rows(quick: bool, tmp: Path, url: str) -> list[dict[str, Any]]:
    """Open of an existing store: LanceDB (10k), ours reading every vector back (binary COPY on
    PostgreSQL) and, ``+snap``, mapping the per-host vector snapshot and replaying the log after it."""
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    from crewai_rust.memory import RustMemoryStorage

    out = []
    snaps = tmp / "snapshots"
    for n in [10_000] if quick else [10_000, 100_000]:
        name = f"open{n // 1000}k"
        base = tmp / name
        records = _records(n, DIM)
        first = RustMemoryStorage(base / "sqlite", snapshot=False)
        _save_all(first, records)
        first.close()
        first = RustMemoryStorage(url=url, namespace=name, snapshot=False)
        _save_all(first, records)
        first.close()
        for opener in (lambda b=base: RustMemoryStorage(b / "sqlite"),
                       lambda nm=name: RustMemoryStorage(url=url, namespace=nm, snapshot_dir=snaps)):
            writer = opener()
            assert writer.save_snapshot()
            writer.close()
        case = f"existing {n // 1000}k x {DIM}"
        if n <= 10_000:
            _save_all(LanceDBStorage(path=str(base / "lance")), records)
            out.append(measure("open", case, "stock", lambda b=base: LanceDBStorage(path=str(b / "lance")), repeat=3))
        del records
        out.append(measure("open", case, "sqlite",
                           lambda b=base: RustMemoryStorage(b / "sqlite", snapshot=False).close(), repeat=3))
        out.append(measure("open", case, "sqlite+snap",
                           lambda b=base: RustMemoryStorage(b / "sqlite", snapshot_after=10**9).close(), repeat=3))
        out.append(measure("open", case, "postgres",
                           lambda nm=name: RustMemoryStorage(url=url, namespace=nm, snapshot=False).close(), repeat=3))
        out.append(measure("open", case, "postgres+snap",
                           lambda nm=name: RustMemoryStorage(url=url, namespace=nm, snapshot_dir=snaps,
                                                             snapshot_after=10**9).close(), repeat=3))
        probe = RustMemoryStorage(url=url, namespace=name, snapshot_dir=snaps, snapshot_after=10**9)
        assert probe.snapshot_stats["restored"] == 1, probe.snapshot_stats  # the rows above took our path
        probe.close()
    return out


READER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import crewai_rust.memory._records as records
    import types
    class Rec(types.SimpleNamespace):
        @classmethod
        def model_construct(cls, **kw):
            return cls(**kw)
    records.memory_types = lambda: types.SimpleNamespace(MemoryRecord=Rec)
    from crewai_rust.memory import RustMemoryStorage
    target, count, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = RustMemoryStorage(target) if "://" in target else RustMemoryStorage(target)
    def vector(i):
        return np.random.default_rng(1000 + i).normal(size=dim).tolist()
    hinted = sys.argv[4] == "hint"
    watcher = getattr(store._store, "_watcher", None)
    while watcher is not None and watcher.connects == 0:  # listening before the first write is timed
        time.sleep(0.01)
    print("ready", flush=True)
    for i in range(count):
        q = vector(i)
        while True:
            mark = store.applied_change
            hits = store.search(q, limit=1)
            if hits and hits[0][0].id == f"v{i}":
                break
            if hinted:  # sleep until the LISTEN wake-up has applied something newer: no polling
                store.wait_for_change(mark, timeout=5)
        print(time.monotonic(), flush=True)
    """
)


def _latency_rows(quick: bool, tmp: Path, url: str) -> list[dict[str, Any]]:
    """Write in this process, visible in another's search: time from the save call to the reader's hit.

    The PostgreSQL reader does not poll: between searches it sleeps in ``wait_for_change`` until
    the LISTEN wake-up has applied a newer change. The SQLite reader has no wake-up and searches
    in a loop (one of the two cores spins).
    """
    import numpy as np
    from crewai.memory.types import MemoryRecord

    from crewai_rust.memory import RustMemoryStorage

    count = 40 if quick else 200
    out = []
    targets = {"sqlite": str(tmp / "latency" / "sqlite"), "postgres": url + "?namespace=latency"}
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    for impl, target in targets.items():
        writer = RustMemoryStorage(target)
        writer.save(_records(1_000, DIM))
        mode = "hint" if impl == "postgres" else "poll"  # SQLite has no wake-up: its reader searches in a loop
        reader = subprocess.Popen([sys.executable, "-c", READER, target, str(count), str(DIM), mode],
                                  stdout=subprocess.PIPE, text=True, env=env)
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "ready"
        samples = []
        for i in range(count):
            vec = np.random.default_rng(1000 + i).normal(size=DIM).tolist()
            record = MemoryRecord(id=f"v{i}", content=f"latency {i}", embedding=vec)
            start = time.monotonic()
            writer.save([record])
            seen = float(reader.stdout.readline())
            samples.append(seen - start)
            time.sleep(0.005)
        reader.wait(timeout=60)
        writer.close()
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
        out.append(row("visible", "write->other process search, median", impl, samples))
        out.append(row("visible", "write->other process search, p99", impl, [p99]))
        print(f"visible {impl}: median {statistics.median(samples) * 1e3:.2f} ms  p99 {p99 * 1e3:.2f} ms  "
              f"max {ordered[-1] * 1e3:.2f} ms over {count}", file=sys.stderr)
    return out


@contextlib.contextmanager
def _snapshots_in(directory: Path) -> Iterator[None]:
    """PostgreSQL stores cache their snapshot per host (``~/.cache``); the bench's throwaway stores
    (and its child processes) keep theirs in its temp dir, so a run leaves no files behind."""
    old = os.environ.get(SNAPSHOT_DIR_ENV)
    os.environ[SNAPSHOT_DIR_ENV] = str(directory)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(SNAPSHOT_DIR_ENV, None)
        else:
            os.environ[SNAPSHOT_DIR_ENV] = old


def run(quick: bool) -> list[dict[str, Any]]:
    _offline()
    cluster, url = _server()
    try:
        with tempfile.TemporaryDirectory(prefix="crewai_rust_bench_pg_") as tmp, _snapshots_in(Path(tmp) / "snapshot-cache"):
            path = Path(tmp)
            groups = {g.strip() for g in os.environ.get(GROUPS_ENV, "save,search,visible,open").split(",")}
            rows = []
            for group, fn in (("save", _save_rows), ("search", _search_rows), ("visible", _latency_rows),
                              ("open", _open_rows)):
                if group in groups:
                    rows += fn(quick, path, url)
            return rows
    finally:
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    main(run)
