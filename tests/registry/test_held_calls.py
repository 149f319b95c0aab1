"""A competing call is answered from what is durable, never from a commit still in flight."""

from __future__ import annotations

import pytest

from actors import (
    Cancelled,
    Internal,
    InvalidArgument,
    InvalidTransition,
    OperationProgressUpdate,
    OperationStatus,
    OpsRegistry,
    Terminated,
)
from actors.testing import FaultPlan
from tests.conftest import result_for
from tests.registry.conftest import running

pytestmark = pytest.mark.timeout(30)


def _hold_completion(reg: OpsRegistry, faults: FaultPlan, op):  # type: ignore[no-untyped-def]
    faults.hold()
    reply = reg.call_async("complete_operation", op, result_for(op))
    assert faults.entered.wait(5), "the store should be inside its transaction"
    return reply


def test_competing_cancel_waits_for_the_commit_then_learns_the_durable_status(durable) -> None:  # type: ignore[no-untyped-def]
    reg, faults = durable
    op = running(reg)
    reply = _hold_completion(reg, faults, op)
    cancel = reg.call_async("cancel_operation", op, "from another client")
    progress = reg.call_async("report_progress", op, OperationProgressUpdate("late"))
    # Reads answer the durable state at once while the competing calls wait.
    assert reg.snapshot(op).status is OperationStatus.RUNNING
    assert not cancel.done() and not progress.done()

    faults.release()
    assert reply.get(timeout=5) is None
    with pytest.raises(InvalidTransition) as err:
        cancel.get(timeout=5)
    assert err.value.status is OperationStatus.COMPLETED
    assert err.value.action == "cancel_operation"
    with pytest.raises(InvalidTransition):
        progress.get(timeout=5)


def test_competing_cancel_runs_normally_after_a_rollback(durable) -> None:  # type: ignore[no-untyped-def]
    reg, faults = durable
    op = running(reg)
    watch = reg.register_watcher(op)
    faults.fail_next(1, "disk full")
    reply = _hold_completion(reg, faults, op)
    cancel = reg.call_async("cancel_operation", op, "from another client")
    assert not cancel.done()

    faults.release()
    with pytest.raises(Internal, match="disk full"):
        reply.get(timeout=5)
    assert cancel.get(timeout=5) is None
    assert isinstance(watch.get(timeout=5), Cancelled)
    snap = reg.snapshot(op)
    assert snap.status is OperationStatus.CANCELLED
    assert [e.seq for e in reg.list_since(0).entries] == [1]


def test_held_calls_on_one_operation_are_answered_in_arrival_order(durable) -> None:  # type: ignore[no-untyped-def]
    reg, faults = durable
    op = running(reg)
    faults.fail_next(1, "disk full")
    reply = _hold_completion(reg, faults, op)
    first = reg.call_async("fail_operation", op, "first")
    second = reg.call_async("cancel_operation", op, "second")
    faults.release()
    with pytest.raises(Internal):
        reply.get(timeout=5)
    assert first.get(timeout=5) is None
    with pytest.raises(InvalidTransition) as err:
        second.get(timeout=5)
    assert err.value.status is OperationStatus.FAILED


def test_terminate_owner_waits_for_pending_targets_and_ends_rolled_back_ones(durable) -> None:  # type: ignore[no-untyped-def]
    reg, faults = durable
    op = running(reg)
    other = running(reg, "other")
    faults.fail_next(1, "disk full")
    reply = _hold_completion(reg, faults, op)
    terminate = reg.call_async("terminate_owner", "owner gone")
    assert not terminate.done()
    faults.release()
    with pytest.raises(Internal):
        reply.get(timeout=5)
    assert terminate.get(timeout=5) is None
    for i in (op, other):
        assert isinstance(reg.snapshot(i).terminal_outcome, Terminated), "nothing left running"


def test_complete_with_another_operations_result_is_refused(durable) -> None:  # type: ignore[no-untyped-def]
    reg, _ = durable
    a, b = running(reg, "a"), running(reg, "b")
    with pytest.raises(InvalidArgument, match="not the operation's"):
        reg.complete_operation(a, result_for(b))
    assert reg.snapshot(a).status is OperationStatus.RUNNING
    assert reg.watermark() == 0
    reg.complete_operation(a, result_for(a))
    assert reg.snapshot(a).status is OperationStatus.COMPLETED


def test_complete_with_another_operations_result_is_refused_in_memory() -> None:
    with OpsRegistry.start() as reg:
        a, b = running(reg, "a"), running(reg, "b")
        with pytest.raises(InvalidArgument):
            reg.complete_operation(a, result_for(b))
        assert reg.snapshot(a).status is OperationStatus.RUNNING
