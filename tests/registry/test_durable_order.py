"""docs/semantics.md: a terminal outcome becomes visible only after the store acknowledges it."""

from __future__ import annotations

import pytest

from actors import Cancelled, Completed, Internal, InvalidTransition, OperationStatus
from actors.persistence import Recover
from tests.conftest import result_for
from tests.registry.conftest import running

pytestmark = pytest.mark.timeout(30)


def test_failed_commit_rolls_back_and_retry_succeeds(durable) -> None:  # type: ignore[no-untyped-def]
    reg, faults = durable
    op = running(reg)
    watch = reg.register_watcher(op)
    any_wait = reg.wait_any([op])
    barrier = reg.wait_all("run", [op])
    advance = reg.wait_for_advance(0)

    faults.fail_next(1, "disk full")
    with pytest.raises(Internal) as err:
        reg.complete_operation(op, result_for(op))
    assert "disk full" in str(err.value)

    snap = reg.snapshot(op)
    assert snap.status is OperationStatus.RUNNING
    assert snap.terminal_outcome is None
    assert snap.watcher_count == 1
    assert not watch.done() and not any_wait.done() and not barrier.done() and not advance.done()
    assert reg.watermark() == 0
    assert reg.list_since(0).entries == ()
    assert reg.diagnostic_snapshot().active_count == 1

    reg.complete_operation(op, result_for(op, "second try"))
    assert watch.get(timeout=5).result.content == "second try"
    assert any_wait.get(timeout=5)[0] == op
    assert barrier.get(timeout=5).outcomes[0][0] == op
    assert advance.get(timeout=5) == 1
    [entry] = reg.list_since(0).entries
    assert entry.seq == 1, "the failed attempt consumed no sequence number"


def test_nothing_is_visible_while_the_commit_is_in_flight(durable) -> None:  # type: ignore[no-untyped-def]
    reg, faults = durable
    op = running(reg)
    other = running(reg, "other")
    faults.hold()
    reply = reg.call_async("complete_operation", op, result_for(op))
    assert faults.entered.wait(5), "the store should be inside its transaction"

    # The mailbox keeps moving while the disk is busy.
    assert reg.snapshot(op).status is OperationStatus.RUNNING
    assert reg.watermark() == 0
    assert all(s.status is OperationStatus.RUNNING for s in reg.list_operations())
    # A competing transition is held until the commit settles (tests/registry/test_held_calls.py).
    competing = reg.call_async("cancel_operation", op, "too late")
    late_watch = reg.register_watcher(op)
    assert not late_watch.done()
    assert not reply.done()

    # A different operation's terminal joins the next commit.
    second = reg.call_async("cancel_operation", other, "bye")

    faults.release()
    assert reply.get(timeout=5) is None
    with pytest.raises(InvalidTransition) as err:
        competing.get(timeout=5)
    assert err.value.status is OperationStatus.COMPLETED
    assert isinstance(late_watch.get(timeout=5), Completed)
    assert second.get(timeout=5) is None
    assert isinstance(reg.snapshot(other).terminal_outcome, Cancelled)
    assert [e.seq for e in reg.list_since(0).entries] == [1, 2]


def test_failed_batch_for_terminate_owner_rolls_back_every_member(durable) -> None:  # type: ignore[no-untyped-def]
    reg, faults = durable
    ids = [running(reg, f"op-{i}") for i in range(3)]
    faults.fail_next(1, "I/O error")
    with pytest.raises(Internal):
        reg.terminate_owner("shutdown")
    assert {reg.snapshot(i).status for i in ids} == {OperationStatus.RUNNING}
    assert reg.watermark() == 0
    reg.terminate_owner("shutdown")
    assert {reg.snapshot(i).status for i in ids} == {OperationStatus.TERMINATED}
    assert [e.seq for e in reg.list_since(0).entries] == [1, 2, 3]


def test_memory_store_journal_replays_to_the_live_state(durable) -> None:  # type: ignore[no-untyped-def]
    from actors.testing import Lifecycle

    reg, _ = durable
    ids = [running(reg, f"op-{i}") for i in range(5)]
    reg.complete_operation(ids[0], result_for(ids[0]))
    reg.fail_operation(ids[1], "boom")
    reg.cancel_operation(ids[2], None)
    store = reg.store
    # A read after the terminals: the store has committed everything before answering.
    recovered = reg._persistence_ref.ask(Recover("default"))  # type: ignore[union-attr]
    assert store is not None
    lc = Lifecycle()
    for record, seq in recovered.journal:
        lc.apply(record, seq)
    live = reg.list_since(0)
    assert lc.list_since(0) == live
    assert [s.status for s in lc.list_operations()] == [s.status for s in reg.list_operations()]
