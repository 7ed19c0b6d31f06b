"""A throwaway PostgreSQL cluster for the tests, started and stopped by the tests themselves.

Why a module of its own: the memory and database tests both need a real server, and CI
must never skip them. ``initdb`` and ``postgres`` refuse to run as root, so as root the
cluster runs as an unprivileged user (``postgres`` when it exists, else ``nobody``).
The server listens on a unix socket in its own directory and on a loopback TCP port,
with password (scram) authentication on TCP so wrong-password paths can be tested.

``CREWAI_RUST_TEST_PG_URL`` points the tests at an existing server instead; then
``restart``/``stop`` are unavailable (tests that need them skip).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "crewai_rust_test"


class ClusterUnavailable(RuntimeError):
    """The server could not be found or started; the message says what is missing."""


def find_bin_dir() -> Path:
    """The directory holding ``initdb``/``pg_ctl``: PATH first, then Debian's versioned dirs."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    if not candidates:
        raise ClusterUnavailable(
            "PostgreSQL server binaries not found (pg_ctl): install Debian's postgresql-15 "
            "(apt-get install postgresql-15) or set CREWAI_RUST_TEST_PG_URL"
        )
    return Path(candidates[-1]).parent


def _version_key(path: str) -> tuple[int, ...]:
    part = Path(path).parent.parent.name
    return tuple(int(x) for x in part.split(".") if x.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The account the server runs as: ourselves unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ClusterUnavailable("running as root and no unprivileged 'postgres' or 'nobody' user exists")


class PgCluster:
    """One initdb'd data directory and its running server."""

    def __init__(
        self, base_dir: str | None = None, *, extra_listen: Sequence[str] = (), hba_networks: Sequence[str] = ()
    ) -> None:
        """``extra_listen``: more addresses to listen on (a veth end); ``hba_networks``: CIDRs let in by password."""
        self.extra_listen = list(extra_listen)
        self.hba_networks = list(hba_networks)
        self.bin_dir = find_bin_dir()
        self.account = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="crewai_rust_pg_", dir=base_dir))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_file = self.root / "server.log"
        self.password = secrets.token_hex(12)
        self.port = _free_port()
        self.host = "127.0.0.1"
        self._init()

    # -- lifecycle -------------------------------------------------------------
    def _subprocess(self, args: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self.account is not None:
            kwargs["user"] = self.account.pw_uid
            kwargs["group"] = self.account.pw_gid
            kwargs["extra_groups"] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env=env, cwd=self.root, **kwargs  # type: ignore[call-overload]
        )
        if check and proc.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise ClusterUnavailable(
                f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}\n{log}"
            )
        return proc

    def _init(self) -> None:
        self.socket_dir.mkdir()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.account is not None:
            for path in (self.root, self.socket_dir, pwfile):
                os.chown(path, self.account.pw_uid, self.account.pw_gid)
        self._subprocess([
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
            f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
            "-E", "UTF8", "--locale=C", "--no-sync",
        ])
        pwfile.unlink()
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# crewai_rust tests\n"
                f"port = {self.port}\n"
                f"listen_addresses = '{', '.join([self.host, *self.extra_listen])}'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\nshared_buffers = 128MB\n"
            )
        if self.hba_networks:  # scram like loopback: the password is checked on every TCP path
            with open(self.data_dir / "pg_hba.conf", "a") as hba:
                hba.write("\n# crewai_rust tests: network namespaces\n")
                for net in self.hba_networks:
                    hba.write(f"host all all {net} scram-sha-256\n")

    def start(self) -> None:
        self._subprocess([
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60", "start",
        ])

    def stop(self, mode: str = "fast") -> None:
        self._subprocess([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"], check=False)

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart``: every client connection is dropped, the data stays."""
        self._subprocess([
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
            "-m", mode, "-w", "-t", "60", "restart",
        ])

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- addresses -------------------------------------------------------------
    def url(self, database: str = "postgres", *, password: str | None = None, tcp: bool = True,
            host: str | None = None) -> str:
        """A libpq URL: TCP with the password (the default; ``host`` another listen address), or the unix socket."""
        if not tcp:
            return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(self.socket_dir), safe='')}&port={self.port}"
        pw = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{quote(pw, safe='')}@{host or self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through the server's own ``psql`` (no Python driver needed)."""
        psql = self.bin_dir / "psql"
        if not psql.exists():
            psql = Path(shutil.which("psql") or "psql")
        proc = self._subprocess([
            str(psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
            "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql,
        ])
        return proc.stdout.strip()

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database; returns its TCP URL."""
        name = name or f"t_{secrets.token_hex(6)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_cluster(base_dir: str | None = None, **options: Sequence[str]) -> PgCluster:
    cluster = PgCluster(base_dir, **options)  # type: ignore[arg-type]
    try:
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


def wait_until_accepting(cluster: PgCluster, timeout: float = 30) -> None:
    """After a restart issued elsewhere: wait until ``pg_isready`` says yes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = cluster._subprocess(
            [str(cluster.bin_dir / "pg_isready"), "-h", str(cluster.socket_dir), "-p", str(cluster.port)], check=False
        )
        if proc.returncode == 0:
            return
        time.sleep(0.1)
    raise ClusterUnavailable("server did not come back within the timeout")


class ExternalServer:
    """``CREWAI_RUST_TEST_PG_URL``: a server someone else runs; databases made through psycopg."""

    def __init__(self, url: str) -> None:
        self.base_url = url

    def url(self, database: str | None = None, **_: object) -> str:
        if database is None:
            return self.base_url
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.base_url)
        return urlunsplit(parts._replace(path="/" + database))

    def create_database(self, name: str | None = None) -> str:
        import psycopg

        name = name or f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self, mode: str = "fast") -> None:
        import pytest

        pytest.skip("CREWAI_RUST_TEST_PG_URL points at a server these tests cannot restart")
