"""The worker-process side of the ``processes`` backend.

A worker is started by the forkserver (CrewAI and crewai_rust already
imported there), takes the driver's environment and ``patch()`` settings, says
it is ready, then runs jobs on ``threads`` daemon threads until the driver sends
``None`` or goes away. Jobs arrive as pickled ``(job_id, fn, arg)``; results go
back as ``("done", job_id, ok, value, traceback_text)``.

It ignores SIGINT: Ctrl-C in a terminal reaches the whole process group, and
it is the driver that decides what an interrupt means (it stops the pool).
When the driver's end of the pipe closes (the driver died), the worker exits at
once, so no worker outlives its driver.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import threading
import time
import traceback
from typing import Any

#: What each worker keeps between jobs: base crews by factory path.
_crews: dict[str, Any] = {}
_crews_lock = threading.Lock()
#: The first kickoff of a worker runs alone: CrewAI builds class-level flow definitions lazily on
#: first use, and concurrent first kickoffs in a fresh process have raced there ("dictionary
#: changed size during iteration" in ``crewai.flow.dsl._utils._iter_flow_methods``, seen once on
#: 16 threads of a new worker in benchmarks/bench_fanout.py).
_first_kickoff = threading.Lock()
_warm = False


def _apply_environment(env: dict[str, str]) -> None:
    # The forkserver was started with the driver's environment of that moment;
    # a worker must see the environment of the call that started it.
    os.environ.clear()
    os.environ.update(env)
    # A worker never fans out to processes itself.
    os.environ["CREWAI_RUST_TASKS_BACKEND"] = "threads"


def _apply_patch(settings: dict[str, dict[str, Any]] | None) -> None:
    if not settings:
        return
    import crewai_rust

    options = {name.lower(): dict(opts) for name, opts in settings.items()}
    tasks = options.get("tasks")
    if tasks is not None:
        for key in ("backend", "crew_factory", "workers", "ray_address"):
            tasks.pop(key, None)
    crewai_rust.patch(list(settings), **options)


def _encode_result(job_id: int, ok: bool, value: Any, tb: str | None) -> bytes:
    try:
        return pickle.dumps(("done", job_id, ok, value, tb), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an unpicklable result or exception
        what = "result" if ok else f"exception {type(value).__name__}: {value}"
        error = RuntimeError(f"the {what} of this job could not be sent back from the worker process: {type(exc).__name__}: {exc}")
        return pickle.dumps(("done", job_id, False, error, tb), pickle.HIGHEST_PROTOCOL)


def worker_main(conn: Any, spec: dict[str, Any]) -> None:
    """Entry point of one worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _apply_environment(spec["env"])
        _apply_patch(spec.get("patch"))
    except BaseException:
        conn.send_bytes(pickle.dumps(("fatal", traceback.format_exc())))
        return
    send_lock = threading.Lock()
    jobs: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def send(data: bytes) -> None:
        with send_lock:
            try:
                conn.send_bytes(data)
            except OSError:  # the driver is gone
                os._exit(0)

    def serve() -> None:
        while True:
            raw = jobs.get()
            if raw is None:
                return
            job_id, fn, arg = pickle.loads(raw)
            try:
                value, ok, tb = fn(arg), True, None
            except BaseException as exc:
                value, ok, tb = exc, False, traceback.format_exc()
            data = _encode_result(job_id, ok, value, tb)
            del value
            send(data)

    for n in range(int(spec["threads"])):
        threading.Thread(target=serve, name=f"crewai_rust-worker-{n}", daemon=True).start()
    send(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(0)  # the driver died: leave now, whatever is running
        if raw == b"":
            break
        jobs.put(raw)
    _drain_memory_writes()


def _drain_memory_writes() -> None:
    for crew in list(_crews.values()):
        memory = getattr(crew, "_memory", None)
        drain = getattr(memory, "drain_writes", None)
        if callable(drain):
            try:
                drain()
            except Exception:
                pass


# -- the crew job ---------------------------------------------------------------
def _base_crew(factory: str) -> Any:
    crew = _crews.get(factory)
    if crew is None:
        with _crews_lock:
            crew = _crews.get(factory)
            if crew is None:
                from ._factory import build_crew

                crew = _crews[factory] = build_crew(factory)
    return crew


def _kickoff(crew: Any, inputs: dict[str, Any], input_files: Any) -> Any:
    global _warm
    if not _warm:
        with _first_kickoff:
            if not _warm:
                try:
                    return crew.kickoff(inputs=inputs, input_files=input_files)
                finally:
                    _warm = True
    return crew.kickoff(inputs=inputs, input_files=input_files)


def run_crew_input(job: tuple[str, dict[str, Any], Any]) -> tuple[Any, Any, float]:
    """One input of a fan-out: a copy of this worker's crew, private token counters, memory writes drained.

    Returns ``(CrewOutput, RunUsage with positional LLM keys, seconds)``.
    """
    from ._usage import RunUsage, UsageLedger

    factory, inputs, input_files = job
    started = time.perf_counter()
    crew = _base_crew(factory).copy()
    ledger = UsageLedger(crew)
    try:
        output = _kickoff(crew, inputs, input_files)
    finally:
        ledger.merge_back()
        memory = getattr(crew, "_memory", None)
        if memory is not None and callable(getattr(memory, "drain_writes", None)):
            memory.drain_writes()  # "finished" means other processes can recall it
    usage = ledger.record(crew)
    if usage is not None:
        # LLMs are named by their position in the crew, which the driver's crew shares.
        usage = RunUsage(own=usage.own, fixed=usage.fixed,
                         terms=[(pos, times, private) for pos, (_, times, private) in enumerate(usage.terms)])
    return output, usage, time.perf_counter() - started
