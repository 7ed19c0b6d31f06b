"""The PostgreSQL test server itself: it starts, checks passwords, survives a restart.

Every PostgreSQL test stands on this fixture; in CI (``CREWAI_RUST_REQUIRE_SERVICES=1``)
a server that cannot start fails here first, with the reason.
"""

from __future__ import annotations

import pytest


def test_server_accepts_the_password_and_refuses_a_wrong_one(pg_server, pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == pg_url.rsplit("/", 1)[1]
    if not hasattr(pg_server, "password"):
        pytest.skip("external server: its password is not known to the tests")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(pg_url.replace(pg_server.password, "not-the-password"))


def test_restart_drops_connections_and_keeps_data(pg_server, pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    held = psycopg.connect(pg_url, autocommit=True)
    pg_server.restart()
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [(42,)]
