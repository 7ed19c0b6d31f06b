"""Two machines, one memory: an offline crew in process A saves memories through
``CREWAI_RUST_MEMORY_URL``; a crew in process B (its own empty storage directory) recalls them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _subprocess_env import child_env

pytestmark = [pytest.mark.slow, pytest.mark.crew]


SCRIPT = textwrap.dedent(
    """
    import json, sys
    from crewai_rust.testing import configure_offline
    configure_offline(sys.argv[2])
    import crewai_rust
    state = crewai_rust.patch("memory", memory={"use_rust": sys.argv[3] == "rust"})
    from crewai import Agent, Crew, Task
    from crewai_rust.memory import RustMemoryStorage
    from crewai_rust.testing import ScriptedLLM, crew_embedder_config

    def crew(topic):
        agent = Agent(role="Researcher", goal="learn about birds", backstory="a careful birder", llm=ScriptedLLM())
        tasks = [
            Task(description=f"Describe the {topic} of the barn owl", expected_output="a sentence", agent=agent),
            Task(description=f"Summarise what we know about {topic}", expected_output="a sentence", agent=agent),
        ]
        return Crew(agents=[agent], tasks=tasks, memory=True, embedder=crew_embedder_config(64))

    c = crew("hunting")
    store = c._memory._storage
    assert isinstance(store, RustMemoryStorage) and store.path is None, store
    recalled = []
    if sys.argv[1] == "recall":
        before = {r.id for r in store.list_records(limit=10_000)}
        original = store.search

        def spy(*args, **kwargs):
            result = original(*args, **kwargs)
            recalled.extend(r.id for r, _ in result)
            return result

        store.search = spy
    else:
        before = set()
    c.kickoff()
    c._memory.drain_writes()
    ids = sorted(r.id for r in store.list_records(limit=10_000))
    print(json.dumps({"before": sorted(before), "ids": ids, "recalled": recalled,
                      "implementation": state["components"]["MEMORY"]["implementation"],
                      "location": store.location}))
    crewai_rust.unpatch()
    """
)


def _run(mode: str, url: str, storage_dir: Path, impl: str) -> dict:
    env = child_env()
    env["CREWAI_RUST_MEMORY_URL"] = url + "?namespace=birds"
    env.pop("CREWAI_STORAGE_DIR", None)
    storage_dir.mkdir()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(storage_dir), impl],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_crew_in_process_b_recalls_what_a_crew_in_process_a_saved(pg_url: str, tmp_path: Path,
                                                                   use_rust: bool) -> None:
    impl = "rust" if use_rust else "python"
    saved = _run("save", pg_url, tmp_path / "machine_a", impl)
    assert saved["ids"] and saved["implementation"] == impl and "namespace birds" in saved["location"]
    recall = _run("recall", pg_url, tmp_path / "machine_b", impl)
    assert recall["before"] == saved["ids"]  # B's store opened on what A committed, nothing local
    assert set(recall["recalled"]) & set(saved["ids"]), recall  # B's crew recalled A's memories
    assert set(saved["ids"]) <= set(recall["ids"])
    assert not list((tmp_path / "machine_b").rglob("*.sqlite3"))  # no local memory file was made
