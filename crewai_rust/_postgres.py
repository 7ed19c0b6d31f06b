"""What every PostgreSQL-backed piece shares: the URL, the driver, the pool, the errors.

Why one module: the memory store and the DATABASE backends both take a
``postgresql://`` URL from a user, and a secret in that URL must never reach a log
line or an error message; a missing driver must name the extra to install; a
server that cannot be reached must say which host, not print a traceback of the
pool. Importing this module imports no psycopg: that happens on first use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:  # pragma: no cover
    from psycopg_pool import ConnectionPool

URL_SCHEMES = ("postgresql://", "postgres://")
_SECRET_QUERY_KEYS = {"password", "sslpassword", "passfile"}


class PostgresError(RuntimeError):
    """A PostgreSQL store could not do what was asked; the message never holds a secret."""


class PostgresUnavailableError(PostgresError, ConnectionError):
    """The server could not be reached, refused the login, or has no such database."""


def is_postgres_url(value: object) -> bool:
    """True for ``postgresql://…`` / ``postgres://…`` strings (a path is never one)."""
    return isinstance(value, str) and value.strip().lower().startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """The URL with its password (in the userinfo or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable PostgreSQL URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostinfo}" if ":" in userinfo else f"{user}@{hostinfo}"
    query = parts.query
    if query:
        pairs = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="/*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrub(text: str, url: str) -> str:
    """``text`` (a driver message) with the URL's password removed wherever it appears."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for key, value in parse_qsl(urlsplit(url).query if "?" in url else ""):
        if key.lower() in _SECRET_QUERY_KEYS and value:
            text = text.replace(value, "***")
    if password:
        text = text.replace(password, "***")
    return re.sub(r"password=\S+", "password=***", text)


def require_psycopg() -> Any:
    """The ``psycopg`` module, or an ImportError that names the extra to install."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "PostgreSQL support needs psycopg 3 and its pool: pip install 'crewai-rust[postgres]'"
        ) from exc
    return psycopg


def validate_url(url: str) -> str:
    """The stripped URL, or ValueError for a malformed one (NUL bytes, no database name)."""
    if not is_postgres_url(url):
        raise ValueError(f"not a PostgreSQL URL (expected postgresql://...): {redact(str(url))!r}")
    url = url.strip()
    if "\x00" in url:
        raise ValueError("PostgreSQL URL contains a NUL byte")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a non-numeric port
    except ValueError as exc:
        raise ValueError(f"malformed PostgreSQL URL {redact(url)!r}: {exc}") from None
    return url


def open_pool(url: str, *, min_size: int = 1, max_size: int = 8, application_name: str = "crewai_rust",
              timeout: float = 10.0, check: bool = True) -> ConnectionPool:
    """A psycopg connection pool, opened and checked: unreachable servers fail here, clearly.

    Connections are autocommit; callers open transactions with ``conn.transaction()``.
    ``check=False`` skips the pool's liveness round trip on every checkout, for callers
    that retry a call which failed on a dead connection themselves.
    """
    psycopg = require_psycopg()
    from psycopg_pool import ConnectionPool

    url = validate_url(url)
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True, "application_name": application_name},
        open=False,
        timeout=timeout,
        name=f"crewai_rust:{application_name}",
        check=ConnectionPool.check_connection if check else None,
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except Exception as exc:
        pool.close()
        detail = _first_connect_error(url, psycopg, timeout) or scrub(str(exc), url)
        raise PostgresUnavailableError(f"cannot connect to {redact(url)}: {detail}") from None
    return pool


def _first_connect_error(url: str, psycopg: Any, timeout: float) -> str | None:
    """The server's own reason (wrong password, no such database), the pool only says 'timeout'."""
    try:
        psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
    except Exception as exc:  # psycopg.OperationalError and friends
        return scrub(str(exc).strip(), url)
    return None
