"""WorkerPool end to end: real worker processes against a real server."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from actors import (
    Cancelled,
    Completed,
    Failed,
    OperationId,
    OperationKind,
    OperationProgressUpdate,
    OperationSpec,
    OperationStatus,
)
from transport import RegistryClient, RegistryServer
from transport.workers import (
    CallCancelled,
    CallHandle,
    OperationError,
    PoolTimeout,
    WorkerPool,
)

pytestmark = pytest.mark.timeout(120)


def square(x: int) -> int:
    return x * x


def boom(msg: str) -> None:
    raise ValueError(msg)


def cooperative(started, progress) -> str:  # type: ignore[no-untyped-def]
    progress("started", 10.0)
    started.set()
    pace = threading.Event()
    while True:
        progress("working", 50.0)  # raises CallCancelled once the call is cancelled
        pace.wait(0.01)


def stubborn(started) -> None:  # type: ignore[no-untyped-def]
    started.set()
    threading.Event().wait(3600)  # never looks at progress


def report_pid_and_hang(pids) -> None:  # type: ignore[no-untyped-def]
    pids.put(os.getpid())
    threading.Event().wait(3600)


def with_progress(progress) -> str:  # type: ignore[no-untyped-def]
    for p in (25.0, 50.0, 100.0):
        progress(f"at {p}", p)
    return "ok"


@pytest.fixture(scope="module")
def manager() -> Iterator[Any]:
    """Events and queues that work across the pool's worker processes."""
    mgr = multiprocessing.Manager()
    try:
        yield mgr
    finally:
        mgr.shutdown()


@pytest.fixture
def pool(server: RegistryServer) -> Iterator[WorkerPool]:
    p = WorkerPool(server.endpoint, processes=2, cancel_grace=0.5)
    try:
        yield p
    finally:
        p.close()


def test_success_and_map_ordering(pool: WorkerPool, server: RegistryServer) -> None:
    handle = pool.submit(square, 12, display_name="square")
    assert handle.result(timeout=60) == 144
    snap = handle.snapshot()
    assert snap.status is OperationStatus.COMPLETED
    assert snap.display_name == "square"
    assert isinstance(snap.terminal_outcome, Completed)
    assert snap.terminal_outcome.result.content == "144"
    assert pool.map(square, range(20), timeout=60) == [x * x for x in range(20)]


def test_progress_is_reported_to_the_registry(pool: WorkerPool) -> None:
    handle = pool.submit(with_progress)
    assert handle.result(timeout=60) == "ok"
    snap = handle.snapshot()
    assert snap.progress_count == 3
    assert snap.last_progress == OperationProgressUpdate("at 100.0", 100.0)


def message_only(progress) -> str:  # type: ignore[no-untyped-def]
    progress("no percent")  # progress(message, percent=None), as OperationProgressUpdate
    return "ok"


def test_progress_takes_message_then_an_optional_percent(pool: WorkerPool) -> None:
    handle = pool.submit(message_only)
    assert handle.result(timeout=60) == "ok"
    assert handle.snapshot().last_progress == OperationProgressUpdate("no percent", None)


def test_exception_becomes_failed_with_traceback(pool: WorkerPool) -> None:
    handle = pool.submit(boom, "bad input")
    with pytest.raises(OperationError) as err:
        handle.result(timeout=60)
    outcome = err.value.outcome
    assert isinstance(outcome, Failed)
    assert outcome.error.startswith("ValueError: bad input")
    assert "Traceback (most recent call last)" in outcome.error
    assert str(err.value) == f"operation {handle.id} ended failed: ValueError: bad input"


def test_cancel_of_a_cooperative_call(pool: WorkerPool, manager: Any) -> None:
    started = manager.Event()
    handle = pool.submit(cooperative, started)
    assert started.wait(60)
    assert handle.cancel("no longer needed") is True
    with pytest.raises(OperationError) as err:
        handle.result(timeout=60)
    assert err.value.outcome == Cancelled("no longer needed")
    assert handle.cancel("again") is False
    assert pool.submit(square, 3).result(timeout=60) == 9


def test_cancel_of_a_call_that_ignores_it_kills_its_worker(pool: WorkerPool, manager: Any) -> None:
    started = manager.Event()
    handle = pool.submit(stubborn, started)
    assert started.wait(60)
    assert handle.cancel("stop") is True
    with pytest.raises(OperationError) as err:
        handle.result(timeout=60)
    assert err.value.outcome == Cancelled("stop")
    assert pool.submit(square, 4).result(timeout=60) == 16
    assert pool.replaced >= 1


