"""The driver side of the ``processes`` backend: a lazily started, reused pool of worker processes.

Why a pool of our own and not ``ProcessPoolExecutor``: one dead worker breaks
a whole ``ProcessPoolExecutor``, and its workers run one job each. Here each
worker runs up to ``threads`` jobs at once (CrewAI kickoffs mostly wait on
LLM calls), a worker that dies fails only the jobs it held (with
:class:`WorkerDiedError`) and is replaced, and a worker that cannot even start
(typically a script without an ``if __name__ == "__main__":`` guard) fails the
pool once instead of being restarted in a loop.

One dispatcher thread per pool owns the pipes: it sends jobs to the least
loaded worker (rotating on ties, so consecutive calls spread out), reads
results and watches the process sentinels. Workers come from a forkserver
that preloads CrewAI and crewai_rust, so only the first start pays the 2-4 s
CrewAI import. Workers are daemon processes, stopped at interpreter exit, on
:meth:`ProcessPool.shutdown` and when the driver dies (they see the pipe close).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import types
import warnings
import weakref
from collections import deque
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait
from typing import Any

logger = logging.getLogger("crewai_rust")

#: Imported once by the forkserver. Python's forkserver (3.10-3.13) ignores the driver's run-time
#: ``sys.path`` changes, so crewai_rust is preloaded only when importable without them (installed,
#: ``PYTHONPATH``, the current directory); otherwise each worker imports it (~35 ms) after the fork.
PRELOAD = ["crewai", "crewai_rust.tasks._worker", "crewai_rust.tasks._usage"]
START_TIMEOUT = 120.0

_GUARD_HINT = (
    "the usual cause is a script that starts a process fan-out (kickoff_many, kickoff_for_each with "
    "backend='processes', RustTaskExecutor(backend='processes')) at import time: worker processes import "
    "the main script, so put that code under `if __name__ == \"__main__\":`"
)


class WorkerDiedError(RuntimeError):
    """The worker process running this job died (killed, crashed, out of memory)."""


class PoolStartError(RuntimeError):
    """No worker process could be started."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (set as its ``__cause__``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def check_not_bootstrapping() -> None:
    """Refuse to start a pool while this process is a worker importing the main script."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "crewai_rust: a process fan-out was started while a new worker process was importing the main "
            "script; " + _GUARD_HINT
        )


_warned = False


def warn_listeners_once() -> None:
    """Event listeners of the driver never see events of runs in other processes: say it once."""
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        "crewai_rust: kickoffs now run in worker processes; event listeners registered in this process "
        "(crewai_event_bus handlers, custom BaseEventListener classes) do not see the events of those runs",
        RuntimeWarning,
        stacklevel=_first_caller_outside_package(),
    )


def _first_caller_outside_package() -> int:
    """The ``stacklevel`` of the first frame outside crewai_rust: the warning names the user's line."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame: types.FrameType | None = sys._getframe(1)  # the caller of warnings.warn
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class Job:
    """One submitted call: its future and when a worker started it (for per-item timeouts)."""

    __slots__ = ("future", "job_id", "payload", "started_at", "worker")

    def __init__(self, job_id: int, payload: bytes) -> None:
        self.job_id = job_id
        self.payload = payload
        self.future: Future[Any] = Future()
        self.started_at: float | None = None
        self.worker: int | None = None


