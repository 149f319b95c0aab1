"""What a server asks of a registry for a client it gave up on: cancel its waits, end its
leased operations. Driven in process through the same calls the server sends."""

from __future__ import annotations

import msgspec
import pytest

from actors import OpsRegistry, Terminated, WaitCancelled
from actors.leases import Leases
from actors.model import OperationId, OperationSpec
from tests.conftest import background_spec, result_for

pytestmark = pytest.mark.timeout(30)


def _running(reg: OpsRegistry, name: str, lease: bool = False) -> OperationSpec:
    spec = background_spec(name)
    if lease:
        spec = msgspec.structs.replace(spec, lease=True)
    reg.register_operation(spec)
    reg.provisioning_succeeded(spec.id)
    return spec


def test_cancel_waits_fails_each_pending_wait_and_leaves_nothing_indexed(
    registry: OpsRegistry,
) -> None:
    a, b = _running(registry, "a"), _running(registry, "b")
    kept = registry.register_watcher(a.id)
    futures = [
        registry.register_watcher(a.id),
        registry.wait_any([a.id, b.id]),
        registry.wait_for_advance(0),
        registry.wait_all("run", [a.id, b.id]),
    ]
    assert registry.call_async("cancel_waits", futures, "gone").get(timeout=10) == 4
    for f in futures:
        with pytest.raises(WaitCancelled):
            f.get(timeout=10)
    assert registry.snapshot(a.id).watcher_count == 1  # the other caller's watcher stays
    assert not registry.diagnostic_snapshot().wait_active
    # Cancelling again (or a settled wait) changes nothing.
    assert registry.call_async("cancel_waits", futures, "gone").get(timeout=10) == 0
    registry.complete_operation(a.id, result_for(a.id))
    assert kept.get(timeout=10).result.content == "done"


def test_terminate_operations_ends_only_the_running_ones_through_the_rules(
    registry: OpsRegistry,
) -> None:
    running, ended = _running(registry, "running"), _running(registry, "ended")
    registry.complete_operation(ended.id, result_for(ended.id))
    unknown = OperationId.new()
    watch = registry.register_watcher(running.id)
    registry.call_async("terminate_operations", [running.id, ended.id, unknown], "why").get(
        timeout=10
    )
    assert watch.get(timeout=10) == Terminated("why")
    assert registry.snapshot(ended.id).terminal_outcome.result.content == "done"
    assert [e.operation_id for e in registry.list_since(0).entries] == [ended.id, running.id]


def test_a_lease_has_no_effect_in_process(registry: OpsRegistry) -> None:
    spec = _running(registry, "leased", lease=True)
    assert registry.snapshot(spec.id).status.value == "running"
    registry.complete_operation(spec.id, result_for(spec.id))


def test_release_leases_ends_the_owners_running_leased_operations_only(
    registry: OpsRegistry,
) -> None:
    mine = [background_spec(f"mine-{i}") for i in range(3)]
    mine = [msgspec.structs.replace(s, lease=True) for s in mine]
    for spec in mine:
        registry.call_async("register_leased", spec, b"me").get(timeout=10)
        registry.provisioning_succeeded(spec.id)
    theirs = _running(registry, "theirs", lease=True)
    registry.complete_operation(mine[0].id, result_for(mine[0].id))  # ended: untouched
    registry.call_async("release_leases", b"me", "owner gone").get(timeout=10)
    assert registry.snapshot(mine[0].id).terminal_outcome.result.content == "done"
    for spec in mine[1:]:
        assert registry.snapshot(spec.id).terminal_outcome == Terminated("owner gone")
    assert registry.snapshot(theirs.id).terminal_outcome is None


def test_lease_table_forgets_ended_operations() -> None:
    leases = Leases()
    a, b = OperationId.new(), OperationId.new()
    leases.add(b"x", a)
    leases.add(b"x", b)
    leases.ended(a)
    assert len(leases) == 1
    assert leases.release(b"x") == [b]
    assert leases.release(b"x") == [] and len(leases) == 0
