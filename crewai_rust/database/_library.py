"""Do the two twins run on one SQLite library in this process?

Two copies of SQLite in one process must not open the same file: POSIX locks
do not conflict within a process, and each copy keeps its own bookkeeping of
them, so one copy can checkpoint and delete the WAL under the other, or drop
its locks on close, and writes are lost (sqlite.org/howtocorrupt.html, "multiple
copies of SQLite"). The Rust twin links the system ``libsqlite3``; CPython's
``_sqlite3`` usually does too, in which case the dynamic linker hands both the
same instance and sharing files is safe. Some Pythons (python.org macOS and
Windows builds, some conda/static builds) carry their own copy instead.

The check compares the address of ``sqlite3_libversion`` as the Rust twin
resolved it with the one ``ctypes`` resolves through the loaded ``_sqlite3``
extension: the same address means the same loaded library.
"""

from __future__ import annotations

import ctypes
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from .._selection import speedups_module, use_rust


@dataclass(frozen=True)
class LibrarySharing:
    """The answer, with the facts behind it (for logs and ``sqlite_library()``)."""

    shared: bool
    reason: str
    python_sqlite: str
    rust_sqlite: str | None = None
    python_address: int | None = None
    rust_address: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_lock = threading.Lock()
_cached: LibrarySharing | None = None


def python_library_address() -> int | None:
    """Address of ``sqlite3_libversion`` in the library ``_sqlite3`` uses, or None if not exported."""
    import _sqlite3

    try:
        function = ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion
    except (OSError, AttributeError):  # statically linked with hidden symbols, or not a loadable file
        return None
    return ctypes.cast(function, ctypes.c_void_p).value


def _detect(module: Any) -> LibrarySharing:
    python_version = sqlite3.sqlite_version
    try:
        rust_address = int(module.sqlite_library_address())
        rust_version = str(module.sqlite_version())
    except AttributeError:
        return LibrarySharing(False, "the compiled module predates the SQLite library check", python_version)
    python_address = python_library_address()

    def answer(shared: bool, reason: str) -> LibrarySharing:
        return LibrarySharing(shared, reason, python_version, rust_version, python_address, rust_address)

    if python_address is None:
        return answer(False, "Python's _sqlite3 does not export sqlite3_libversion: it carries its own SQLite copy")
    if python_address != rust_address:
        return answer(
            False,
            f"Python's sqlite3 ({python_version}) and the Rust twin ({rust_version}) "
            "load different SQLite library copies",
        )
    return answer(True, f"both twins use one SQLite {rust_version} library instance")


def library_sharing() -> LibrarySharing:
    """Whether the Rust twin may share database files with stdlib ``sqlite3`` in this process.

    Computed once per process (the libraries do not change once loaded). When
    the compiled module is not running (not built, or forced off), the answer
    is "not shared" and is not cached, so a later check can still find it.
    """
    global _cached
    if _cached is not None:
        return _cached
    module = speedups_module()
    if module is None:
        return LibrarySharing(False, "the Rust twin is not running", sqlite3.sqlite_version)
    with _lock:
        if _cached is None:
            _cached = _detect(module)
    return _cached


def sqlite_library() -> dict[str, Any]:
    """Which SQLite each twin runs on and whether they share it (public, for diagnostics)."""
    return library_sharing().as_dict()


def choose_rust(requested: bool | None) -> tuple[bool, str]:
    """Resolve ``use_rust`` for database files; returns (rust?, why).

    ``None`` picks the Rust twin only when it runs and shares Python's SQLite
    library (so CrewAI's own stdlib ``sqlite3`` code may open the same files);
    ``True`` insists on it (raising when it cannot run) even if the library is
    not shared; ``False`` picks the Python twin.
    """
    if requested is False:
        return False, "use_rust=False"
    if not use_rust(requested):
        return False, "the Rust twin is not running"
    sharing = library_sharing()
    if sharing.shared or requested is True:
        return True, sharing.reason
    return False, f"Python twin chosen: {sharing.reason}"
