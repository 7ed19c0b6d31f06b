"""RustTaskExecutor under both twins: order, bound, errors, timeouts, context, nesting."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pytest

from crewai_rust.tasks import RustTaskExecutor


class Gauge:
    """Counts callables running right now and the most seen at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.finished = 0

    def __enter__(self) -> Gauge:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1
            self.finished += 1


def test_results_in_input_order_and_implementation(use_rust: bool) -> None:
    ex = RustTaskExecutor(4, use_rust=use_rust)
    assert ex.implementation == ("rust" if use_rust else "python")
    delays = [0.02, 0.0, 0.01, 0.0, 0.015, 0.005]
    assert ex.map(lambda d: (time.sleep(d), d)[1], delays) == delays
    assert ex.map(lambda x: x * 2, (i for i in range(1000))) == [i * 2 for i in range(1000)]
    assert ex.map(str, []) == []


def test_bound_holds_and_work_overlaps(use_rust: bool) -> None:
    gauge = Gauge()

    def job(_: int) -> None:
        with gauge:
            time.sleep(0.01)

    RustTaskExecutor(3, use_rust=use_rust).map(job, range(12))
    assert gauge.peak <= 3
    assert gauge.peak >= 2, "sleeping jobs release the GIL, so they overlap"
    assert gauge.finished == 12


