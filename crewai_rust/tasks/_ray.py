"""The driver side of the ``ray`` backend: a pool of long-lived threaded Ray actors.

Why actors and not Ray tasks: a task with fractional CPUs lands in whatever
worker Ray picks and re-imports CrewAI there (2-4 s each; measured 39.7 s for
64 kickoffs), while an actor builds its crew once and runs many inputs on its
threads. :class:`RayPool` has the :class:`._procpool.ProcessPool` interface
(``start``, ``submit`` returning a :class:`._procpool.Job`, ``shutdown``), so
:func:`._procmap.process_map` gives Ray the same ordering, timeout, error and
cancellation rules as the process backend. An actor that dies fails only the
jobs it held, with :class:`._procpool.WorkerDiedError`, and is replaced.

Ray is imported only here, and only when a Ray pool starts. With
``address=None`` an already initialised Ray is reused, else a local one is
started (``ray.init(num_cpus=<CPU count>)``) once per process. When every
Ray node is this machine, actors get the driver's whole environment and its
``sys.path`` (as worker processes do); on a cluster they get only the
``CREWAI*`` variables, and the factory's module must be importable on the
nodes (ship it with Ray's ``runtime_env``).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future
from typing import Any

from ._procpool import Job, PoolStartError, RemoteTraceback, WorkerDiedError

logger = logging.getLogger("crewai_rust")

START_TIMEOUT = 180.0
RAY_EXTRA_HINT = "the ray backend needs Ray: pip install 'crewai_rust[ray]'"

_init_lock = threading.Lock()
_exit_hook = False


def ray_available() -> bool:
    """Whether Ray can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def check_ray_available() -> None:
    """Raise the error naming the ``crewai_rust[ray]`` extra when Ray is not installed."""
    if not ray_available():
        raise ImportError(f"crewai_rust: {RAY_EXTRA_HINT}")


def require_ray() -> Any:
    """The ``ray`` module, or an ImportError naming the ``crewai_rust[ray]`` extra."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"crewai_rust: {RAY_EXTRA_HINT} ({exc})") from exc
    return ray


def ensure_ray(address: str | None) -> Any:
    """Ray, initialised: the running one, else ``ray.init`` (local, or connected to ``address``)."""
    ray = require_ray()
    with _init_lock:
        if not ray.is_initialized():
            try:
                if address is None and not os.environ.get("RAY_ADDRESS"):
                    # "local": a new Ray of our own, never one found on the machine (which rejects num_cpus).
                    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                             logging_level=logging.WARNING)
                else:
                    ray.init(address=address, logging_level=logging.WARNING)
            except Exception as exc:
                where = "a local Ray" if address is None else f"Ray at {address!r}"
                raise PoolStartError(f"crewai_rust: could not start {where}: {type(exc).__name__}: {exc}") from exc
        global _exit_hook
        if not _exit_hook:
            # Registered after Ray's own exit hook, so it runs first: actors drain, then Ray stops.
            _exit_hook = True
            atexit.register(_shutdown_all)
    return ray


def _all_nodes_local(ray: Any) -> bool:
    here = ray.util.get_node_ip_address()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return bool(nodes) and all(n.get("NodeManagerAddress") == here for n in nodes)


def actor_spec(local: bool, patch_settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What an actor applies before its first job (see the module docstring)."""
    if local:
        env = dict(os.environ)
        path = [p for p in sys.path if p and os.path.isdir(p)]
    else:
        env = {k: v for k, v in os.environ.items() if k.upper().startswith("CREWAI")}
        path = []
    return {"env": env, "sys_path": path, "patch": patch_settings}


class _Actor:
    __slots__ = ("dead", "handle", "inflight", "pid", "ready", "serial")

    def __init__(self, handle: Any, serial: int) -> None:
        self.handle = handle
        self.serial = serial
        self.pid: int | None = None
        self.ready = False
        self.dead = False
        self.inflight: dict[int, Job] = {}


