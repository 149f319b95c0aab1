"""docs/semantics.md, cell by cell: every lifecycle method against every status, through ``OpsRegistry``.

The expected table below is written out from docs/semantics.md on purpose (it does not
import the implementation's ``LEGAL_FROM``), so that a wrong rule in
``actors.lifecycle`` shows up here as a failing cell.

Every cell runs twice: on a memory-only registry and on one whose terminal
transitions go through the persistence actor (``MemoryStore``), because the
two take different paths to make a terminal outcome visible (docs/semantics.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors import (
    Aborted,
    AlreadyPeerReady,
    AlreadyRegistered,
    Cancelled,
    Completed,
    Failed,
    InvalidTransition,
    MaxConcurrentExceeded,
    NotFound,
    OperationId,
    OperationKind,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    OperationStatus,
    OpsLifecycleError,
    OpsRegistry,
    PeerNotExpected,
    Retired,
    Terminated,
)
from actors.testing import MemoryStore

pytestmark = pytest.mark.timeout(120)

WAIT = 5.0

# --- the docs/semantics.md table, written out ----------------------------------------------------------

METHODS = (
    "provisioning_succeeded",
    "provisioning_failed",
    "fail_operation",
    "peer_ready",
    "report_progress",
    "complete_operation",
    "abort_provisioning",
    "cancel_operation",
    "request_retire",
    "mark_retired",
    "terminate_owner",
)

NON_TERMINAL = ("provisioning", "running", "retiring")
TERMINAL = ("completed", "failed", "aborted", "cancelled", "retired", "terminated")
KNOWN = NON_TERMINAL + TERMINAL
#: three ways for an id to be unknown: never registered, evicted from the FIFO, collected
UNKNOWN = ("unknown", "evicted", "collected")
COLUMNS = KNOWN + UNKNOWN

#: method -> {status it is legal from: status it leads to}
LEGAL: dict[str, dict[str, str]] = {
    "provisioning_succeeded": {"provisioning": "running"},
    "provisioning_failed": {"provisioning": "failed", "running": "failed", "retiring": "failed"},
    "fail_operation": {"provisioning": "failed", "running": "failed", "retiring": "failed"},
    "peer_ready": {"running": "running", "retiring": "retiring"},
    "report_progress": {"running": "running", "retiring": "retiring"},
    "complete_operation": {"running": "completed", "retiring": "completed"},
    "abort_provisioning": {"provisioning": "aborted"},
    "cancel_operation": {
        "provisioning": "cancelled",
        "running": "cancelled",
        "retiring": "cancelled",
    },
    "request_retire": {"running": "retiring"},
    "mark_retired": {"running": "retired", "retiring": "retired"},
    "terminate_owner": {
        "provisioning": "terminated",
        "running": "terminated",
        "retiring": "terminated",
    },
}

#: the action label an InvalidTransition names
LABEL = {m: m for m in METHODS} | {"provisioning_failed": "fail_operation"}

#: how the status is spelled in an InvalidTransition message
SPELLED = {
    "provisioning": "Provisioning",
    "running": "Running",
    "retiring": "Retiring",
    "completed": "Completed",
    "failed": "Failed",
    "aborted": "Aborted",
    "cancelled": "Cancelled",
    "retired": "Retired",
    "terminated": "Terminated",
}

HANDLE = OperationPeerHandle(peer_name="member-x", peer_id="p1", address="inproc://x")
UPDATE = OperationProgressUpdate(message="half way", percent=50.0)
REASON = "owner went away"


def result_for(op: OperationId) -> OperationResult:
    return OperationResult(id=op, content="done", is_error=False, duration_ms=7, tokens_used=3)


#: method -> how to call it on ``op``
CALL: dict[str, Callable[[OpsRegistry, OperationId], None]] = {
    "provisioning_succeeded": lambda reg, op: reg.provisioning_succeeded(op),
    "provisioning_failed": lambda reg, op: reg.provisioning_failed(op, "no slot"),
    "fail_operation": lambda reg, op: reg.fail_operation(op, "boom"),
    "peer_ready": lambda reg, op: reg.peer_ready(op, HANDLE),
    "report_progress": lambda reg, op: reg.report_progress(op, UPDATE),
    "complete_operation": lambda reg, op: reg.complete_operation(op, result_for(op)),
    "abort_provisioning": lambda reg, op: reg.abort_provisioning(op, "not needed"),
    "cancel_operation": lambda reg, op: reg.cancel_operation(op, "user asked"),
    "request_retire": lambda reg, op: reg.request_retire(op),
    "mark_retired": lambda reg, op: reg.mark_retired(op),
    "terminate_owner": lambda reg, op: reg.terminate_owner(REASON),
}

#: method -> the terminal outcome it records on ``op`` (None: not a terminal method)
OUTCOME: dict[str, Callable[[OperationId], Any] | None] = {
    "provisioning_succeeded": None,
    "provisioning_failed": lambda op: Failed("no slot"),
    "fail_operation": lambda op: Failed("boom"),
    "peer_ready": None,
    "report_progress": None,
    "complete_operation": lambda op: Completed(result_for(op)),
    "abort_provisioning": lambda op: Aborted("not needed"),
    "cancel_operation": lambda op: Cancelled("user asked"),
    "request_retire": None,
    "mark_retired": lambda op: Retired(),
    "terminate_owner": lambda op: Terminated(REASON),
}

# --- registries and the states to test from --------------------------------------------------

BACKENDS = ("memory", "store")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def registry(backend: str) -> Iterator[Callable[..., OpsRegistry]]:
    """A factory of fresh registries; every one it made is stopped, pass or fail."""
    started: list[OpsRegistry] = []

    def make(**kw: Any) -> OpsRegistry:
        if backend == "store":
            kw.setdefault("store", MemoryStore())
        reg = OpsRegistry.start(**kw)
        started.append(reg)
        return reg

    try:
        yield make
    finally:
        for reg in started:
            reg.stop()


def test_registry_fixture_stops_with_statement() -> None:
    with OpsRegistry.start() as reg:
        assert reg.list_operations() == []
    with pytest.raises(OpsLifecycleError):
        reg.list_operations()


_counter = iter(range(1, 1_000_000))


def spec_for(
    op: OperationId,
    kind: OperationKind = OperationKind.MOB_MEMBER_CHILD,
    *,
    name: str | None = None,
    expect_peer_channel: bool | None = None,
) -> OperationSpec:
    mob = kind is OperationKind.MOB_MEMBER_CHILD
    return OperationSpec(
        id=op,
        kind=kind,
        owner_session_id="s1",
        display_name=name or f"op-{next(_counter):06d}",
        source_label="legality",
        child_session_id="child-1" if mob else None,
        expect_peer_channel=mob if expect_peer_channel is None else expect_peer_channel,
    )


def reach(
    reg: OpsRegistry,
    status: str,
    kind: OperationKind = OperationKind.MOB_MEMBER_CHILD,
    *,
    peer: bool = False,
    expect_peer_channel: bool | None = None,
) -> OperationId:
    """Register an operation and walk it to ``status`` along legal calls only."""
    op = OperationId.new()
    if status == "unknown":
        return op
    reg.register_operation(spec_for(op, kind, expect_peer_channel=expect_peer_channel))
    if status == "aborted":
        reg.abort_provisioning(op, "not needed")
    elif status != "provisioning":
        reg.provisioning_succeeded(op)
        if peer:
            reg.peer_ready(op, HANDLE)
        if status == "retiring":
            reg.request_retire(op)
        elif status == "completed":
            reg.complete_operation(op, result_for(op))
        elif status == "failed":
            reg.fail_operation(op, "boom")
        elif status == "cancelled":
            reg.cancel_operation(op, "user asked")
        elif status == "retired":
            reg.mark_retired(op)
        elif status == "terminated":
            reg.terminate_owner("earlier owner")
        elif status in ("evicted", "collected"):
            reg.complete_operation(op, result_for(op))
            if status == "collected":
                assert [i for i, _ in reg.collect_completed()] == [op]
            else:  # max_completed=1: the next terminal pushes ``op`` out
                other = OperationId.new()
                reg.register_operation(spec_for(other))
                reg.fail_operation(other, "pushes the first one out")
        else:
            assert status == "running", status
    snap = reg.snapshot(op)
    if status in UNKNOWN:
        assert snap is None
    else:
        assert snap is not None
        assert snap.status is OperationStatus(status)
        assert snap.peer_ready is peer
    return op


def new_registry(make: Callable[..., OpsRegistry], column: str) -> OpsRegistry:
    return make(max_completed=1) if column == "evicted" else make()


def state(reg: OpsRegistry) -> tuple[Any, ...]:
    """Everything a rejected call must leave alone."""
    diag = reg.diagnostic_snapshot()
    return (reg.list_operations(), reg.list_since(0), reg.watermark(), diag)


def assert_refused(
    reg: OpsRegistry, call: Callable[[], None], expected: OpsLifecycleError, message: str
) -> OpsLifecycleError:
    before = state(reg)
    with pytest.raises(OpsLifecycleError) as info:
        call()
    err = info.value
    assert type(err) is type(expected)
    assert err == expected
    assert str(err) == message
    assert state(reg) == before, "a rejected call changed the registry"
    return err


# --- the grid --------------------------------------------------------------------------------

GRID = [(m, c) for m in METHODS for c in COLUMNS]


def test_the_grid_is_complete() -> None:
    assert len(GRID) == 11 * 12
    for method, legal in LEGAL.items():
        assert set(legal) <= set(NON_TERMINAL), method


@pytest.mark.parametrize(("method", "column"), GRID, ids=[f"{m}-{c}" for m, c in GRID])
def test_legality_cell(registry: Callable[..., OpsRegistry], method: str, column: str) -> None:
    reg = new_registry(registry, column)
    op = reach(reg, column)

    if column in UNKNOWN:
        if method == "terminate_owner":
            # It takes no id; with nothing non-terminal left it changes nothing.
            before = state(reg)
            reg.terminate_owner(REASON)
            assert state(reg) == before
            return
        assert_refused(
            reg, lambda: CALL[method](reg, op), NotFound(op), f"operation not found: {op}"
        )
        return

    target = LEGAL[method].get(column)
    if target is None:
        check_illegal(reg, op, method, column)
    else:
        check_legal(reg, op, method, column, target)


def check_illegal(reg: OpsRegistry, op: OperationId, method: str, column: str) -> None:
    terminal = column in TERMINAL
    watcher = None if terminal else reg.register_watcher(op)
    if method == "terminate_owner":
        assert terminal  # the only illegal column of terminate_owner is "any terminal"
        before = state(reg)
        reg.terminate_owner(REASON)  # terminal operations are left untouched, no error
        assert state(reg) == before
        return
    label = LABEL[method]
    err = assert_refused(
        reg,
        lambda: CALL[method](reg, op),
        InvalidTransition(op, OperationStatus(column), label),
        f"invalid lifecycle transition for {op}: {SPELLED[column]} -> {label}",
    )
    assert isinstance(err, InvalidTransition)
    assert err.id == op
    assert err.status is OperationStatus(column)
    assert isinstance(err.status, OperationStatus)
    assert err.action == label
    if watcher is not None:
        assert not watcher.done()


def check_legal(reg: OpsRegistry, op: OperationId, method: str, column: str, target: str) -> None:
    before = reg.snapshot(op)
    assert before is not None
    mark = reg.watermark()
    active = reg.diagnostic_snapshot().active_count
    watcher = reg.register_watcher(op)
    assert reg.snapshot(op).watcher_count == 1  # type: ignore[union-attr]

    CALL[method](reg, op)

    after = reg.snapshot(op)
    assert after is not None
    assert after.status is OperationStatus(target)
    assert after.id == op
    assert after.kind is before.kind
    assert after.created_at_ms == before.created_at_ms

    make_outcome = OUTCOME[method]
    if make_outcome is None:  # legal, not terminal
        assert after.terminal_outcome is None
        assert after.completed_at_ms is None
        assert after.elapsed_ms is None
        assert after.watcher_count == 1
        assert not watcher.done()
        assert reg.watermark() == mark
        assert reg.diagnostic_snapshot().active_count == active
        if method == "peer_ready":
            assert after.peer_ready is True
            assert after.peer_handle == HANDLE
        else:
            assert after.peer_ready is before.peer_ready
            assert after.peer_handle == before.peer_handle
        if method == "report_progress":
            assert after.progress_count == before.progress_count + 1
            assert after.last_progress == UPDATE
        else:
            assert after.progress_count == before.progress_count
            assert after.last_progress == before.last_progress
        if method == "provisioning_succeeded":
            assert before.started_at_ms is None
            assert after.started_at_ms is not None
            assert after.started_at_ms >= after.created_at_ms
        else:
            assert after.started_at_ms == before.started_at_ms
        return

    outcome = make_outcome(op)
    assert after.terminal_outcome == outcome
    assert after.terminal_outcome.status is OperationStatus(target)
    assert after.peer_ready is before.peer_ready
    assert after.progress_count == before.progress_count
    assert after.started_at_ms == before.started_at_ms
    assert after.completed_at_ms is not None
    assert after.completed_at_ms >= after.created_at_ms
    assert after.elapsed_ms == after.completed_at_ms - after.created_at_ms
    assert after.watcher_count == 0
    assert watcher.get(timeout=WAIT) == outcome
    assert reg.watermark() == mark + 1
    assert reg.diagnostic_snapshot().active_count == active - 1
    batch = reg.list_since(mark)
    assert batch.watermark == mark + 1
    assert len(batch.entries) == 1
    entry = batch.entries[0]
    assert entry.seq == mark + 1
    assert entry.operation_id == op
    assert entry.kind is after.kind
    assert entry.display_name == after.display_name
    assert entry.terminal_outcome == outcome
    assert entry.completed_at_ms == after.completed_at_ms
    # A second attempt at any terminal method is now refused as from a terminal status.
    assert_refused(
        reg,
        lambda: reg.cancel_operation(op),
        InvalidTransition(op, OperationStatus(target), "cancel_operation"),
        f"invalid lifecycle transition for {op}: {SPELLED[target]} -> cancel_operation",
    )


# --- peer_ready: kind and already-ready come before the status --------------------------------

OTHER_KINDS = [k for k in OperationKind if k is not OperationKind.MOB_MEMBER_CHILD]
PEER_KIND_GRID = [(k, c) for k in OTHER_KINDS for c in COLUMNS]


@pytest.mark.parametrize(
    ("kind", "column"), PEER_KIND_GRID, ids=[f"{k.value}-{c}" for k, c in PEER_KIND_GRID]
)
def test_peer_ready_on_other_kinds_is_not_expected(
    registry: Callable[..., OpsRegistry], kind: OperationKind, column: str
) -> None:
    reg = new_registry(registry, column)
    op = reach(reg, column, kind)
    if column in UNKNOWN:
        expected: OpsLifecycleError = NotFound(op)
        message = f"operation not found: {op}"
    else:
        expected = PeerNotExpected(op)
        message = f"operation does not expect a peer handoff: {op}"
    err = assert_refused(reg, lambda: reg.peer_ready(op, HANDLE), expected, message)
    assert err.id == op  # type: ignore[attr-defined]


@pytest.mark.parametrize("column", ["provisioning", "running", "completed"])
def test_peer_ready_kind_decides_not_the_expect_flag(
    registry: Callable[..., OpsRegistry], column: str
) -> None:
    reg = registry()
    op = reach(reg, column, OperationKind.BACKGROUND_TOOL_OP, expect_peer_channel=True)
    assert_refused(
        reg,
        lambda: reg.peer_ready(op, HANDLE),
        PeerNotExpected(op),
        f"operation does not expect a peer handoff: {op}",
    )


#: every status a peer-ready operation can be in (abort is only legal before it runs)
PEER_READY_STATUSES = ("running", "retiring", "completed", "failed", "cancelled", "retired")
PEER_READY_STATUSES += ("terminated",)


@pytest.mark.parametrize("column", PEER_READY_STATUSES)
def test_peer_ready_twice_is_already_peer_ready(
    registry: Callable[..., OpsRegistry], column: str
) -> None:
    reg = registry()
    op = reach(reg, column, peer=True)
    snap = reg.snapshot(op)
    assert snap is not None and snap.peer_ready is True and snap.peer_handle == HANDLE
    other = OperationPeerHandle(peer_name="member-y", peer_id="p2", address="inproc://y")
    err = assert_refused(
        reg,
        lambda: reg.peer_ready(op, other),
        AlreadyPeerReady(op),
        f"operation is already peer-ready: {op}",
    )
    assert err.id == op  # type: ignore[attr-defined]
    assert reg.snapshot(op).peer_handle == HANDLE  # type: ignore[union-attr]


def test_peer_ready_status_checked_after_kind_and_flag(
    registry: Callable[..., OpsRegistry],
) -> None:
    reg = registry()
    op = reach(reg, "provisioning")
    assert_refused(
        reg,
        lambda: reg.peer_ready(op, HANDLE),
        InvalidTransition(op, OperationStatus.PROVISIONING, "peer_ready"),
        f"invalid lifecycle transition for {op}: Provisioning -> peer_ready",
    )


# --- terminate_owner over a mixed registry ----------------------------------------------------


def test_terminate_owner_ends_every_non_terminal_and_leaves_the_rest(
    registry: Callable[..., OpsRegistry],
) -> None:
    reg = registry()
    # Terminal ones first: reaching "terminated" calls terminate_owner itself.
    ops = {status: reach(reg, status) for status in TERMINAL + NON_TERMINAL}
    before = {status: reg.snapshot(op) for status, op in ops.items()}
    watchers = {status: reg.register_watcher(ops[status]) for status in NON_TERMINAL}
    mark = reg.watermark()

    reg.terminate_owner(REASON)

    for status, op in ops.items():
        snap = reg.snapshot(op)
        assert snap is not None
        if status in NON_TERMINAL:
            assert snap.status is OperationStatus.TERMINATED
            assert snap.terminal_outcome == Terminated(REASON)
            assert watchers[status].get(timeout=WAIT) == Terminated(REASON)
        else:
            assert snap == before[status], f"terminate_owner touched a {status} operation"
    batch = reg.list_since(mark)
    assert batch.watermark == mark + 3
    assert [e.seq for e in batch.entries] == [mark + 1, mark + 2, mark + 3]
    assert {e.operation_id for e in batch.entries} == {ops[s] for s in NON_TERMINAL}
    assert all(e.terminal_outcome == Terminated(REASON) for e in batch.entries)
    assert reg.diagnostic_snapshot().active_count == 0

    # Nothing non-terminal is left: a second call is a no-op.
    after = state(reg)
    reg.terminate_owner("again")
    assert state(reg) == after


# --- register_operation ------------------------------------------------------------------------


@pytest.mark.parametrize("column", KNOWN)
def test_register_duplicate_is_already_registered(
    registry: Callable[..., OpsRegistry], column: str
) -> None:
    reg = registry()
    op = reach(reg, column)
    name = reg.snapshot(op).display_name  # type: ignore[union-attr]
    again = spec_for(op, OperationKind.DETACHED_JOB_WAIT, name="a different spec")
    err = assert_refused(
        reg,
        lambda: reg.register_operation(again),
        AlreadyRegistered(op),
        f"operation already registered: {op}",
    )
    assert err.id == op  # type: ignore[attr-defined]
    snap = reg.snapshot(op)
    assert snap is not None
    assert snap.display_name == name
    assert snap.kind is OperationKind.MOB_MEMBER_CHILD


def test_max_concurrent_exceeded(registry: Callable[..., OpsRegistry]) -> None:
    reg = registry(max_concurrent=2)
    reach(reg, "provisioning")
    reach(reg, "retiring")  # retiring is not terminal: it still counts
    extra = OperationId.new()
    err = assert_refused(
        reg,
        lambda: reg.register_operation(spec_for(extra)),
        MaxConcurrentExceeded(2, 2),
        "max concurrent operations exceeded (limit: 2, active: 2)",
    )
    assert isinstance(err, MaxConcurrentExceeded)
    assert err.limit == 2
    assert err.active == 2
    assert reg.snapshot(extra) is None


@pytest.mark.parametrize("column", KNOWN)
def test_duplicate_is_checked_before_capacity(
    registry: Callable[..., OpsRegistry], column: str
) -> None:
    reg = registry(max_concurrent=2)
    op = reach(reg, column)
    while reg.diagnostic_snapshot().active_count < 2:
        reach(reg, "running")
    assert_refused(
        reg,
        lambda: reg.register_operation(spec_for(op)),
        AlreadyRegistered(op),
        f"operation already registered: {op}",
    )
    fresh = OperationId.new()
    assert_refused(
        reg,
        lambda: reg.register_operation(spec_for(fresh)),
        MaxConcurrentExceeded(2, 2),
        "max concurrent operations exceeded (limit: 2, active: 2)",
    )


def test_terminal_operations_free_capacity(registry: Callable[..., OpsRegistry]) -> None:
    reg = registry(max_concurrent=2)
    a = reach(reg, "running")
    reach(reg, "provisioning")
    reg.complete_operation(a, result_for(a))
    assert reg.diagnostic_snapshot().active_count == 1
    c = OperationId.new()
    reg.register_operation(spec_for(c))
    snap = reg.snapshot(c)
    assert snap is not None and snap.status is OperationStatus.PROVISIONING
    assert reg.diagnostic_snapshot().active_count == 2


@pytest.mark.parametrize("column", ["evicted", "collected"])
def test_forgotten_id_can_be_registered_again(
    registry: Callable[..., OpsRegistry], column: str
) -> None:
    reg = new_registry(registry, column)
    op = reach(reg, column)
    reg.register_operation(spec_for(op, name="second life"))
    snap = reg.snapshot(op)
    assert snap is not None
    assert snap.status is OperationStatus.PROVISIONING
    assert snap.display_name == "second life"
    assert snap.terminal_outcome is None
    assert snap.progress_count == 0 and snap.peer_ready is False
