"""AgentMessage and dumps/loads: stock json vs plain orjson vs the python and rust twins.

Groups:
* ``message``: AgentMessage encode/decode of 1 and 1000 messages through the public API
  (``to_json``, ``AgentMessage.from_json``, ``dumps_many``, ``loads_many``). ``stock`` is
  ``json.dumps(doc, cls=CrewJSONEncoder)`` / ``json.loads`` of the equivalent dicts (what
  CrewAI would do), ``orjson`` plain orjson on the same dicts (no checks, no objects).
* ``dumps``: our ``dumps``/``loads`` (``python``: orjson + CrewJSONEncoder conversions + the
  NaN/width checks; no Rust twin) against stock json + CrewJSONEncoder and plain orjson on
  a task-output log, a memory record with a 3072-d embedding and 1000 records.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import main, measure  # noqa: E402

from crewai_rust._selection import speedups_module  # noqa: E402
from crewai_rust.serialization import AgentMessage, dumps, dumps_many, loads, loads_many  # noqa: E402

UTC = dt.timezone.utc


def _message_fields(i: int) -> dict[str, Any]:
    rng = random.Random(i)
    return {
        "role": "assistant" if i % 3 else "tool",
        "content": f"Thought: step {i}. " + "The analysis of the quarterly figures shows growth. " * 5,
        "id": f"msg-{i:06d}-5f0c2b7e-8d1a-4c3e-9b6f",
        "sender": "Senior Research Analyst",
        "task_id": "1f7c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b",
        "tool_calls": [{"id": f"call_{i}", "type": "function",
                        "function": {"name": "search", "arguments": "{\"query\": \"growth Q3\"}"}}] if i % 3 else None,
        "tool_call_id": None if i % 3 else f"call_{i}",
        "timestamp": dt.datetime(2024, 5, 1, 12, 0, 0, rng.randrange(1_000_000), tzinfo=UTC),
        "metadata": {"tokens": rng.randrange(50, 900), "latency_s": rng.random(), "model": "gpt-4o", "retry": False},
    }


def _build(fields: dict[str, Any], use_rust: bool) -> Any:
    fields = dict(fields)
    return AgentMessage(fields.pop("role"), fields.pop("content"), use_rust=use_rust, **fields)


def _message_rows(quick: bool, have_rust: bool) -> list[dict[str, Any]]:
    from crewai.utilities.crew_json_encoder import CrewJSONEncoder

    repeat = 5 if quick else 11
    rows: list[dict[str, Any]] = []
    impls = ["python"] + (["rust"] if have_rust else [])
    for count in (1, 1000):
        fields = [_message_fields(i) for i in range(count)]
        messages = {impl: [_build(f, impl == "rust") for f in fields] for impl in impls}
        docs = [m.to_dict() for m in messages["python"]]  # the equivalent dicts (timestamp as text)
        raw_docs = [{**d, "timestamp": f["timestamp"]} for d, f in zip(docs, fields)]  # as CrewAI would hold them
        number = 2000 if count == 1 else 3
        number = max(1, number // 4) if quick else number
        one = count == 1
        encode_case = "encode 1 message" if one else "encode 1000 messages"
        decode_case = "decode 1 message" if one else "decode 1000 messages"
        stock_obj: Any = raw_docs[0] if one else raw_docs
        rows.append(measure("message", encode_case, "stock", lambda o=stock_obj: json.dumps(o, cls=CrewJSONEncoder),
                            repeat=repeat, number=number))
        rows.append(measure("message", encode_case, "orjson", lambda o=stock_obj: orjson.dumps(o).decode(),
                            repeat=repeat, number=number))
        text = messages["python"][0].to_json() if one else dumps_many(messages["python"])
        rows.append(measure("message", decode_case, "stock", lambda t=text: json.loads(t), repeat=repeat, number=number))
        rows.append(measure("message", decode_case, "orjson", lambda t=text: orjson.loads(t), repeat=repeat,
                            number=number))
        for impl in impls:
            use_rust = impl == "rust"
            batch = messages[impl]
            if one:
                encode = batch[0].to_json
                def decode(t: str = text, r: bool = use_rust) -> Any:
                    return AgentMessage.from_json(t, use_rust=r)
            else:
                def encode(b: list[Any] = batch) -> str:
                    return dumps_many(b)
                def decode(t: str = text, r: bool = use_rust) -> Any:
                    return loads_many(t, use_rust=r)
            assert encode() == text  # both twins write the same bytes
            rows.append(measure("message", encode_case, impl, encode, repeat=repeat, number=number))
            rows.append(measure("message", decode_case, impl, decode, repeat=repeat, number=number))
    return rows


def _dumps_rows(quick: bool) -> list[dict[str, Any]]:
    from crewai.tasks.task_output import TaskOutput
    from crewai.utilities.crew_json_encoder import CrewJSONEncoder

    repeat = 5 if quick else 11
    rng = random.Random(7)
    log = TaskOutput(
        description="Research the market for solar panels in 2024 and summarise the findings",
        agent="Senior Research Analyst",
        raw="Final answer: " + "growth is strong. " * 20,
        json_dict={"score": 0.82, "tags": ["solar", "market"]},
        messages=[{"role": "user", "content": "Research solar"}, {"role": "assistant", "content": "Done"}],
    ).model_dump()
    record = {"id": "r1", "content": "fact", "scope": "/crew", "categories": ["x"], "metadata": {"k": 1},
              "importance": 0.5, "created_at": dt.datetime(2024, 5, 1, 12), "embedding": [rng.random() for _ in range(3072)]}
    records = [{**record, "id": f"r{i}", "embedding": None, "content": f"fact number {i} " * 4} for i in range(1000)]
    cases = [("task-output log", log, 2000), ("record + 3072-d embedding", record, 100), ("1000 records", records, 5)]
    rows: list[dict[str, Any]] = []
    for case, doc, number in cases:
        number = max(1, number // 4) if quick else number
        reference = json.dumps(doc, cls=CrewJSONEncoder)
        assert loads(dumps(doc)) == json.loads(reference)
        rows.append(measure("dumps", case, "stock", lambda d=doc: json.dumps(d, cls=CrewJSONEncoder), repeat=repeat,
                            number=number))
        rows.append(measure("dumps", case, "orjson", lambda d=doc: orjson.dumps(d, option=orjson.OPT_PASSTHROUGH_DATETIME,
                                                                               default=str).decode(),
                            repeat=repeat, number=number))
        rows.append(measure("dumps", case, "python", lambda d=doc: dumps(d), repeat=repeat, number=number))
        text = dumps(doc)
        rows.append(measure("loads", case, "stock", lambda t=text: json.loads(t), repeat=repeat, number=number))
        rows.append(measure("loads", case, "orjson", lambda t=text: orjson.loads(t), repeat=repeat, number=number))
        rows.append(measure("loads", case, "python", lambda t=text: loads(t), repeat=repeat, number=number))
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    have_rust = speedups_module() is not None and hasattr(speedups_module(), "AgentMessage")
    return _message_rows(quick, have_rust) + _dumps_rows(quick)


if __name__ == "__main__":
    main(run)