class RayPool:
    """``workers`` threaded Ray actors running up to ``threads`` jobs each; ``submit`` returns a Job."""

    def __init__(self, workers: int, threads: int, patch_settings: dict[str, dict[str, Any]] | None = None,
                 address: str | None = None) -> None:
        if workers < 1 or threads < 1:
            raise ValueError("workers and threads must be at least 1")
        self.workers = workers
        self.threads = threads
        self.patch_settings = patch_settings or {}
        self.address = address
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self._events: deque[tuple[str, _Actor, Job | None, Future[Any]]] = deque()
        self._live: dict[int, _Actor] = {}
        self._serial = 0
        self._next_job = 0
        self._rotate = 0
        self._closed = False
        self._broken: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._ray: Any = None
        self._actor_cls: Any = None
        self._spec: dict[str, Any] = {}
        self._options: dict[str, Any] = {}
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.replaced = 0
        _ray_pools.add(self)

    # -- public --------------------------------------------------------------
    @property
    def pids(self) -> list[int]:
        """Process ids of the live, ready actors."""
        with self._cond:
            return [a.pid for a in self._live.values() if a.pid is not None and not a.dead]

    @property
    def actors(self) -> dict[int, Any]:
        """Live actor handles by process id (for tests and tooling)."""
        with self._cond:
            return {a.pid: a.handle for a in self._live.values() if a.pid is not None and not a.dead}

    def running_on(self, pid: int) -> list[Any]:
        """The ``(fn, arg)`` of the jobs the actor with this pid is running."""
        with self._cond:
            return [job.payload for a in self._live.values() if a.pid == pid for job in a.inflight.values()]

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        """Start Ray (if needed) and the actors, and wait until each is ready; raises PoolStartError."""
        with self._cond:
            if self._closed:
                raise RuntimeError("this Ray pool was shut down")
            if self._thread is None:
                self.started_at = time.perf_counter()
                ray = self._ray = ensure_ray(self.address)
                from ._ray_actor import CrewActor

                local = _all_nodes_local(ray)
                self._spec = actor_spec(local, self.patch_settings)
                # One thread more than the jobs it runs: it holds the ``watch`` call.
                self._options = {"max_concurrency": self.threads + 1, "max_restarts": 0, "scheduling_strategy": "SPREAD"}
                if local and self._spec["sys_path"]:
                    # So the worker can import crewai_rust (and the factory's module) before __init__ runs.
                    self._options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(self._spec["sys_path"])}}
                self._actor_cls = ray.remote(CrewActor)
                for _ in range(self.workers):
                    self._spawn_locked()
                self._thread = threading.Thread(target=self._dispatch, name="crewai_rust-ray-pool", daemon=True)
                self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        with self._cond:
            while True:
                if self._broken is not None:
                    raise self._broken
                if self.ready_at is not None:
                    return
                if time.monotonic() > deadline:
                    raise PoolStartError(f"Ray actors not ready after {START_TIMEOUT:g} s")
                self._cond.wait(0.05)

    def submit(self, fn: Any, arg: Any) -> Job:
        """Queue ``fn(arg)`` for an actor (Ray serialises both, closures included)."""
        self.start()
        with self._cond:
            if self._broken is not None:
                raise self._broken
            if self._closed:
                raise RuntimeError("this Ray pool was shut down")
            self._next_job += 1
            job = Job(self._next_job, b"")
            job.payload = (fn, arg)  # type: ignore[assignment]
            self._pending.append(job)
            self._cond.notify_all()
        return job

    def shutdown(self, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop the actors: after draining their memory writes or, with ``kill``, at once.

        Jobs not started are cancelled; running ones fail with WorkerDiedError.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            pending, self._pending = list(self._pending), deque()
            actors = list(self._live.values())
            self._cond.notify_all()
        for job in pending:
            job.future.cancel()
        ray = self._ray
        if ray is not None and actors:
            if not kill:
                try:
                    ray.get([a.handle.drain.remote() for a in actors if not a.dead], timeout=timeout)
                except Exception:
                    pass
            for actor in actors:
                try:
                    ray.kill(actor.handle)
                except Exception:
                    pass
        failed: list[Job] = []
        with self._cond:
            for actor in actors:
                actor.dead = True
                failed += actor.inflight.values()
                actor.inflight.clear()
            self._live.clear()
        for job in failed:
            _fail(job, WorkerDiedError("the Ray actor running this input was stopped by the pool's shutdown"))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- dispatcher ------------------------------------------------------------
    def _spawn_locked(self) -> None:
        handle = self._actor_cls.options(**self._options).remote(self._spec)
        self._serial += 1
        actor = self._live[self._serial] = _Actor(handle, self._serial)
        handle.ready.remote().future().add_done_callback(lambda f: self._event("ready", actor, None, f))
        handle.watch.remote().future().add_done_callback(lambda f: self._event("watch", actor, None, f))

    def _event(self, kind: str, actor: _Actor, job: Job | None, future: Future[Any]) -> None:
        # Called on Ray's threads: only queue it, the dispatcher thread does the work.
        with self._cond:
            self._events.append((kind, actor, job, future))
            self._cond.notify_all()

    def _dispatch(self) -> None:
        try:
            while True:
                settle: list[tuple[Job, bool, Any]] = []
                with self._cond:
                    while not self._closed and not self._events and not self._can_send_locked():
                        self._cond.wait()
                    if self._closed:
                        return
                    while self._events:
                        self._handle_locked(*self._events.popleft(), settle)
                    self._send_pending_locked()
                for job, ok, value in settle:
                    _settle(job, ok, value)
        except Exception:  # never die silently: fail whoever waits
            logger.exception("crewai_rust Ray pool dispatcher failed")
            with self._cond:
                self._broken = RuntimeError("the crewai_rust Ray pool dispatcher failed (see the log)")
                jobs = [j for a in self._live.values() for j in a.inflight.values()] + list(self._pending)
                self._pending.clear()
                self._cond.notify_all()
            for job in jobs:
                _fail(job, self._broken)

    def _can_send_locked(self) -> bool:
        return bool(self._pending) and any(a.ready and len(a.inflight) < self.threads for a in self._live.values())

    def _handle_locked(self, kind: str, actor: _Actor, job: Job | None, future: Future[Any],
                       settle: list[tuple[Job, bool, Any]]) -> None:
        error = future.exception()
        if kind == "ready":
            if error is None:
                actor.pid = future.result()
                actor.ready = True
            elif not actor.dead:
                actor.dead = True
                self._live.pop(actor.serial, None)
                if not any(a.ready for a in self._live.values()):
                    # It never came up: restarting it would only repeat the failure.
                    self._broken = PoolStartError(f"a crewai_rust Ray actor could not start: {error}")
                    for waiting in self._pending:
                        settle.append((waiting, False, self._broken))
                    self._pending.clear()
                else:
                    logger.warning("crewai_rust Ray pool: an actor could not start: %s", error)
            if self.ready_at is None and self._live and all(a.ready for a in self._live.values()):
                self.ready_at = time.perf_counter()
            self._cond.notify_all()
            return
        if kind == "watch":  # the actor is gone, maybe while idle: replace it before a job is sent there
            if actor.ready and not actor.dead:
                died = self._died_locked(actor, error or RuntimeError("its watch call returned"))
                for other in list(actor.inflight.values()):
                    settle.append((other, False, died))
                actor.inflight.clear()
            return
        assert job is not None
        actor.inflight.pop(job.job_id, None)
        if error is None:
            import pickle

            _, _, ok, value, tb = pickle.loads(future.result())
            if not ok and tb and isinstance(value, BaseException) and value.__cause__ is None:
                value.__cause__ = RemoteTraceback(f"\n(in Ray actor process {actor.pid})\n{tb}")
            settle.append((job, ok, value))
        elif isinstance(error, self._ray.exceptions.RayActorError):
            settle.append((job, False, self._died_locked(actor, error)))
            for other in list(actor.inflight.values()):
                settle.append((other, False, self._died_locked(actor, error)))
            actor.inflight.clear()
        else:
            settle.append((job, False, error))

    def _died_locked(self, actor: _Actor, error: BaseException) -> WorkerDiedError:
        if not actor.dead:
            actor.dead = True
            self._live.pop(actor.serial, None)
            if not self._closed:
                self.replaced += 1
                logger.warning("crewai_rust Ray pool: actor %s died; starting a replacement", actor.pid)
                self._spawn_locked()
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return WorkerDiedError(f"the Ray actor (process {actor.pid}) died while running this input: {reason}")

    def _send_pending_locked(self) -> None:
        while self._pending:
            free = [a for a in self._live.values() if a.ready and not a.dead and len(a.inflight) < self.threads]
            if not free:
                return
            least = min(len(a.inflight) for a in free)
            tied = [a for a in free if len(a.inflight) == least]
            actor = tied[self._rotate % len(tied)]
            self._rotate += 1
            job = self._pending.popleft()
            if not job.future.set_running_or_notify_cancel():
                continue
            job.started_at = time.monotonic()
            job.worker = actor.pid
            actor.inflight[job.job_id] = job
            fn, arg = job.payload  # type: ignore[misc]
            ref = actor.handle.call.remote(job.job_id, fn, arg)
            ref.future().add_done_callback(lambda f, a=actor, j=job: self._event("done", a, j, f))


def _settle(job: Job, ok: bool, value: Any) -> None:
    """Complete a job's future once, whether a worker had started it or not."""
    future = job.future
    if future.done() or (not future.running() and not future.set_running_or_notify_cancel()):
        return  # already settled, or cancelled before it started
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except Exception:  # settled meanwhile by shutdown
        pass


def _fail(job: Job, error: BaseException) -> None:
    _settle(job, False, error)


_ray_pools: weakref.WeakSet[RayPool] = weakref.WeakSet()


def _shutdown_all() -> None:
    for pool in list(_ray_pools):
        try:
            pool.shutdown(timeout=3.0)
        except Exception:
            pass
