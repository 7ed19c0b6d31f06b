"""The shared PostgreSQL plumbing: URLs, secrets out of messages, clear connect errors."""

from __future__ import annotations

import pytest

from crewai_rust._postgres import (
    PostgresUnavailableError,
    is_postgres_url,
    open_pool,
    redact,
    scrub,
    validate_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        ("postgresql://h/db?password=s3cret&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
    ],
)
def test_redact_removes_passwords(url: str, expected: str) -> None:
    assert redact(url) == expected
    assert "s3cret" not in scrub(f"failed for {url}: password=s3cret", url)


def test_url_checks() -> None:
    assert is_postgres_url("postgresql://x/y") and not is_postgres_url("/tmp/db.sqlite")
    with pytest.raises(ValueError, match="NUL"):
        validate_url("postgresql://u@h/d\x00b")
    with pytest.raises(ValueError, match="malformed") as info:
        validate_url("postgresql://u:topsecret@h:notaport/db")
    assert "topsecret" not in str(info.value)


def test_wrong_password_is_clear_and_secret_free(pg_server, pg_url: str) -> None:
    if not hasattr(pg_server, "password"):
        pytest.skip("external server")
    bad = pg_url.replace(pg_server.password, "wrong-secret-value")
    with pytest.raises(PostgresUnavailableError, match="password authentication failed") as info:
        open_pool(bad, timeout=3)
    assert "wrong-secret-value" not in str(info.value) and pg_server.password not in str(info.value)


def test_missing_database_and_unreachable_server(pg_server, pg_url: str) -> None:
    with pytest.raises(PostgresUnavailableError, match="does not exist"):
        open_pool(pg_url.rsplit("/", 1)[0] + "/no_such_db", timeout=3)
    with pytest.raises(PostgresUnavailableError, match="127.0.0.1:1/"):
        open_pool("postgresql://u:pw@127.0.0.1:1/db", timeout=2)


def test_pool_serves_connections(pg_url: str) -> None:
    pool = open_pool(pg_url, max_size=2)
    try:
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.close()
