"""The registry actor's own promises beyond the seed: futures, barrier, feed, bad input, threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from actors import (
    Completed,
    Failed,
    Internal,
    InvalidArgument,
    NotFound,
    OperationId,
    OperationProgressUpdate,
    OperationStatus,
    OpsRegistry,
    WaitCancelled,
)
from tests.conftest import background_spec, result_for

pytestmark = pytest.mark.timeout(60)


def _running(reg: OpsRegistry, name: str = "op") -> OperationId:
    spec = background_spec(name)
    reg.register_operation(spec)
    reg.provisioning_succeeded(spec.id)
    return spec.id


def test_wait_any_resolves_with_the_first_terminal(registry: OpsRegistry) -> None:
    a, b = _running(registry, "a"), _running(registry, "b")
    first = registry.wait_any([a, b])
    second = registry.wait_any([a, b])
    assert not first.done()
    registry.fail_operation(b, "boom")
    assert first.get(timeout=5) == (b, Failed("boom"))
    assert second.get(timeout=5)[0] == b
    registry.complete_operation(a, result_for(a))
    # Already terminal members resolve at once, first in request order.
    assert registry.wait_any([a, b]).get(timeout=5)[0] == a
    with pytest.raises(NotFound):
        registry.wait_any([a, OperationId.new()])
    with pytest.raises(InvalidArgument):
        registry.wait_any([])


def test_cancel_wait_all_fails_the_future_and_admits_a_new_barrier(registry: OpsRegistry) -> None:
    a = _running(registry, "a")
    barrier = registry.wait_all("run-1", [a])
    assert registry.cancel_wait_all() is True
    with pytest.raises(WaitCancelled) as err:
        barrier.get(timeout=5)
    assert str(err.value) == f"wait_all cancelled: {err.value.wait_request_id}"
    assert registry.cancel_wait_all() is False
    again = registry.wait_all("run-2", [a])
    registry.complete_operation(a, result_for(a))
    assert again.get(timeout=5).outcomes[0][0] == a


def test_barrier_member_evicted_while_waiting_fails_with_not_found() -> None:
    with OpsRegistry.start(max_completed=1) as reg:
        a, b = _running(reg, "a"), _running(reg, "b")
        # a completes (retained), then b's completion would have to wait for c:
        c = _running(reg, "c")
        reg.complete_operation(a, result_for(a))
        barrier = reg.wait_all("run", [a, c])
        reg.complete_operation(b, result_for(b))  # evicts a, a barrier member
        with pytest.raises(NotFound) as err:
            barrier.get(timeout=5)
        assert err.value.id == a
        assert not reg.diagnostic_snapshot().wait_active


def test_barrier_member_collected_while_waiting_fails_with_not_found(registry: OpsRegistry) -> None:
    a, b = _running(registry, "a"), _running(registry, "b")
    registry.complete_operation(a, result_for(a))
    barrier = registry.wait_all("run", [a, b])
    registry.collect_completed()
    with pytest.raises(NotFound) as err:
        barrier.get(timeout=5)
    assert err.value.id == a


def test_barrier_resolves_when_the_last_commit_also_evicts_a_member() -> None:
    with OpsRegistry.start(max_completed=1) as reg:
        a, b = _running(reg, "a"), _running(reg, "b")
        barrier = reg.wait_all("run", [a, b])
        reg.complete_operation(a, result_for(a))
        reg.fail_operation(b, "x")  # evicts a, but every member is terminal at this moment
        result = barrier.get(timeout=5)
        assert [i for i, _ in result.outcomes] == [a, b]


def test_feed_wait_for_advance_and_dropped_through() -> None:
    with OpsRegistry.start(max_completed=1) as reg:  # feed keeps max(4, 1024) = 1024 entries
        advance = reg.wait_for_advance(0)
        assert not advance.done()
        ids = [_running(reg, f"op-{i}") for i in range(1030)]
        for op in ids:
            reg.complete_operation(op, result_for(op))
        assert advance.get(timeout=5) >= 1
        batch = reg.list_since(0)
        assert batch.watermark == 1030
        assert batch.dropped_through == 6
        assert [e.seq for e in batch.entries] == list(range(7, 1031))
        assert [e.seq for e in reg.list_since(1028).entries] == [1029, 1030]
        assert reg.list_since(1030).entries == ()
        assert reg.wait_for_advance(5).get(timeout=1) == 1030


def test_progress_is_kept_in_the_snapshot(registry: OpsRegistry) -> None:
    op = _running(registry)
    registry.report_progress(op, OperationProgressUpdate("half", 50))
    registry.report_progress(op, OperationProgressUpdate("more", 75.5))
    snap = registry.snapshot(op)
    assert snap.progress_count == 2
    assert snap.last_progress == OperationProgressUpdate("more", 75.5)


@pytest.mark.parametrize(
    "method, args",
    [
        ("register_operation", ("not a spec",)),
        ("provisioning_succeeded", ("not-a-uuid",)),
        ("provisioning_succeeded", (12,)),
        ("fail_operation", ("{op}", 3)),
        ("complete_operation", ("{op}", "not a result")),
        ("cancel_operation", ("{op}", 5)),
        ("report_progress", ("{op}", {"message": "x"})),
        ("wait_all", (None, ["{op}"])),
        ("wait_all", ("run", "{op}")),
        ("list_since", (-1,)),
        ("wait_for_advance", ("zero",)),
        ("terminate_owner", (None,)),
    ],
)
def test_bad_input_is_a_typed_error_and_changes_nothing(
    registry: OpsRegistry, method: str, args: tuple[object, ...]
) -> None:
    op = _running(registry)
    before = (registry.list_operations(), registry.list_since(0), registry.diagnostic_snapshot())
    real_args = tuple(str(op) if a == "{op}" else a for a in args)
    real_args = tuple([str(op)] if a == ["{op}"] else a for a in real_args)
    with pytest.raises(InvalidArgument):
        getattr(registry, method)(*real_args)
    after = (registry.list_operations(), registry.list_since(0), registry.diagnostic_snapshot())
    assert before == after


def test_progress_values_are_validated_where_they_are_made() -> None:
    for bad in (float("nan"), float("inf"), -1, 100.5, "50"):
        with pytest.raises(InvalidArgument):
            OperationProgressUpdate("x", bad)  # type: ignore[arg-type]


def test_futures_are_awaitable_without_blocking_the_event_loop(registry: OpsRegistry) -> None:
    op = _running(registry)
    watch = registry.register_watcher(op)

    async def scenario() -> object:
        ticks = 0

        async def ticker() -> None:
            # The completion is only sent after the loop has turned 50 times
            # while the watcher was pending: a blocking await would never get here.
            nonlocal ticks
            while ticks < 50:
                ticks += 1
                await asyncio.sleep(0)
            threading.Thread(target=registry.complete_operation, args=(op, result_for(op))).start()

        tick_task = asyncio.ensure_future(ticker())
        outcome = await watch
        await tick_task
        return outcome

    assert isinstance(asyncio.run(asyncio.wait_for(scenario(), timeout=10)), Completed)


def test_stop_fails_pending_futures_and_later_calls() -> None:
    reg = OpsRegistry.start()
    op = _running(reg)
    watch = reg.register_watcher(op)
    barrier = reg.wait_all("run", [op])
    reg.stop()
    with pytest.raises(Internal):
        watch.get(timeout=5)
    with pytest.raises(Internal):
        barrier.get(timeout=5)
    with pytest.raises(Internal, match="not running"):
        reg.snapshot(op)


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "memory-store"])
def test_threads_hammering_the_registry_end_with_exact_counts(durable: bool) -> None:
    threads, per_thread = 8, 2000
    reg = OpsRegistry.with_memory_store(max_completed=256) if durable else OpsRegistry.start()
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(per_thread):
                spec = background_spec(f"t{t}-{i}")
                reg.register_operation(spec)
                reg.provisioning_succeeded(spec.id)
                if i % 4 == 3:
                    reg.fail_operation(spec.id, "x")
                else:
                    reg.complete_operation(spec.id, result_for(spec.id))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    try:
        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=50)
        assert not errors, errors[:3]
        total = threads * per_thread
        diag = reg.diagnostic_snapshot()
        assert diag.active_count == 0
        assert diag.operation_count == 256
        batch = reg.list_since(0)
        assert batch.watermark == total
        seqs = [e.seq for e in batch.entries]
        assert seqs == list(range(total - len(seqs) + 1, total + 1))
        assert batch.dropped_through == total - len(seqs)
        statuses = [s.status for s in reg.list_operations()]
        assert set(statuses) <= {OperationStatus.COMPLETED, OperationStatus.FAILED}
    finally:
        reg.stop()