class _Worker:
    __slots__ = ("conn", "inflight", "pid", "process", "ready", "serial")

    def __init__(self, process: Any, conn: Connection, serial: int) -> None:
        self.process = process
        self.conn = conn
        self.serial = serial
        self.pid: int | None = process.pid
        self.ready = False
        self.inflight: dict[int, Job] = {}


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ProcessPool:
    """``workers`` processes running up to ``threads`` jobs each; ``submit`` returns a :class:`Job`."""

    def __init__(self, workers: int, threads: int, patch_settings: dict[str, dict[str, Any]] | None = None) -> None:
        if workers < 1 or threads < 1:
            raise ValueError("workers and threads must be at least 1")
        self.workers = workers
        self.threads = threads
        self.patch_settings = patch_settings or {}
        self._lock = threading.Lock()
        self._pending: deque[Job] = deque()
        self._live: dict[int, _Worker] = {}
        self._serial = 0
        self._next_job = 0
        self._rotate = 0
        self._closed = False
        self._broken: BaseException | None = None
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._thread: threading.Thread | None = None
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.replaced = 0
        _pools.add(self)

    # -- public --------------------------------------------------------------
    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return [w.pid for w in self._live.values() if w.pid is not None]

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        """Start the workers (if not yet) and wait until each is ready; raises :class:`PoolStartError`."""
        check_not_bootstrapping()
        with self._lock:
            if self._closed:
                raise RuntimeError("this process pool was shut down")
            if self._thread is None:
                self.started_at = time.perf_counter()
                for _ in range(self.workers):
                    self._spawn_locked()
                self._thread = threading.Thread(target=self._dispatch, name="crewai_rust-process-pool", daemon=True)
                self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with self._lock:
                if self._broken is not None:
                    raise self._broken
                if self.ready_at is not None:
                    return
                if self._live and all(w.ready for w in self._live.values()):
                    if self.ready_at is None:
                        self.ready_at = time.perf_counter()
                    return
            if time.monotonic() > deadline:
                raise PoolStartError(f"worker processes not ready after {START_TIMEOUT:g} s")
            time.sleep(0.005)

    def submit(self, fn: Any, arg: Any) -> Job:
        """Queue ``fn(arg)`` for a worker; ``fn`` and ``arg`` must pickle (``fn`` by reference)."""
        self.start()
        payload_id = self._new_job_id()
        job = Job(payload_id, pickle.dumps((payload_id, fn, arg), pickle.HIGHEST_PROTOCOL))
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._closed:
                raise RuntimeError("this process pool was shut down")
            self._pending.append(job)
        self._wake()
        return job

    def shutdown(self, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop the workers: gracefully (their memory writes drained) or, with ``kill``, at once.

        Jobs not started are cancelled; running ones fail with :class:`WorkerDiedError`.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending, self._pending = list(self._pending), deque()
            workers = list(self._live.values())
        for job in pending:
            job.future.cancel()
        for worker in workers:
            if kill:
                worker.process.kill()
            else:
                try:
                    worker.conn.send_bytes(b"")
                except OSError:
                    pass
        self._wake()
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            for worker in list(self._live.values()):
                self._fail_worker_locked(worker, "was stopped by the pool's shutdown")
            self._live.clear()
        for worker in workers:
            worker.conn.close()
        self._wake_w.close()
        if self._thread is None or not self._thread.is_alive():
            self._wake_r.close()

    # -- dispatcher ------------------------------------------------------------
    def _new_job_id(self) -> int:
        with self._lock:
            self._next_job += 1
            return self._next_job

    def _wake(self) -> None:
        try:
            self._wake_w.send_bytes(b"w")
        except OSError:
            pass

    def _spawn_locked(self) -> None:
        from ._worker import worker_main

        ctx = _context()
        parent, child = ctx.Pipe(duplex=True)
        spec = {"env": dict(os.environ), "patch": self.patch_settings, "threads": self.threads}
        process = ctx.Process(target=worker_main, args=(child, spec), name="crewai_rust-worker", daemon=True)
        process.start()
        child.close()
        self._serial += 1
        self._live[self._serial] = _Worker(process, parent, self._serial)

    def _fail_worker_locked(self, worker: _Worker, reason: str) -> None:
        for job in worker.inflight.values():
            if not job.future.done():
                job.future.set_exception(WorkerDiedError(f"worker process {worker.pid} {reason} while running this input"))
        worker.inflight.clear()

    def _dispatch(self) -> None:
        try:
            while not self._closed:
                with self._lock:
                    self._send_pending_locked()
                    waitables: list[Any] = [self._wake_r]
                    owners: dict[Any, _Worker] = {}
                    for worker in self._live.values():
                        waitables += [worker.conn, worker.process.sentinel]
                        owners[worker.conn] = owners[worker.process.sentinel] = worker
                for ready in wait(waitables):
                    if ready is self._wake_r:
                        try:
                            while self._wake_r.poll():
                                self._wake_r.recv_bytes()
                        except (EOFError, OSError):
                            return
                        continue
                    worker = owners[ready]
                    if ready is worker.conn:
                        self._read(worker)
                    else:
                        self._on_exit(worker)
        except Exception:  # never die silently: fail whoever waits
            logger.exception("crewai_rust process pool dispatcher failed")
            with self._lock:
                self._broken = RuntimeError("the crewai_rust process pool dispatcher failed (see the log)")
                for worker in self._live.values():
                    self._fail_worker_locked(worker, "was abandoned by a failed dispatcher")
                    worker.process.kill()
                for job in self._pending:
                    job.future.cancel()

    def _send_pending_locked(self) -> None:
        ready = [w for w in self._live.values() if w.ready]
        while self._pending and ready:
            free = [w for w in ready if len(w.inflight) < self.threads]
            if not free:
                return
            least = min(len(w.inflight) for w in free)
            tied = [w for w in free if len(w.inflight) == least]
            worker = tied[self._rotate % len(tied)]
            self._rotate += 1
            job = self._pending.popleft()
            if not job.future.set_running_or_notify_cancel():
                continue
            job.started_at = time.monotonic()
            job.worker = worker.pid
            worker.inflight[job.job_id] = job
            try:
                worker.conn.send_bytes(job.payload)
            except OSError:
                pass  # its sentinel reports the death and fails the job

    def _read(self, worker: _Worker) -> None:
        try:
            message = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            self._on_exit(worker)
            return
        except Exception as exc:  # a result that does not unpickle here
            logger.warning("crewai_rust process pool: unreadable message from worker %s: %s", worker.pid, exc)
            return
        kind = message[0]
        with self._lock:
            if kind == "ready":
                worker.ready = True
                worker.pid = message[1]
            elif kind == "done":
                _, job_id, ok, value, tb = message
                job = worker.inflight.pop(job_id, None)
                if job is not None and not job.future.done():
                    if ok:
                        job.future.set_result(value)
                    else:
                        if tb and isinstance(value, BaseException) and value.__cause__ is None:
                            value.__cause__ = RemoteTraceback(f"\n(in worker process {worker.pid})\n{tb}")
                        job.future.set_exception(value)
            elif kind == "fatal":
                self._broken = PoolStartError(f"a worker process could not apply the driver's settings:\n{message[1]}")
                self._fail_pending_locked(self._broken)

    def _fail_pending_locked(self, error: BaseException) -> None:
        for job in self._pending:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(error)
        self._pending.clear()

    def _on_exit(self, worker: _Worker) -> None:
        worker.process.join(1.0)
        code = worker.process.exitcode
        with self._lock:
            if self._live.pop(worker.serial, None) is None:
                return
            self._fail_worker_locked(worker, f"died ({_describe_exit(code)})")
            worker.conn.close()
            if self._closed:
                return
            if not worker.ready:
                # It never came up: restarting it would only repeat the failure.
                if not any(w.ready for w in self._live.values()):
                    self._broken = PoolStartError(
                        f"a crewai_rust worker process exited during start-up ({_describe_exit(code)}); its error is "
                        f"on stderr above; {_GUARD_HINT}"
                    )
                    self._fail_pending_locked(self._broken)
                    for other in self._live.values():
                        other.process.kill()
                return
            self.replaced += 1
            logger.warning("crewai_rust process pool: worker %s %s; starting a replacement", worker.pid, _describe_exit(code))
            self._spawn_locked()


_pools: weakref.WeakSet[ProcessPool] = weakref.WeakSet()


def _shutdown_all() -> None:
    for pool in list(_pools):
        try:
            pool.shutdown(timeout=3.0)
        except Exception:
            pass


atexit.register(_shutdown_all)
