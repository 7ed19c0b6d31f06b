"""One set of exceptions for both twins: Python's own ``sqlite3`` classes.

The Rust twin raises ``sqlite3.OperationalError`` & co. directly. Python 3.10's
``sqlite3`` used other classes for a few misuse errors (``Warning``,
``InterfaceError``, ``ValueError``); :func:`normalise` maps those onto the 3.11+
``ProgrammingError`` so callers catch one set on every version.
"""

from __future__ import annotations

import sqlite3
import sys

_LEGACY = sys.version_info < (3, 11)


def normalise(exc: BaseException) -> BaseException:
    """The exception to raise for ``exc`` coming out of stdlib ``sqlite3`` (3.10 -> 3.11 classes)."""
    if not _LEGACY:
        return exc
    text = str(exc)
    if isinstance(exc, sqlite3.Warning) and "one statement at a time" in text:
        return sqlite3.ProgrammingError(text)
    if isinstance(exc, sqlite3.InterfaceError) and "probably unsupported type" in text:
        return sqlite3.ProgrammingError(text)
    if type(exc) is ValueError and "parameters are of unsupported type" in text:
        return sqlite3.ProgrammingError(text)
    if type(exc) is ValueError and "null character" in text:
        return sqlite3.ProgrammingError(text)
    return exc


def is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY/SQLITE_LOCKED: the statement had no effect and may be retried."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    text = str(exc)
    return "database is locked" in text or "database table is locked" in text or "database is busy" in text


def with_path(exc: sqlite3.Error, path: str) -> sqlite3.Error:
    """Same class as ``exc`` with the database path in the message (opening errors do not name it)."""
    text = str(exc)
    suffix = f": {path}"
    if text.endswith(suffix):  # rusqlite already appends the path to CANTOPEN
        text = text[: -len(suffix)]
    new = type(exc)(f"{text} (database: {path!r})")
    for attr in ("sqlite_errorcode", "sqlite_errorname"):
        if hasattr(exc, attr):
            setattr(new, attr, getattr(exc, attr))
    return new
