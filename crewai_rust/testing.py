"""Offline, deterministic CrewAI building blocks for tests, the demo and benchmarks.

Nothing here talks to the network: :class:`ScriptedLLM` answers from the request
content (never from call order, since memory calls the LLM on background
threads), and :class:`HashEmbedder` is a hashed bag of words. Importing this
module imports CrewAI, so call :func:`configure_offline` first.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

OFFLINE_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "OPENAI_API_KEY": "sk-offline-no-network",
}


def configure_offline(storage_dir: str | None = None) -> str:
    """Set CrewAI's no-network environment and a private storage dir; returns that dir.

    Must run before ``import crewai`` (CrewAI reads some of these at import).
    """
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if storage_dir is None:
        storage_dir = os.environ.get("CREWAI_STORAGE_DIR") or tempfile.mkdtemp(prefix="crewai_rust_")
    os.environ["CREWAI_STORAGE_DIR"] = storage_dir
    return storage_dir


configure_offline(os.environ.get("CREWAI_STORAGE_DIR"))

from crewai.llms.base_llm import BaseLLM  # noqa: E402
from chromadb.api.types import EmbeddingFunction as ChromaEmbeddingFunction  # noqa: E402
from crewai.rag.embeddings.providers.custom.embedding_callable import CustomEmbeddingFunction  # noqa: E402
from pydantic import BaseModel, PrivateAttr  # noqa: E402

_WORD = re.compile(r"\w+", re.UNICODE)


def hash_embed(text: str, dim: int = 64) -> list[float]:
    """A deterministic, L2-normalised hashed bag-of-words vector for ``text``."""
    vec = [0.0] * dim
    for token in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dim
        vec[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        vec[0] = 1.0
        return vec
    return [v / norm for v in vec]


class HashEmbedder:
    """Callable embedder for ``Memory(embedder=...)``: ``list[str] -> list[vector]``."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls = 0

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        return [hash_embed(t, self.dim) for t in texts]


def crew_embedder_config(dim: int = 64) -> Any:  # a dict CrewAI types as its provider-spec union
    """A ``Crew(embedder=...)`` config using :func:`hash_embed` through CrewAI's custom provider."""

    class HashEmbeddingFunction(CustomEmbeddingFunction, ChromaEmbeddingFunction):  # type: ignore[misc]
        # CrewAI's validator insists on chromadb's EmbeddingFunction as a base too.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        @staticmethod
        def name() -> str:
            return "crewai_rust_hash"

        def __call__(self, input: Sequence[str]) -> list[list[float]]:  # type: ignore[override]  # noqa: A002
            return [hash_embed(t, dim) for t in input]

    HashEmbeddingFunction.__name__ = f"HashEmbeddingFunction{dim}"
    return {"provider": "custom", "config": {"embedding_callable": HashEmbeddingFunction}}


Responder = Callable[[list[dict[str, Any]], "list[dict[str, Any]] | None"], Any]


def _text_of(messages: str | Sequence[Any]) -> str:
    if isinstance(messages, str):
        return messages
    parts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", "")
        if isinstance(content, list):
            content = " ".join(str(c.get("text", "")) if isinstance(c, dict) else str(c) for c in content)
        parts.append(str(content or ""))
    return "\n".join(parts)


_TASK_LINE = re.compile(r"Current Task:\s*(.+)")


def task_description(messages: str | Sequence[Any]) -> str | None:
    """The ``Current Task:`` line CrewAI puts in an agent's prompt, if any."""
    found = _TASK_LINE.search(_text_of(messages))
    return found.group(1).strip() if found else None


def default_answer(messages: str | Sequence[Any]) -> str:
    """A deterministic final answer that depends only on the task text (not on recalled memory)."""
    task = task_description(messages) or _text_of(messages)[-200:]
    digest = hashlib.sha1(task.encode("utf-8")).hexdigest()[:10]
    return f"Completed '{task[:120]}' (ref {digest})."


def _structured(
    response_model: type[BaseModel], messages: str | Sequence[Any], extract: Callable[[str], list[str]] | None = None
) -> BaseModel:
    """Valid, deterministic instances of memory's structured-output models."""
    text = _text_of(messages)
    name = response_model.__name__
    if name == "ExtractedMemories":
        body = text.strip().splitlines()[-1] if text.strip() else "nothing"
        return response_model(memories=extract(body) if extract is not None else [body[:300]])
    if name == "MemoryAnalysis":
        return response_model(suggested_scope="/", categories=["general"], importance=0.5)
    if name == "QueryAnalysis":
        words = sorted(set(_WORD.findall(text.lower())))[:5]
        query = text.strip().splitlines()[-1][:200] if text.strip() else ""
        return response_model(keywords=words, suggested_scopes=["/"], complexity="simple", recall_queries=[query])
    if name == "ConsolidationPlan":
        return response_model(actions=[], insert_new=True, insert_reason="new information")
    return response_model.model_validate({})


class ScriptedLLM(BaseLLM):
    """A ``BaseLLM`` that answers offline from the request content.

    ``respond(messages, tools)`` may return a string, a list of tool-call dicts,
    or None for the default answer. ``latency`` seconds are slept per call
    (``time.sleep`` releases the GIL, like a network wait). ``extract_memories(text)``
    gives the memories extracted from a task's result (default: its last line, one memory).
    """

    model: str = "scripted-offline"
    latency: float = 0.0
    _respond: Responder | None = PrivateAttr(default=None)
    _extract: Callable[[str], list[str]] | None = PrivateAttr(default=None)
    _calls: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self, respond: Responder | None = None, *, latency: float = 0.0, model: str = "scripted-offline",
        extract_memories: Callable[[str], list[str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(model=model, latency=latency, **kwargs)  # type: ignore[call-arg]  # our field
        self._respond = respond
        self._extract = extract_memories

    @property
    def calls(self) -> int:
        """How many times ``call`` ran."""
        return self._calls

    def call(
        self,
        messages: Any,
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> Any:
        with self._lock:
            self._calls += 1
        if self.latency > 0:
            time.sleep(self.latency)
        if response_model is not None:
            return _structured(response_model, messages, self._extract)
        msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        if self._respond is not None:
            answer = self._respond(msgs, tools)
            if answer is not None:
                return answer
        return default_answer(msgs)

    def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
        """One token per four characters, like CrewAI's fallback, without its per-call warning."""
        return (len(_text_of(messages)) + 3) // 4

    def supports_function_calling(self) -> bool:
        return True

    def supports_stop_words(self) -> bool:
        return False

    def get_context_window_size(self) -> int:
        return 128_000