def test_bound_is_shared_by_concurrent_calls(use_rust: bool) -> None:
    ex = RustTaskExecutor(2, use_rust=use_rust)
    gauge = Gauge()

    def job(_: int) -> None:
        with gauge:
            time.sleep(0.005)

    callers = [threading.Thread(target=ex.map, args=(job, range(6))) for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert gauge.peak <= 2 and gauge.finished == 18


def test_return_exceptions_reports_each_item(use_rust: bool) -> None:
    out = RustTaskExecutor(2, use_rust=use_rust).map(lambda x: 10 // x, [5, 0, 2, 0], return_exceptions=True)
    assert out[0] == 2 and out[2] == 5
    assert isinstance(out[1], ZeroDivisionError) and isinstance(out[3], ZeroDivisionError)


def test_first_error_cancels_items_not_started(use_rust: bool) -> None:
    started: list[int] = []

    def job(x: int) -> int:
        started.append(x)
        if x == 0:
            raise ValueError("first item fails")
        return x

    with pytest.raises(ValueError, match="first item fails"):
        RustTaskExecutor(1, use_rust=use_rust).map(job, range(50))
    assert started == [0]


def test_running_items_finish_before_the_error_is_raised(use_rust: bool) -> None:
    gauge = Gauge()

    def job(x: int) -> int:
        with gauge:
            if x == 0:
                raise KeyError("boom")
            time.sleep(0.03)
            return x

    with pytest.raises(KeyError):
        RustTaskExecutor(4, use_rust=use_rust).map(job, range(40))
    assert gauge.now == 0, "nothing started by the call runs after it returns"
    finished = gauge.finished
    time.sleep(0.05)
    assert gauge.finished == finished
    assert finished < 40


def test_timeout_reports_item_and_joins_the_straggler(use_rust: bool) -> None:
    gauge = Gauge()

    def job(d: float) -> float:
        with gauge:
            time.sleep(d)
        return d

    ex = RustTaskExecutor(4, use_rust=use_rust)
    out = ex.map(job, [0.0, 0.4, 0.0], timeout=0.15, return_exceptions=True)
    assert out[0] == 0.0 and out[2] == 0.0
    assert isinstance(out[1], TimeoutError)
    assert str(out[1]) == "item 1 did not finish within 0.15 s"
    assert gauge.now == 0 and gauge.finished == 3, "the overrunning call returned before map did"
    with pytest.raises(TimeoutError, match="item 0 did not finish"):
        ex.map(job, [0.2], timeout=0.02)


def test_context_variables_reach_jobs_and_stay_per_job(use_rust: bool) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("caller_var", default="unset")
    var.set("from caller")

    def job(i: int) -> str:
        seen = var.get()
        var.set(f"job {i}")
        time.sleep(0.002)
        return f"{seen}|{var.get()}"

    out = RustTaskExecutor(4, use_rust=use_rust).map(job, range(8))
    assert out == [f"from caller|job {i}" for i in range(8)]
    assert var.get() == "from caller"


def test_nested_map_on_same_executor_does_not_deadlock(use_rust: bool) -> None:
    ex = RustTaskExecutor(1, use_rust=use_rust)

    def outer(x: int) -> list[int]:
        return ex.map(lambda y: x * 10 + y, range(3))

    assert ex.map(outer, range(3)) == [[0, 1, 2], [10, 11, 12], [20, 21, 22]]
    future = ex.submit(lambda: ex.submit(lambda: "inner").result(timeout=5))
    assert future.result(timeout=5) == "inner"


def test_on_progress_counts_up_in_the_caller_thread(use_rust: bool) -> None:
    calls: list[tuple[int, int, str]] = []
    RustTaskExecutor(3, use_rust=use_rust).map(
        lambda x: x, range(7), on_progress=lambda done, total: calls.append((done, total, threading.current_thread().name))
    )
    assert [c[:2] for c in calls] == [(i, 7) for i in range(1, 8)]
    assert {c[2] for c in calls} == {threading.current_thread().name}


def test_failing_progress_callback_stops_the_call(use_rust: bool) -> None:
    ran: list[int] = []

    def progress(done: int, total: int) -> None:
        raise RuntimeError("progress sink broke")

    with pytest.raises(RuntimeError, match="progress sink broke"):
        RustTaskExecutor(1, use_rust=use_rust).map(lambda x: (time.sleep(0.002), ran.append(x)), range(100), on_progress=progress)
    assert len(ran) < 100


def test_execute_concurrent_tasks_and_submit(use_rust: bool) -> None:
    ex = RustTaskExecutor(2, use_rust=use_rust)
    assert ex.execute_concurrent_tasks([lambda i=i: i * i for i in range(5)]) == [0, 1, 4, 9, 16]
    assert ex.submit(pow, 2, 10).result(timeout=5) == 1024
    failing = ex.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=5)


def test_spawn_errors_go_to_unraisablehook(use_rust: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    done = threading.Event()

    def hook(args: Any) -> None:
        seen.append(args.exc_value)
        done.set()

    monkeypatch.setattr("sys.unraisablehook", hook)

    def broken() -> None:
        raise LookupError("lost job")

    RustTaskExecutor(1, use_rust=use_rust).spawn(broken)
    assert done.wait(5)
    assert isinstance(seen[0], LookupError)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_concurrency": 0}, ValueError),
        ({"max_concurrency": 2.5}, TypeError),
        ({"max_concurrency": True}, TypeError),
    ],
)
def test_bad_construction_is_rejected(use_rust: bool, kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        RustTaskExecutor(use_rust=use_rust, **kwargs)


def test_bad_arguments_are_rejected_before_anything_runs(use_rust: bool) -> None:
    ex = RustTaskExecutor(2, use_rust=use_rust)
    ran: list[int] = []
    with pytest.raises(ValueError, match="timeout must be positive"):
        ex.map(ran.append, [1], timeout=0)
    with pytest.raises(TypeError, match="timeout"):
        ex.map(ran.append, [1], timeout="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fn must be callable"):
        ex.map(42, [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"callables\[1\]"):
        ex.execute_concurrent_tasks([lambda: 1, "not callable"])  # type: ignore[list-item]
    assert ran == []


def test_default_bound_from_environment(use_rust: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_RUST_MAX_CONCURRENCY", "5")
    assert RustTaskExecutor(use_rust=use_rust).max_concurrency == 5
    monkeypatch.setenv("CREWAI_RUST_MAX_CONCURRENCY", "zero")
    with pytest.raises(ValueError, match="CREWAI_RUST_MAX_CONCURRENCY"):
        RustTaskExecutor(use_rust=use_rust)
    monkeypatch.delenv("CREWAI_RUST_MAX_CONCURRENCY")
    assert RustTaskExecutor(use_rust=use_rust).max_concurrency == 16


def test_amap_coroutines_bounded_with_real_cancellation_on_timeout(use_rust: bool) -> None:
    ex = RustTaskExecutor(2, use_rust=use_rust)
    gauge = Gauge()
    cancelled: list[int] = []

    async def job(d: float) -> float:
        with gauge:
            try:
                await asyncio.sleep(d)
            except asyncio.CancelledError:
                cancelled.append(1)
                raise
        return d

    out = asyncio.run(ex.amap(job, [0.01, 0.5, 0.0, 0.01], timeout=0.05, return_exceptions=True))
    assert out[0] == 0.01 and out[2] == 0.0 and out[3] == 0.01
    assert isinstance(out[1], TimeoutError) and cancelled == [1]
    assert gauge.peak <= 2 and gauge.now == 0


def test_amap_runs_plain_functions_off_the_loop(use_rust: bool) -> None:
    ex = RustTaskExecutor(3, use_rust=use_rust)
    loop_thread: list[str] = []

    def job(x: int) -> str:
        time.sleep(0.01)
        return threading.current_thread().name

    async def main() -> list[Any]:
        loop_thread.append(threading.current_thread().name)
        return await ex.amap(job, range(6))

    names = asyncio.run(main())
    assert len(names) == 6 and loop_thread[0] not in names
    with pytest.raises(ZeroDivisionError):
        asyncio.run(ex.amap(lambda x: 1 / x, [1, 0, 2]))
