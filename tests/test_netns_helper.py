"""The test helper that stands in for other machines (``_netns``, ``_pg_net``): isolated stacks,
a veth link to the host, everything torn down, and a visible loopback fall back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import pytest

import _netns
import _pg_net


def _needs_netns() -> None:
    missing = _netns.prerequisites_missing()
    if missing:
        pytest.skip(missing)


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _connects(ns: _netns.Namespace, host: str, port: int) -> int:
    code = f"import socket; s = socket.socket(); s.settimeout(2); print(s.connect_ex(({host!r}, {port})))"
    return int(subprocess.run(ns.command([sys.executable, "-c", code]), capture_output=True, text=True,
                              check=True, timeout=30).stdout)


def test_namespaces_reach_the_host_over_their_link_only_and_vanish_on_close() -> None:
    _needs_netns()
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        with _netns.create(2) as made:
            a, b = made.namespaces
            assert a.name != b.name and a.network != b.network
            assert all(ns.name in _ip("netns", "list") for ns in (a, b))
            assert _connects(a, a.host_addr, port) == 0  # over its veth pair
            assert _connects(a, "127.0.0.1", port) != 0  # its loopback is its own: nothing listens there
            assert _connects(a, b.host_addr, port) != 0  # no route to the other namespace's link
        assert not any(ns.name in _ip("netns", "list") for ns in (a, b))
        assert a.host_if not in _ip("link", "show") and b.host_if not in _ip("link", "show")
    finally:
        listener.close()


def test_a_failed_setup_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_netns()
    real = _netns._run
    made: list[str] = []

    def failing(*args: str, check: bool = True) -> Any:
        if args[:2] == ("netns", "add"):
            made.append(args[2])
        if args[:1] == ("-n",) and len(made) == 2:
            raise _netns.NetnsUnavailable("injected failure on the second namespace")
        return real(*args, check=check)

    monkeypatch.setattr(_netns, "_run", failing)
    with pytest.raises(_netns.NetnsUnavailable, match="injected"):
        _netns.create(2)
    listing = _ip("netns", "list")
    assert len(made) == 2 and not any(name in listing for name in made)


def test_namespaces_of_a_killed_run_are_removed_by_the_next() -> None:
    _needs_netns()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = f"{_netns.PREFIX}-{int(dead.stdout)}-abcdef-0"
    live = f"{_netns.PREFIX}-{os.getpid()}-abcdef-9"
    _ip("netns", "add", stale)
    _ip("netns", "add", live)
    try:
        removed = _netns.remove_stale()
        listing = _ip("netns", "list")
        assert stale in removed and stale not in listing
        assert live in listing  # a run that is alive keeps its own
    finally:
        subprocess.run(["ip", "netns", "del", stale], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", live], check=False, capture_output=True)


def test_without_namespaces_it_falls_back_to_loopback_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_netns, "prerequisites_missing", lambda: "no CAP_NET_ADMIN (test)")
    server = object()
    net = _pg_net.open_pg_net(lambda: server, services_required=True, netns_required=False, external=False)
    assert net.server is server and net.fallback == "no CAP_NET_ADMIN (test)"
    assert all(site is _pg_net.HOST and not site.isolated for site in net.sites)
    assert net.describe().startswith("LOOPBACK FALLBACK") and "no CAP_NET_ADMIN (test)" in net.describe()
    with pytest.raises(_netns.NetnsUnavailable, match="CREWAI_RUST_REQUIRE_NETNS=1 but no CAP_NET_ADMIN"):
        _pg_net.open_pg_net(lambda: server, services_required=False, netns_required=True, external=False)


def test_in_ci_a_machine_that_has_the_prerequisites_but_fails_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_netns, "prerequisites_missing", lambda: None)

    def broken(count: int = 2) -> Any:
        raise _netns.NetnsUnavailable("ip netns add failed (test)")

    monkeypatch.setattr(_netns, "create", broken)
    with pytest.raises(_netns.NetnsUnavailable, match="failed"):
        _pg_net.open_pg_net(lambda: None, services_required=True, netns_required=False, external=False)
    net = _pg_net.open_pg_net(lambda: "session", services_required=False, netns_required=False, external=False)
    assert net.fallback == "ip netns add failed (test)"
