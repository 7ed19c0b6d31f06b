"""Shared fixtures: both implementations, an offline CrewAI environment.

The ``use_rust`` fixture runs a test twice, ids ``rust`` and ``python``. The
``rust`` run skips only when the compiled module was optional and not built;
when ``CREWAI_RUST_BUILD=1`` (the build is required) a missing module fails.
"""

from __future__ import annotations

import os
import signal
import tempfile
import warnings
from collections.abc import Iterator

import pytest

# CrewAI reads these at import time: no telemetry, no network, a private storage dir.
_OFFLINE_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "OPENAI_API_KEY": "sk-offline-test-key",
}
for _key, _value in _OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("CREWAI_STORAGE_DIR", tempfile.mkdtemp(prefix="crewai_rust_tests_"))

# A test run started in the background of a non-interactive shell (`.ci/run &`, nohup) inherits
# SIGINT *ignored*, and an ignored signal stays ignored across exec: every worker the Ctrl-C
# tests interrupt would then shrug it off. A handler here is reset to the default in children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Warnings are errors in our tests, but CrewAI's own import raises a few
# (ImportWarning, third-party deprecations) that are not ours to fix: import it
# once here with them silenced. Warnings at run time still fail the test.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import crewai  # noqa: F401
        import crewai.memory.unified_memory  # noqa: F401
    except ImportError:  # the foundation tests also run where crewai is absent
        pass


def _speedups_required() -> bool:
    return os.environ.get("CREWAI_RUST_BUILD", "").strip() == "1"


def _forced_pure() -> bool:
    return os.environ.get("CREWAI_RUST_PUREPYTHON", "").strip().lower() in {"1", "true", "yes", "on"}


def require_speedups():  # type: ignore[no-untyped-def]
    """Return ``_speedups``; skip when the build was optional and absent, fail when it was required."""
    try:
        from crewai_rust import _speedups
    except ImportError as exc:
        if _speedups_required():
            pytest.fail(f"CREWAI_RUST_BUILD=1 but crewai_rust._speedups is missing: {exc}")
        pytest.skip(f"crewai_rust._speedups not built: {exc}")
    return _speedups


@pytest.fixture(params=["rust", "python"])
def use_rust(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Run the test under each implementation; sets CREWAI_RUST_PUREPYTHON to match."""
    if request.param == "rust":
        if _forced_pure():
            pytest.skip("CREWAI_RUST_PUREPYTHON=1 forces the python twin")
        require_speedups()
        monkeypatch.delenv("CREWAI_RUST_PUREPYTHON", raising=False)
        yield True
    else:
        monkeypatch.setenv("CREWAI_RUST_PUREPYTHON", "1")
        yield False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``CREWAI_RUST_TWINS=rust`` (tox's py310/311/312-speedups envs): a test's ``python`` run is left
    out, because the purepython env of the same Python runs it on a pure install; the rust run and
    the parity tests (both twins called side by side) stay. py313-speedups keeps both runs, so the
    python twin is still tested in a process where the Rust module is loaded. Elsewhere every test
    runs under both twins."""
    if os.environ.get("CREWAI_RUST_TWINS", "both").strip() != "rust":
        return
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        twin = callspec.params.get("use_rust") if callspec is not None else None
        (left_out if twin == "python" else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def _services_required() -> bool:
    """In CI (tox sets it) a test server that cannot start fails the run instead of skipping."""
    return os.environ.get("CREWAI_RUST_REQUIRE_SERVICES", "").strip() == "1"


@pytest.fixture(scope="session")
def pg_server():  # type: ignore[no-untyped-def]
    """A PostgreSQL server for the session: ``CREWAI_RUST_TEST_PG_URL``, else a throwaway cluster.

    Skips only outside CI when psycopg or the server binaries are missing; with
    ``CREWAI_RUST_REQUIRE_SERVICES=1`` it fails instead.
    """
    from _pg_cluster import ClusterUnavailable, ExternalServer, start_cluster

    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        if _services_required():
            pytest.fail(f"psycopg is missing (pip install 'crewai-rust[postgres]'): {exc}")
        pytest.skip(f"psycopg not installed: {exc}")
    external = os.environ.get("CREWAI_RUST_TEST_PG_URL", "").strip()
    if external:
        yield ExternalServer(external)
        return
    try:
        cluster = start_cluster()  # under /tmp: the server account cannot enter pytest's 0700 basetemp
    except Exception as exc:  # ClusterUnavailable, or a subprocess error
        if _services_required() or not isinstance(exc, ClusterUnavailable):
            pytest.fail(f"could not start a PostgreSQL test cluster: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(pg_server) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty database on the session's server (TCP URL with the password)."""
    return str(pg_server.create_database())


_NET_REPORT: list[str] = []


@pytest.fixture(scope="session")
def pg_net(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A server reached from two network namespaces over veth pairs (other machines, as far as
    the network goes); where the machine cannot make them, loopback, said in the test summary."""
    from _pg_net import open_pg_net

    external = bool(os.environ.get("CREWAI_RUST_TEST_PG_URL", "").strip())
    if not external:
        request.getfixturevalue("pg_server")  # psycopg and the server binaries: skip or fail as it does
    try:
        net = open_pg_net(
            lambda: request.getfixturevalue("pg_server"), services_required=_services_required(),
            netns_required=os.environ.get("CREWAI_RUST_REQUIRE_NETNS", "").strip() == "1", external=external,
        )
    except Exception as exc:  # NetnsUnavailable, ClusterUnavailable
        pytest.fail(f"could not set up network namespaces for the PostgreSQL tests: {exc}")
    _NET_REPORT.append(net.describe())
    try:
        yield net
    finally:
        net.close()


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """Say how the multi-machine PostgreSQL tests reached the server: a loopback fall back is never silent."""
    if _NET_REPORT:
        terminalreporter.section("PostgreSQL across network namespaces")
        for line in _NET_REPORT:
            terminalreporter.write_line(line)


@pytest.fixture
def speedups():  # type: ignore[no-untyped-def]
    """The compiled module, for twin-against-twin tests."""
    if _forced_pure():
        pytest.skip("CREWAI_RUST_PUREPYTHON=1 forces the python twin")
    return require_speedups()


@pytest.fixture(autouse=True)
def _always_unpatched() -> Iterator[None]:
    """No test leaks an active patch into the next one."""
    yield
    import crewai_rust

    crewai_rust.unpatch()


@pytest.fixture(scope="session", autouse=True)
def _snapshots_in_a_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """PostgreSQL stores' vector snapshots go to a session temp dir, not the user's cache (subprocesses too)."""
    old = os.environ.get("CREWAI_RUST_MEMORY_SNAPSHOT_DIR")
    os.environ["CREWAI_RUST_MEMORY_SNAPSHOT_DIR"] = str(tmp_path_factory.mktemp("memory-snapshots"))
    yield
    if old is None:
        os.environ.pop("CREWAI_RUST_MEMORY_SNAPSHOT_DIR", None)
    else:
        os.environ["CREWAI_RUST_MEMORY_SNAPSHOT_DIR"] = old
