"""Search over a memory-mapped snapshot matrix vs the same matrix in anonymous RAM, and the cost of copying.

Why: a store opened from its vector snapshot scans the file mapping (``MAP_PRIVATE``) directly.
This measures, in one run, the Rust and numpy kernels over anonymous memory, over the mapping
and over a copy of it, and the copy itself (what scanning the mapping saves at open).
``python benchmarks/bench_memory_mapped_scan.py`` (needs the compiled module); scratch files go to
``$TMPDIR`` and are removed.
"""

from __future__ import annotations

import mmap
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crewai_rust import _speedups  # noqa: E402
from crewai_rust.memory import _vector_py  # noqa: E402


def main() -> None:
    for n, dim in ((10_000, 3072), (100_000, 1536)):
        rng = np.random.default_rng(0)
        anon = rng.normal(size=(n, dim)).astype(np.float32)
        fd_tmp, path = tempfile.mkstemp(suffix=".bin")
        os.close(fd_tmp)
        anon.tofile(path)
        fd = os.open(path, os.O_RDONLY)
        mm = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        os.close(fd)
        mapped = np.frombuffer(mm, dtype=np.float32).reshape(n, dim)
        sq = np.einsum("ij,ij->i", anon, anon).astype(np.float32)
        q = rng.normal(size=dim).astype(np.float32)
        mapped.sum()  # fault the mapping in, as the open's checksum pass does
        start = time.perf_counter()
        copy = np.array(mapped)
        copy_s = time.perf_counter() - start
        res = {}
        for label, m in (("anon", anon), ("mapped", mapped), ("copied", copy)):
            for kname, fn in (("rust", lambda m=m: _speedups.vector_top_k(m, sq, n, q, None, 10, 0, 0)),
                              ("numpy", lambda m=m: _vector_py.search(m, sq, n, q, None, 10, 0))):
                for _ in range(3):
                    fn()
                times = []
                for _ in range(15):
                    start = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - start)
                res[(label, kname)] = sorted(times)[len(times) // 2]
        print(f"{n}x{dim}: copy of the mapping into RAM {copy_s * 1e3:.1f} ms; "
              + ", ".join(f"{lab}/{k} {v * 1e3:.2f} ms" for (lab, k), v in res.items()))
        del mapped, copy
        os.unlink(path)


if __name__ == "__main__":
    main()
