"""Test configuration for CrewAI's own tests, placed at the root of its unpacked sdist.

CrewAI runs ``lib/crewai/tests`` with a workspace ``conftest.py`` (crewAIInc/crewAI,
``conftest.py`` at the repository root) that the sdist does not ship. This is the part
of it the tests need, written for replay: fake API keys, a private storage dir per
test, event-bus isolation, and VCR in replay-only mode (``record_mode="none"``,
CrewAI's own matchers and cassette layout). ``--block-network`` (pytest-recording)
is passed by ``run.py``, so any request without a cassette fails instead of leaving
the machine. Two vcrpy shims are carried over because replay breaks without them:
the aiohttp 3.14 stub fix and ``httpx.Response._content`` being set on replay.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Read by CrewAI and provider SDKs at import time: fake keys, no telemetry, no tracing.
FAKE_ENV = {
    "OPENAI_API_KEY": "fake-api-key",
    "ANTHROPIC_API_KEY": "fake-anthropic-key",
    "GEMINI_API_KEY": "fake-gemini-key",
    "AZURE_API_KEY": "fake-azure-key",
    "OPENROUTER_API_KEY": "fake-openrouter-key",
    "AWS_ACCESS_KEY_ID": "fake-aws-access-key",
    "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AZURE_ENDPOINT": "https://fake-azure-endpoint.openai.azure.com",
    "AZURE_OPENAI_ENDPOINT": "https://fake-azure-endpoint.openai.azure.com",
    "AZURE_OPENAI_API_KEY": "fake-azure-openai-key",
    "AZURE_API_VERSION": "2024-02-15-preview",
    "OPENAI_API_VERSION": "2024-02-15-preview",
    "OPENAI_BASE_URL": "https://api.openai.com/v1",
    "OPENAI_API_BASE": "https://api.openai.com/v1",
    "SERPER_API_KEY": "fake-serper-key",
    "CREWAI_PERSONAL_ACCESS_TOKEN": "fake-personal-token",
    "CREWAI_PLUS_URL": "https://fake.crewai.com",
    "HF_TOKEN": "fake-hf-token",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TESTING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "PYTEST_VCR_RECORD_MODE": "none",
}
for _key, _value in FAKE_ENV.items():
    os.environ.setdefault(_key, _value)


def _vcr_aiohttp_compat() -> None:
    """vcrpy's aiohttp stub subclasses a mixin aiohttp 3.14 removed and omits a new
    required ``ClientResponse`` argument; restore both (as CrewAI's conftest does)."""
    import asyncio
    import inspect

    try:
        from aiohttp import streams
        from aiohttp.client_reqrep import ClientResponse
    except ImportError:  # no aiohttp: vcrpy does not stub it either
        return

    if not hasattr(streams, "AsyncStreamReaderMixin"):

        class AsyncStreamReaderMixin:
            __slots__ = ()

            def __aiter__(self) -> Any:
                return streams.AsyncStreamIterator(self.readline)  # type: ignore[attr-defined]

            def iter_chunked(self, n: int) -> Any:
                return streams.AsyncStreamIterator(lambda: self.read(n))  # type: ignore[attr-defined]

            def iter_any(self) -> Any:
                return streams.AsyncStreamIterator(self.readany)  # type: ignore[attr-defined]

            def iter_chunks(self) -> Any:
                return streams.ChunkTupleAsyncStreamIterator(self)  # type: ignore[arg-type]

        streams.AsyncStreamReaderMixin = AsyncStreamReaderMixin  # type: ignore[attr-defined]

    import vcr.stubs.aiohttp_stubs as stubs

    keyword_only = [
        name
        for name, p in inspect.signature(ClientResponse.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]

    class _NullStreamWriter:
        output_size = 0

    loops: list[asyncio.AbstractEventLoop] = []

    def _loop() -> asyncio.AbstractEventLoop:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            if not loops:
                loops.append(asyncio.new_event_loop())
            return loops[0]

    def _init(self: Any, method: str, url: Any, request_info: Any = None) -> None:
        kwargs: dict[str, Any] = dict.fromkeys(keyword_only)
        kwargs["request_info"] = request_info
        if "loop" in kwargs:
            kwargs["loop"] = _loop()
        if "stream_writer" in kwargs:
            kwargs["stream_writer"] = _NullStreamWriter()
        ClientResponse.__init__(self, method, url, **kwargs)

    stubs.MockClientResponse.__init__ = _init


def _vcr_httpx_compat() -> None:
    """Binary request bodies and ``response.content`` on replayed httpx responses."""
    from vcr.request import Request

    try:
        import vcr.stubs.httpx_stubs as stubs
    except ModuleNotFoundError:
        import vcr.stubs.httpcore_stubs as stubs  # type: ignore[no-redef]

    def make_request(httpx_request: Any, real_request_body: Any = None, **_: Any) -> Any:
        raw = real_request_body if real_request_body is not None else httpx_request.read()
        body: Any = raw
        if isinstance(raw, bytes):
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                body = base64.b64encode(raw).decode("ascii")
        return Request(httpx_request.method, str(httpx_request.url), body, dict(httpx_request.headers))

    stubs._make_vcr_request = make_request
    original = getattr(stubs, "_from_serialized_response", None)
    if original is not None:

        def from_serialized(request: Any, serialized: Any, history: Any = None) -> Any:
            response = original(request, serialized, history)
            content = serialized.get("body", {}).get("string", b"")
            response._content = content.encode("utf-8") if isinstance(content, str) else content
            return response

        stubs._from_serialized_response = from_serialized


_vcr_aiohttp_compat()
_vcr_httpx_compat()


@pytest.fixture(autouse=True)
def cleanup_event_handlers() -> Iterator[None]:
    """No event handler registered by one test sees the next one's events."""
    yield
    try:
        from crewai.events.event_bus import crewai_event_bus

        with crewai_event_bus._rwlock.w_locked():
            crewai_event_bus._sync_handlers.clear()
            crewai_event_bus._async_handlers.clear()
    except Exception:  # noqa: S110 - a CrewAI without these internals has nothing to clean
        pass


@pytest.fixture(autouse=True)
def reset_event_state() -> None:
    from crewai.events.base_events import reset_emission_counter
    from crewai.events.event_context import EventContextConfig, _event_context_config, _event_id_stack

    reset_emission_counter()
    _event_id_stack.set(())
    _event_context_config.set(EventContextConfig())


@pytest.fixture(autouse=True)
def setup_test_environment() -> Iterator[None]:
    """A private CrewAI storage dir per test, as CrewAI's own conftest gives."""
    with tempfile.TemporaryDirectory() as temp_dir:
        storage = Path(temp_dir) / "crewai_test_storage"
        storage.mkdir(parents=True)
        os.environ["CREWAI_STORAGE_DIR"] = str(storage)
        os.environ["CREWAI_TESTING"] = "true"
        try:
            yield
        finally:
            os.environ.pop("CREWAI_STORAGE_DIR", None)


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: Any) -> str:
    """``tests/<sub>/test_x.py`` replays from ``tests/cassettes/<sub>/`` (CrewAI's layout)."""
    test_dir = Path(request.fspath).parent
    tests_root = next((p for p in (test_dir, *test_dir.parents) if p.name == "tests"), test_dir)
    relative = test_dir.relative_to(tests_root)
    return str(tests_root / "cassettes" / relative)


def _bedrock_host(host: str) -> str:
    import re

    return "bedrock-runtime.vcr.amazonaws.com" if re.match(r"^bedrock-runtime\.[a-z0-9-]+\.amazonaws\.com$", host) else host


def pytest_recording_configure(vcr: Any, config: Any) -> None:
    vcr.register_matcher("bedrock_host", lambda r1, r2: _bedrock_host(r1.host or "") == _bedrock_host(r2.host or ""))


@pytest.fixture(scope="module")
def vcr_config(vcr_cassette_dir: str) -> dict[str, Any]:
    """Replay only: a request with no recorded answer is an error, never a live call."""
    return {
        "cassette_library_dir": vcr_cassette_dir,
        "record_mode": "none",
        "filter_query_parameters": ["key"],
        "match_on": ["method", "scheme", "host", "port", "path"],
    }
