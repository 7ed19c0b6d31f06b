"""Search over a memory-mapped snapshot matrix vs the same matrix in anonymous RAM, and the cost of copying.

Why: a store opened from its vector snapshot scans the file mapping (``MAP_PRIVATE``) directly.
This measures, in one run, the Rust and numpy kernels over anonymous memory, over the mapping
and over a copy of it, and the copy itself (what scanning the mapping saves at open).
``python benchmarks/bench_memory_mapped_scan.py [--quick]`` (the rust rows need the compiled module);
scratch files go to ``$TMPDIR`` and are removed.
"""

from __future__ import annotations

import mmap
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import main, measure, row, settle_blas  # noqa: E402

from crewai_rust._selection import speedups_module  # noqa: E402
from crewai_rust.memory import _vector_py  # noqa: E402


def _sizes(quick: bool) -> tuple[tuple[int, int], ...]:
    return ((10_000, 3072),) if quick else ((10_000, 3072), (100_000, 1536))


def run(quick: bool) -> list[dict[str, Any]]:
    """Rows ``mapped``/``<n> x <dim> <where>`` (python = numpy twin, rust) and the copy's cost."""
    rust = speedups_module()
    rows: list[dict[str, Any]] = []
    for n, dim in _sizes(quick):
        rng = np.random.default_rng(0)
        anon = rng.normal(size=(n, dim)).astype(np.float32)
        fd_tmp, path = tempfile.mkstemp(suffix=".bin")
        os.close(fd_tmp)
        try:
            anon.tofile(path)
            fd = os.open(path, os.O_RDONLY)
            mm = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            os.close(fd)
            mapped = np.frombuffer(mm, dtype=np.float32).reshape(n, dim)
            sq = np.einsum("ij,ij->i", anon, anon).astype(np.float32)
            q = rng.normal(size=dim).astype(np.float32)
            mapped.sum()  # fault the mapping in, as the open's checksum pass does
            size = f"{n // 1000}k x {dim}"
            start = time.perf_counter()
            copy = np.array(mapped)
            rows.append(row("mapped", f"{size} copy of the mapping", "copy", [time.perf_counter() - start]))
            for label, m in (("anonymous RAM", anon), ("mapped file", mapped), ("copied mapping", copy)):
                case = f"{size} scan, {label}"
                rows.append(measure("mapped", case, "python",
                                    lambda m=m: _vector_py.search(m, sq, n, q, None, 10, 0),
                                    repeat=7 if quick else 15, warmup=3))
                if rust is not None:
                    # numpy's BLAS workers spin after the python rows: let them idle first
                    settle_blas(lambda m=m: rust.vector_stream_read(m, n, 1))
                    rows.append(measure("mapped", case, "rust",
                                        lambda m=m: rust.vector_top_k(m, sq, n, q, None, 10, 0, 0),
                                        repeat=7 if quick else 15, warmup=3))
            del mapped, copy
            mm.close()
        finally:
            os.unlink(path)
    return rows


if __name__ == "__main__":
    main(run)
