"""Ports of the seed's tests (meerkat ``ops_lifecycle.rs``), same names, same assertions."""

from __future__ import annotations

import asyncio

import pytest

from actors import (
    Completed,
    Failed,
    MaxConcurrentExceeded,
    OperationId,
    OperationKind,
    OperationPeerHandle,
    OperationSpec,
    OperationStatus,
    OpsRegistry,
    PeerNotExpected,
)
from tests.conftest import background_spec, result_for

RUN_ID = "00000000-0000-0000-0000-000000000001"
pytestmark = pytest.mark.timeout(30)


def test_late_watchers_resolve_immediately(registry: OpsRegistry) -> None:
    spec = background_spec("late")
    op_id = spec.id
    registry.register_operation(spec)
    registry.provisioning_succeeded(op_id)
    registry.complete_operation(op_id, result_for(op_id, "done"))

    watch = registry.register_watcher(op_id)
    assert watch.done(), "a watcher on a terminal operation is resolved when it is returned"

    async def wait() -> object:
        return await watch

    outcome = asyncio.run(wait())
    assert isinstance(outcome, Completed)
    assert outcome.result.content == "done"


def test_peer_ready_requires_peer_expectation(registry: OpsRegistry) -> None:
    spec = background_spec("no-peer")
    op_id = spec.id
    registry.register_operation(spec)
    registry.provisioning_succeeded(op_id)

    with pytest.raises(PeerNotExpected) as err:
        registry.peer_ready(
            op_id, OperationPeerHandle(peer_name="peer", peer_id="p1", address="inproc://peer")
        )
    assert err.value.id == op_id


def test_multi_listener_completion(registry: OpsRegistry) -> None:
    spec = background_spec("multi")
    op_id = spec.id
    registry.register_operation(spec)
    registry.provisioning_succeeded(op_id)

    watches = [registry.register_watcher(op_id) for _ in range(3)]
    assert registry.snapshot(op_id).watcher_count == 3
    registry.complete_operation(op_id, result_for(op_id, "multi-done"))

    async def wait_all_watches() -> list[object]:
        return [await w for w in watches]

    for outcome in asyncio.run(wait_all_watches()):
        assert isinstance(outcome, Completed)
        assert outcome.result.content == "multi-done"
    assert registry.snapshot(op_id).watcher_count == 0


def test_wait_all_returns_all_outcomes(registry: OpsRegistry) -> None:
    spec_a = background_spec("a")
    id_a = spec_a.id
    registry.register_operation(spec_a)
    registry.provisioning_succeeded(id_a)
    spec_b = background_spec("b")
    id_b = spec_b.id
    registry.register_operation(spec_b)
    registry.provisioning_succeeded(id_b)

    registry.complete_operation(id_a, result_for(id_a, "a-done"))
    registry.fail_operation(id_b, "b-error")

    wait_result = registry.wait_all(RUN_ID, [id_a, id_b]).get(timeout=5)
    assert len(wait_result.outcomes) == 2
    assert wait_result.outcomes[0][0] == id_a
    assert isinstance(wait_result.outcomes[0][1], Completed)
    assert wait_result.outcomes[1][0] == id_b
    assert isinstance(wait_result.outcomes[1][1], Failed)
    # The obligation carries the awaited ids.
    assert len(wait_result.satisfied.operation_ids) == 2
    assert wait_result.satisfied.wait_request_id != ""


def test_wait_all_trait_path_submits_through_authority(registry: OpsRegistry) -> None:
    # The seed calls through the trait object; here the one path is the actor's
    # mailbox, so the barrier decision comes from the lifecycle authority.
    spec = background_spec("trait-wait")
    op_id = spec.id
    registry.register_operation(spec)
    registry.provisioning_succeeded(op_id)
    registry.complete_operation(op_id, result_for(op_id))

    wait_result = asyncio.run(_await(registry.wait_all(RUN_ID, [op_id])))
    assert len(wait_result.outcomes) == 1
    assert isinstance(wait_result.outcomes[0][1], Completed)
    assert wait_result.satisfied.operation_ids == (op_id,)
    assert wait_result.satisfied.wait_request_id != ""


async def _await(future):  # type: ignore[no-untyped-def]
    return await future


def test_wait_all_resolves_from_authority_owned_wait_request(registry: OpsRegistry) -> None:
    spec = background_spec("pending")
    op_id = spec.id
    registry.register_operation(spec)
    registry.provisioning_succeeded(op_id)

    wait_fut = registry.wait_all(RUN_ID, [op_id])
    assert not wait_fut.done()

    state = registry.diagnostic_snapshot()
    assert state.wait_active
    active_wait_request_id = state.wait_request_id
    assert active_wait_request_id is not None
    assert state.wait_operation_ids == (op_id,)

    registry.complete_operation(op_id, result_for(op_id))

    wait_result = wait_fut.get(timeout=5)
    assert wait_result.satisfied.wait_request_id == active_wait_request_id
    assert wait_result.satisfied.operation_ids == (op_id,)
    [(returned_id, outcome)] = wait_result.outcomes
    assert returned_id == op_id
    assert isinstance(outcome, Completed)
    assert registry.diagnostic_snapshot().wait_request_id is None