def test_kill_nine_of_a_worker_fails_its_call_and_the_pool_keeps_working(
    pool: WorkerPool, manager: Any
) -> None:
    pids = manager.Queue()
    handle = pool.submit(report_pid_and_hang, pids)
    os.kill(pids.get(timeout=60), signal.SIGKILL)
    with pytest.raises(OperationError) as err:
        handle.result(timeout=60)
    assert err.value.outcome == Failed("worker process died: SIGKILL")
    assert pool.map(square, [1, 2, 3], timeout=60) == [1, 4, 9]


def test_close_cancels_the_pools_own_running_and_queued_calls(
    server: RegistryServer, manager: Any
) -> None:
    pool = WorkerPool(server.endpoint, processes=1)
    started = manager.Event()
    running = pool.submit(stubborn, started)
    queued = pool.submit(square, 5)
    assert started.wait(60)
    pool.close()
    for handle in (running, queued):
        with pytest.raises(OperationError) as err:
            handle.result(timeout=30)
        assert err.value.outcome == Cancelled("worker pool shut down")
    with RegistryClient(server.endpoint, timeout=10) as cli:
        assert cli.snapshot(running.id).status is OperationStatus.CANCELLED
        assert cli.snapshot(queued.id).status is OperationStatus.CANCELLED


def test_close_leaves_a_foreign_owners_operation_running(
    server: RegistryServer, manager: Any
) -> None:
    with RegistryClient(server.endpoint, timeout=10) as other:
        foreign = OperationId.new()
        other.register_operation(
            OperationSpec(
                id=foreign,
                kind=OperationKind.BACKGROUND_TOOL_OP,
                owner_session_id="someone-else",
                display_name="not the pool's",
                source_label="test",
            )
        )
        other.provisioning_succeeded(foreign)
        started = manager.Event()
        with WorkerPool(server.endpoint, processes=1) as pool:
            mine = pool.submit(stubborn, started)
            assert started.wait(60)
        with pytest.raises(OperationError):
            mine.result(timeout=30)
        assert other.snapshot(foreign).status is OperationStatus.RUNNING
        assert other.snapshot(mine.id).status is OperationStatus.CANCELLED


def test_result_and_map_timeouts_are_timeout_errors(pool: WorkerPool, manager: Any) -> None:
    started = manager.Event()
    handle = pool.submit(stubborn, started)
    with pytest.raises(TimeoutError) as err:
        handle.result(timeout=0.05)
    assert isinstance(err.value, PoolTimeout)
    assert str(err.value) == f"call {handle.id} did not end within 0.05 s"
    with pytest.raises(PoolTimeout, match=r"map did not end within 0.05 s"):
        pool.map(stubborn, [started], timeout=0.05)


def test_handles_are_awaitable(
    pool: WorkerPool, manager: Any, caplog: pytest.LogCaptureFixture
) -> None:
    slow: list[CallHandle] = []

    async def main() -> tuple[Any, ...]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick = asyncio.create_task(ticker())
        handles = [pool.submit(square, x) for x in range(6)]
        values = await asyncio.gather(*handles[:3], *(h.result_async(60) for h in handles[3:]))
        failing = pool.submit(boom, "async")
        with pytest.raises(OperationError):
            await failing
        started = manager.Event()
        slow.append(pool.submit(stubborn, started))
        with pytest.raises(TimeoutError):
            await slow[0].result_async(timeout=0.05)
        tick.cancel()
        assert ticks > 0  # the loop ran while the calls were awaited
        return tuple(values)

    assert asyncio.run(main()) == tuple(x * x for x in range(6))
    # The timed-out await left nothing that trips over the closed loop when the call ends.
    callbacks_ran = threading.Event()  # runs after the await's own callback, in order
    slow[0]._future.add_done_callback(lambda _: callbacks_ran.set())
    slow[0].cancel("done")
    with pytest.raises(OperationError):
        slow[0].result(timeout=60)
    assert callbacks_ran.wait(60)
    assert "future callback failed" not in caplog.text


def test_call_cancelled_is_importable_for_user_code() -> None:
    assert issubclass(CallCancelled, Exception)
