"""Network namespaces joined to the host by veth pairs: "another machine" for multi-process tests.

Why: a worker on loopback shares the host's network stack with the server; a worker in
its own network namespace reaches the server only over a veth link and a real IP
address, as a worker on another machine would (its ``127.0.0.1`` is its own, empty).

Each namespace gets a ``/30``: the host end ``.1``, the namespace end ``.2``. Names and
subnets are fresh per run (the pid and a random token are in the names; subnets are
picked where no host address or route lies), and everything is torn down on exit,
on failure, and, for namespaces left by a killed run, at the next run's start.

Creating namespaces needs Linux, ``ip`` (Debian's ``iproute2``) and ``CAP_NET_ADMIN``
(root). :func:`prerequisites_missing` says what is absent; callers then fall back to
loopback and must say so.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

PREFIX = "crwrs"  # every namespace this module makes is named crwrs-<pid>-<token>-<i>
_CAP_NET_ADMIN = 12
_POOL = ipaddress.ip_network("10.0.0.0/8")


class NetnsUnavailable(RuntimeError):
    """Namespaces could not be made here; the message says why."""


def _ip() -> str | None:
    return shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.access(p, os.X_OK)), None)


def _has_net_admin() -> bool:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return False


def prerequisites_missing() -> str | None:
    """Why this machine cannot make namespaces (no Linux, no ``ip``, no CAP_NET_ADMIN), or None."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux (this is {sys.platform})"
    if _ip() is None:
        return "no `ip` command (install Debian's iproute2)"
    if not _has_net_admin():
        return f"no CAP_NET_ADMIN (euid {os.geteuid()}; network namespaces need root)"
    return None


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = _ip()
    assert ip is not None
    proc = subprocess.run([ip, *args], check=False, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host already has an address or a route in (all namespaces we can see)."""
    taken: list[ipaddress.IPv4Network] = []
    text = _run("-4", "-o", "addr", "show", check=False).stdout + _run("-4", "route", "show", "table", "all", check=False).stdout
    for match in re.finditer(r"(?<![\d.])(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", text):
        try:
            taken.append(ipaddress.ip_network(match.group(1), strict=False))  # type: ignore[arg-type]
        except ValueError:
            continue
    return taken


def _free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """``count`` random /30s in 10/8 that overlap nothing the host has; random so parallel runs differ."""
    taken = _taken_networks()
    rng = random.Random(secrets.randbits(64))
    chosen: list[ipaddress.IPv4Network] = []
    for _ in range(10_000):
        base = int(_POOL.network_address) + rng.randrange(1, _POOL.num_addresses // 4) * 4
        net = ipaddress.IPv4Network((base, 30))
        if any(net.overlaps(t) for t in taken + chosen):
            continue
        chosen.append(net)
        if len(chosen) == count:
            return chosen
    raise NetnsUnavailable("no free /30 subnet in 10.0.0.0/8")


@dataclass
class Namespace:
    """One namespace: its name, the host's address on the link and its own."""

    name: str
    host_if: str
    host_addr: str
    ns_addr: str
    network: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this namespace (same filesystem, environment and user)."""
        ip = _ip()
        assert ip is not None
        return [ip, "netns", "exec", self.name, *argv]


@dataclass
class NamespaceSet:
    """Namespaces made together; :meth:`close` removes them (idempotent)."""

    namespaces: list[Namespace] = field(default_factory=list)

    def close(self) -> None:
        for ns in self.namespaces:
            _run("netns", "del", ns.name, check=False)  # takes its veth end, and so the host's, with it
            _run("link", "del", ns.host_if, check=False)
        self.namespaces.clear()

    def __enter__(self) -> NamespaceSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_stale() -> list[str]:
    """Delete namespaces of ours whose run (pid in the name) is gone: a SIGKILLed run leaves them."""
    removed = []
    listing = _run("netns", "list", check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(rf"{PREFIX}-(\d+)-[0-9a-f]+-\d+", name)
        if not match:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
            continue  # that run is alive (maybe a parallel one): not ours to remove
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        _run("netns", "del", name, check=False)
        removed.append(name)
    return removed


def create(count: int = 2) -> NamespaceSet:
    """``count`` namespaces, each with a veth pair to the host and a fresh /30; raises NetnsUnavailable."""
    missing = prerequisites_missing()
    if missing:
        raise NetnsUnavailable(missing)
    remove_stale()
    token = secrets.token_hex(3)
    made = NamespaceSet()
    try:
        for i, net in enumerate(_free_subnets(count)):
            host_addr, ns_addr = (str(a) for a in list(net.hosts())[:2])
            ns = Namespace(
                name=f"{PREFIX}-{os.getpid()}-{token}-{i}",
                host_if=f"cr{token}h{i}", host_addr=host_addr, ns_addr=ns_addr, network=str(net),
            )
            ns_if = f"cr{token}n{i}"
            _run("netns", "add", ns.name)
            made.namespaces.append(ns)
            _run("link", "add", ns.host_if, "type", "veth", "peer", "name", ns_if, "netns", ns.name)
            _run("addr", "add", f"{host_addr}/30", "dev", ns.host_if)
            _run("link", "set", ns.host_if, "up")
            _run("-n", ns.name, "addr", "add", f"{ns_addr}/30", "dev", ns_if)
            _run("-n", ns.name, "link", "set", ns_if, "up")
            _run("-n", ns.name, "link", "set", "lo", "up")
    except BaseException:
        made.close()
        raise
    return made