def test_dropping_wait_all_future_cancels_active_wait_request(registry: OpsRegistry) -> None:
    spec = background_spec("cancelled-wait")
    op_id = spec.id
    registry.register_operation(spec)
    registry.provisioning_succeeded(op_id)

    wait_fut = registry.wait_all(RUN_ID, [op_id])
    assert registry.diagnostic_snapshot().wait_active
    del wait_fut

    state = registry.diagnostic_snapshot()
    assert state.wait_request_id is None
    assert state.wait_operation_ids == ()
    assert not state.wait_active


def test_terminate_owner_only_targets_non_terminal_operations(registry: OpsRegistry) -> None:
    running_spec = background_spec("running")
    running_id = running_spec.id
    registry.register_operation(running_spec)
    registry.provisioning_succeeded(running_id)

    completed_spec = background_spec("completed")
    completed_id = completed_spec.id
    registry.register_operation(completed_spec)
    registry.provisioning_succeeded(completed_id)
    registry.complete_operation(completed_id, result_for(completed_id))

    registry.terminate_owner("shutdown")

    assert registry.snapshot(running_id).status is OperationStatus.TERMINATED
    assert registry.snapshot(completed_id).status is OperationStatus.COMPLETED


def test_collect_completed_drains_terminal_operations(registry: OpsRegistry) -> None:
    spec_a = background_spec("a")
    id_a = spec_a.id
    registry.register_operation(spec_a)
    registry.provisioning_succeeded(id_a)
    registry.complete_operation(id_a, result_for(id_a))

    spec_b = background_spec("b")
    id_b = spec_b.id
    registry.register_operation(spec_b)

    collected = registry.collect_completed()
    assert len(collected) == 1
    assert collected[0][0] == id_a

    assert registry.snapshot(id_a) is None
    assert registry.snapshot(id_b) is not None

    assert registry.collect_completed() == []


def test_bounded_completed_retention_evicts_oldest() -> None:
    with OpsRegistry.start(max_completed=3, max_concurrent=None) as registry:
        ids = []
        for i in range(5):
            spec = background_spec(f"op-{i}")
            registry.register_operation(spec)
            registry.provisioning_succeeded(spec.id)
            registry.complete_operation(spec.id, result_for(spec.id, f"done-{i}"))
            ids.append(spec.id)

        assert registry.snapshot(ids[0]) is None
        assert registry.snapshot(ids[1]) is None
        assert registry.snapshot(ids[2]) is not None
        assert registry.snapshot(ids[3]) is not None
        assert registry.snapshot(ids[4]) is not None


def test_max_concurrent_enforcement() -> None:
    with OpsRegistry.start(max_completed=256, max_concurrent=2) as registry:
        spec_a = background_spec("a")
        id_a = spec_a.id
        registry.register_operation(spec_a)
        registry.register_operation(background_spec("b"))

        with pytest.raises(MaxConcurrentExceeded) as err:
            registry.register_operation(background_spec("c"))
        assert (err.value.limit, err.value.active) == (2, 2)

        registry.provisioning_succeeded(id_a)
        registry.complete_operation(id_a, result_for(id_a))

        registry.register_operation(background_spec("d"))


def test_snapshot_includes_timestamps(registry: OpsRegistry) -> None:
    spec = background_spec("timed")
    op_id = spec.id
    registry.register_operation(spec)

    snap1 = registry.snapshot(op_id)
    assert snap1.created_at_ms > 0
    assert snap1.started_at_ms is None
    assert snap1.completed_at_ms is None
    assert snap1.elapsed_ms is None

    registry.provisioning_succeeded(op_id)
    snap2 = registry.snapshot(op_id)
    assert snap2.started_at_ms is not None
    assert snap2.started_at_ms >= snap2.created_at_ms

    registry.complete_operation(op_id, result_for(op_id))
    snap3 = registry.snapshot(op_id)
    assert snap3.completed_at_ms is not None
    assert snap3.elapsed_ms is not None
    assert snap3.completed_at_ms >= snap3.started_at_ms


def test_snapshot_includes_peer_handle(registry: OpsRegistry) -> None:
    spec = OperationSpec(
        id=OperationId.new(),
        kind=OperationKind.MOB_MEMBER_CHILD,
        owner_session_id=str(OperationId.new()),
        display_name="peer-test",
        source_label="test",
        child_session_id=str(OperationId.new()),
        expect_peer_channel=True,
    )
    op_id = spec.id
    registry.register_operation(spec)
    registry.provisioning_succeeded(op_id)
    assert registry.snapshot(op_id).peer_handle is None

    handle = OperationPeerHandle(peer_name="member-x", peer_id="p1", address="inproc://x")
    registry.peer_ready(op_id, handle)

    snap2 = registry.snapshot(op_id)
    assert snap2.peer_handle is not None
    assert snap2.peer_handle.peer_name == "member-x"
