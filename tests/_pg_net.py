"""A PostgreSQL server reached from "other machines": two network namespaces over veth pairs.

Why a server of its own: the session cluster listens on loopback only and its listen
addresses cannot change without a restart; this one is started after the namespaces
exist, listens on loopback and on the host end of each veth link, and lets those /30s
in by scram password (like loopback). It stops before the links go away.

Where the machine cannot make namespaces, every site is loopback on the session server
and :attr:`PgNet.fallback` says why; the conftest prints it in the test summary, so a
fall back is never silent. With ``CREWAI_RUST_REQUIRE_SERVICES=1`` (CI) a fall back is
allowed only when a prerequisite is missing (not Linux, no ``ip``, no CAP_NET_ADMIN):
a machine that has them all but fails to make the namespaces fails the run. With
``CREWAI_RUST_REQUIRE_NETNS=1`` any fall back fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import _netns
from _pg_cluster import PgCluster, start_cluster


@dataclass(frozen=True)
class Site:
    """Where a worker runs: the host (loopback) or a namespace (its own stack, a veth link)."""

    label: str
    server_host: str | None  # the address it dials; None: the server's own URL (loopback)
    client_addr: str | None  # the address the server sees it at, when known
    prefix: tuple[str, ...] = ()

    def command(self, argv: Sequence[str]) -> list[str]:
        return [*self.prefix, *argv]

    @property
    def isolated(self) -> bool:
        return bool(self.prefix)


HOST = Site("host loopback", None, None)


@dataclass
class PgNet:
    """The server, the loopback site and two more sites (namespaces, or loopback on fall back)."""

    server: Any
    sites: list[Site]
    fallback: str | None = None
    _namespaces: _netns.NamespaceSet | None = field(default=None, repr=False)

    @property
    def host(self) -> Site:
        return self.sites[0]

    @property
    def remote(self) -> list[Site]:
        return self.sites[1:]

    def create_database(self) -> str:
        """A fresh database; returns its name (address it with :meth:`url`)."""
        return urlsplit(self.server.create_database()).path.lstrip("/")

    def url(self, site: Site, database: str) -> str:
        if site.server_host is None:
            return str(self.server.url(database))
        return str(self.server.url(database, host=site.server_host))

    def describe(self) -> str:
        if self.fallback:
            return f"LOOPBACK FALLBACK (no network namespaces): {self.fallback}"
        return "two network namespaces over veth pairs: " + "; ".join(
            f"{s.label} {s.client_addr} -> {s.server_host}" for s in self.remote
        )

    def close(self) -> None:
        if self._namespaces is not None:
            if isinstance(self.server, PgCluster):
                self.server.destroy()  # first: it listens on the links' host ends
            self._namespaces.close()
            self._namespaces = None


def open_pg_net(session_server: Callable[[], Any], *, services_required: bool, netns_required: bool,
                external: bool) -> PgNet:
    """Namespaces and a server listening into them; else the session server on loopback (``fallback`` set)."""
    missing = "CREWAI_RUST_TEST_PG_URL names an external server (it cannot listen on a namespace link)" if external \
        else _netns.prerequisites_missing()
    if missing is None:
        try:
            namespaces = _netns.create(2)
        except _netns.NetnsUnavailable as exc:
            if services_required or netns_required:
                raise
            missing = str(exc)
        else:
            try:
                server = start_cluster(
                    extra_listen=[ns.host_addr for ns in namespaces.namespaces],
                    hba_networks=[ns.network for ns in namespaces.namespaces],
                )
            except BaseException:
                namespaces.close()
                raise
            sites = [HOST] + [
                Site(f"netns {ns.name}", ns.host_addr, ns.ns_addr, tuple(ns.command([]))) for ns in namespaces.namespaces
            ]
            return PgNet(server, sites, None, namespaces)
    if netns_required:
        raise _netns.NetnsUnavailable(f"CREWAI_RUST_REQUIRE_NETNS=1 but {missing}")
    return PgNet(session_server(), [HOST, HOST, HOST], missing)
