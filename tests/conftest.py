"""Shared fixtures: both implementations, an offline CrewAI environment.

The ``use_rust`` fixture runs a test twice, ids ``rust`` and ``python``. The
``rust`` run skips only when the compiled module was optional and not built;
when ``CREWAI_RUST_BUILD=1`` (the build is required) a missing module fails.
"""

from __future__ import annotations

import os
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
