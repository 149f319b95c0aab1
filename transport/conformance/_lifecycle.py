"""Checks of every method's success path, in the order a client meets them."""

from __future__ import annotations

from typing import Any

from actors.model import (
    Aborted,
    Cancelled,
    Completed,
    Failed,
    OperationId,
    OperationKind,
    OperationPeerHandle,
    OperationProgressUpdate,
    Retired,
    Terminated,
)
from transport import codec
from transport.conformance._session import Session
from transport.conformance._wire import Skip, Wire, epoch_of, expect

__all__ = ["PEER", "SUCCESS_CHECKS", "TAIL_CHECKS"]

PEER = OperationPeerHandle(peer_name="conformance-peer", peer_id="p-1", address="tcp://peer:1")


def ping(s: Session) -> str:
    rid, pong = s.wire.ping(req_id=4242)
    expect(rid == 4242, f"pong carries req_id {rid}, expected 4242")
    s.wire.epoch = epoch_of(pong)
    return f"epoch {s.wire.epoch}"


def epoch_stable(s: Session) -> None:
    _, again = s.wire.ping()
    expect(epoch_of(again) == s.wire.epoch, "a second ping names another epoch")
    other = Wire(s.ctx, s.endpoint, s.registry, s.timeout)
    try:
        _, theirs = other.ping()
        expect(epoch_of(theirs) == s.wire.epoch, "another connection is told another epoch")
    finally:
        other.close()


def register(s: Session) -> None:
    spec = s.spec()
    expect(s.ok("register_operation", spec) is None, "register_operation answers a value")
    snap = s.status(spec.id, "provisioning")
    expect(snap.kind == spec.kind, f"kind {snap.kind}, expected {spec.kind}")
    expect(snap.display_name == spec.display_name, "display_name differs from the spec")
    expect(snap.owner_session_id == spec.owner_session_id, "owner_session_id differs")
    expect(snap.terminal_outcome is None and not snap.peer_ready, "a fresh operation is not new")
    expect(s.ok("snapshot", OperationId.new()) is None, "snapshot of an unknown id is not nil")


def start_progress_peer(s: Session) -> None:
    op = s.registered(OperationKind.MOB_MEMBER_CHILD)
    s.ok("provisioning_succeeded", op)
    s.status(op, "running")
    update = OperationProgressUpdate(message="halfway", percent=50.0)
    s.ok("report_progress", op, update)
    s.ok("peer_ready", op, PEER)
    snap = s.status(op, "running")
    expect(snap.progress_count == 1, f"progress_count {snap.progress_count}, expected 1")
    expect(snap.last_progress == update, f"last_progress {snap.last_progress!r}")
    expect(snap.peer_ready and snap.peer_handle == PEER, "peer_ready/peer_handle not kept")
    s.ok("complete_operation", op, s.result(op))


def watcher_complete(s: Session) -> None:
    op = s.running()
    rid = s.future("register_watcher", op)
    expect(s.wire.nothing_more(rid), "a watcher of a running operation answered at once")
    result = s.result(op, "the answer")
    s.ok("complete_operation", op, result)
    outcome = s.final("register_watcher", rid)
    expect(outcome == Completed(result), f"watcher got {outcome!r}")
    snap = s.status(op, "completed")
    expect(snap.terminal_outcome == Completed(result), "snapshot's outcome differs")
    s.ended[op] = outcome


def already_terminal_watcher(s: Session) -> None:
    op = s.completed()
    rid = s.future("register_watcher", op)
    outcome = s.final("register_watcher", rid)
    expect(isinstance(outcome, Completed), f"late watcher got {outcome!r}")


def terminal_methods(s: Session) -> None:
    op = s.running()
    s.ok("fail_operation", op, "it broke")
    checks: list[tuple[OperationId, Any, str]] = [(op, Failed("it broke"), "failed")]
    op = s.registered()
    s.ok("provisioning_failed", op, "no slot")
    checks.append((op, Failed("no slot"), "failed"))
    op = s.running()
    s.ok("cancel_operation", op, "user asked")
    checks.append((op, Cancelled("user asked"), "cancelled"))
    op = s.registered()
    s.ok("abort_provisioning", op, "gave up")
    checks.append((op, Aborted("gave up"), "aborted"))
    op = s.running()
    s.ok("request_retire", op)
    s.status(op, "retiring")
    s.ok("mark_retired", op)
    checks.append((op, Retired(), "retired"))
    for op, outcome, status in checks:
        snap = s.status(op, status)
        expect(snap.terminal_outcome == outcome, f"{op}: outcome {snap.terminal_outcome!r}")
        s.ended[op] = outcome


def optional_tail(s: Session) -> None:
    """Trailing optional arguments may be left out: they arrive as nil."""
    op = s.registered()
    s.ok("abort_provisioning", op)
    expect(s.snapshot(op).terminal_outcome == Aborted(None), "abort without reason")
    op2 = s.running()
    s.ok("cancel_operation", op2)
    expect(s.snapshot(op2).terminal_outcome == Cancelled(None), "cancel without reason")
    s.ended[op], s.ended[op2] = Aborted(None), Cancelled(None)
    expect(isinstance(s.ok("list_operations"), list), "list_operations() is not a list")
    batch = s.ok("list_since", 0)
    expect(isinstance(batch.entries, tuple), "list_since(0) has no entries")


def list_operations(s: Session) -> None:
    owner = f"{s.owner}-paging"
    kinds = [OperationKind.BACKGROUND_TOOL_OP, OperationKind.DETACHED_JOB_WAIT] * 3
    specs = [s.spec(kind, owner=owner, name=f"page-{i}") for i, kind in enumerate(kinds[:5])]
    for i, spec in enumerate(specs):
        s.ok("register_operation", spec)
        if i % 2 == 0:
            s.ok("provisioning_succeeded", spec.id)
    order = [sp.id for sp in sorted(specs, key=lambda sp: (sp.display_name, sp.id))]
    every = s.ok("list_operations", owner, None, None, 10, None)
    expect([x.id for x in every] == order, "owner filter: not exactly its operations in order")
    running = s.ok("list_operations", owner, "running", None, 10, None)
    expect([x.id for x in running] == order[0::2], "status filter selects the wrong ones")
    jobs = s.ok("list_operations", owner, None, "detached_job_wait", 10, None)
    want = [sp.id for sp in specs if sp.kind is OperationKind.DETACHED_JOB_WAIT]
    expect(sorted(x.id for x in jobs) == sorted(want), "kind filter selects the wrong ones")
    both = s.ok("list_operations", owner, "running", "background_tool_op", 10, None)
    expect(len(both) == 3, f"status and kind together gave {len(both)}, expected 3")
    pages: list[OperationId] = []
    after = None
    for _ in range(5):
        page = s.ok("list_operations", owner, None, None, 2, after)
        expect(len(page) <= 2, f"a page of limit 2 has {len(page)} items")
        pages += [x.id for x in page]
        if len(page) < 2:
            break
        after = [page[-1].display_name, page[-1].id]
    expect(pages == order, "pages of 2 do not add up to the listing")
    by_id = sorted(sp.id for sp in specs)
    for how, want in (("oldest", by_id), ("newest", by_id[::-1])):
        pages, after = [], None
        for _ in range(5):
            page = s.ok("list_operations", owner, None, None, 2, after, None, how)
            pages += [x.id for x in page]
            if len(page) < 2:
                break
            after = [page[-1].display_name, page[-1].id]
        expect(pages == want, f"order {how!r}: pages of 2 are not by id")
    named = s.ok("list_operations", owner, None, None, 10, None, "page-3", None)
    expect([x.display_name for x in named] == ["page-3"], "name_prefix selects the wrong ones")
    for spec in specs:
        s.ok("cancel_operation", spec.id, "paging done")


def list_since(s: Session) -> str:
    mark = s.ok("watermark")
    expect(isinstance(mark, int) and mark >= 2, f"watermark {mark!r} after several completions")
    first = s.ok("list_since", 0, 2)
    expect(len(first.entries) <= 2, f"list_since limit 2 gave {len(first.entries)} entries")
    expect(first.watermark == mark, f"list_since watermark {first.watermark}, watermark {mark}")
    seqs: list[int] = []
    cursor = 0
    for _ in range(mark + 1):
        batch = s.ok("list_since", cursor, 2)
        if not batch.entries:
            break
        seqs += [e.seq for e in batch.entries]
        cursor = batch.entries[-1].seq
    start = first.dropped_through + 1
    expect(seqs == list(range(start, mark + 1)), f"paged seqs {seqs[:8]}... not {start}..{mark}")
    late = s.ok("list_since", mark, 5)
    expect(not late.entries, "list_since(watermark) returned entries")
    return f"watermark {mark}"


def feed_outcomes(s: Session) -> None:
    entries = {e.operation_id: e for e in s.ok("list_since", 0, 1024).entries}
    for op, outcome in s.ended.items():
        entry = entries.get(op)
        expect(entry is not None, f"no feed entry for {op}")
        assert entry is not None
        expect(entry.terminal_outcome == outcome, f"feed says {entry.terminal_outcome!r}")


def wait_any(s: Session) -> None:
    a, b = s.running(), s.running()
    rid = s.future("wait_any", [a, b])
    expect(s.wire.nothing_more(rid), "wait_any answered before any member ended")
    s.ok("fail_operation", b, "first out")
    got = s.final("wait_any", rid)
    expect(list(got) == [b, Failed("first out")], f"wait_any gave {got!r}")
    s.ok("cancel_operation", a, "done")


def wait_for_advance(s: Session) -> None:
    mark = s.ok("watermark")
    rid = s.future("wait_for_advance", mark)
    expect(s.wire.nothing_more(rid), "wait_for_advance answered before the feed advanced")
    s.completed()
    got = s.final("wait_for_advance", rid)
    expect(got == mark + 1, f"wait_for_advance({mark}) gave {got}, expected {mark + 1}")
    rid = s.future("wait_for_advance", 0)
    expect(s.final("wait_for_advance", rid) >= mark + 1, "wait_for_advance(0) is behind")


def wait_all(s: Session) -> None:
    a, b, done = s.running(), s.running(), s.completed()
    rid = s.future("wait_all", "conformance-run", [a, done, b])
    diag = s.ok("diagnostic_snapshot")
    expect(diag.wait_active, "diagnostic_snapshot: no active barrier during wait_all")
    expect(list(diag.wait_operation_ids) == [a, done, b], "barrier lists other ids")
    expect(diag.wait_run_id == "conformance-run", f"wait_run_id {diag.wait_run_id!r}")
    expect(s.wire.nothing_more(rid), "wait_all answered before its members ended")
    s.ok("fail_operation", b, "b failed")
    s.ok("complete_operation", a, s.result(a))
    result = s.final("wait_all", rid)
    ids = [op for op, _ in result.outcomes]
    expect(ids == [a, done, b], f"wait_all outcomes in order {ids}, expected request order")
    expect(result.outcomes[2][1] == Failed("b failed"), "wait_all: b's outcome differs")
    expect(list(result.satisfied.operation_ids) == [a, done, b], "satisfied ids differ")
    expect(result.satisfied.wait_request_id == diag.wait_request_id, "wait_request_id differs")
    expect(not s.ok("diagnostic_snapshot").wait_active, "barrier still active after release")


def cancel_wait_all(s: Session) -> None:
    a = s.running()
    rid = s.future("wait_all", "conformance-cancel", [a])
    wait_id = s.ok("diagnostic_snapshot").wait_request_id
    expect(s.ok("cancel_wait_all") is True, "cancel_wait_all of an active barrier is not true")
    s.wire.error(s.wire.reply(rid), "WaitCancelled", [wait_id])
    expect(s.ok("cancel_wait_all") is False, "cancel_wait_all without a barrier is not false")
    s.ok("cancel_operation", a, None)


def diagnostic(s: Session) -> None:
    diag = s.ok("diagnostic_snapshot")
    expect(diag.operation_count == len(diag.operations), "operation_count != len(operations)")
    active = sum(1 for o in diag.operations if o.status in ("provisioning", "running", "retiring"))
    expect(diag.active_count == active, f"active_count {diag.active_count}, counted {active}")
    expect(any(o.owner_session_id == s.owner for o in diag.operations), "our operations absent")


def persistence_snapshot(s: Session) -> None:
    snap = s.ok("capture_persistence_snapshot")
    op = s.registered()
    expect(op not in snap.operation_specs, "an operation registered later is in the capture")
    again = s.ok("capture_persistence_snapshot")
    expect(op in again.operation_specs, "a registered operation is missing from the capture")
    expect(again.operation_specs[op].owner_session_id == s.owner, "captured spec differs")
    mark = s.ok("watermark")
    seqs = [e.seq for e in again.completion_entries]
    expect(not seqs or seqs[-1] == mark, f"captured entries end at {seqs[-1:]}, watermark {mark}")
    s.ok("abort_provisioning", op, None)


def max_concurrent(s: Session) -> str:
    state = s.ok("capture_persistence_snapshot").authority_state
    limit, active = state.max_concurrent, state.active_count
    if limit is None:
        raise Skip("the server sets no max_concurrent limit")
    room = limit - active
    if room > 1024:
        raise Skip(f"limit {limit} leaves room for {room} operations; too many to fill")
    wire = s.wire
    filled = []
    for start in range(0, room, 256):
        specs = [s.spec() for _ in range(min(256, room - start))]
        frames = [wire.frame("register_operation", (spec,)) for spec in specs]
        wire.send(codec.join_requests([f for _, f in frames]))
        for rid, _ in frames:
            wire.value("register_operation", wire.reply(rid))
        filled += [spec.id for spec in specs]
    wire.refused("MaxConcurrentExceeded", [limit, limit], "register_operation", s.spec())
    for op in filled[-3:]:  # room for the checks after this one; terminate_owner ends the rest
        s.ok("cancel_operation", op, "conformance: making room")
    return f"limit {limit}; filled {room}"


def terminate_owner(s: Session) -> None:
    provisioning, running, done = s.registered(), s.running(), s.completed()
    before = s.snapshot(done).terminal_outcome
    s.ok("terminate_owner", "conformance: terminate_owner")
    for op in (provisioning, running):
        snap = s.status(op, "terminated")
        expect(snap.terminal_outcome == Terminated("conformance: terminate_owner"), "reason lost")
    expect(s.snapshot(done).terminal_outcome == before, "terminate_owner touched a terminal one")
    diag = s.ok("diagnostic_snapshot")
    expect(diag.active_count == 0, f"{diag.active_count} operations still active")


def collect_completed(s: Session) -> str:
    # Retention (the server's max_completed) may have let the oldest go already.
    held = [op for op in s.ended if s.wire.ok("snapshot", op) is not None]
    drained = s.ok("collect_completed")
    ids = [op for op, _ in drained]
    expect(len(ids) == len(set(ids)), "collect_completed repeats an id")
    missing = [op for op in held if op not in ids]
    expect(not missing, f"collect_completed left out {missing[:2]}")
    for op, outcome in drained:
        if op in s.ended:
            expect(outcome == s.ended[op], f"collected {op} with {outcome!r}")
    expect(ids, "collect_completed returned nothing after the suite ended operations")
    expect(s.ok("snapshot", ids[0]) is None, "a collected operation still has a snapshot")
    if s.fresh:
        expect(s.ok("collect_completed") == [], "a second collect_completed is not empty")
    return f"{len(ids)} collected"


SUCCESS_CHECKS = [
    ("ping: PONG echoes the req_id and names the epoch", ping),
    ("ping: the epoch is the same on every ping and connection", epoch_stable),
    ("register_operation, snapshot: provisioning, fields kept; unknown id is nil", register),
    ("provisioning_succeeded, report_progress, peer_ready", start_progress_peer),
    ("register_watcher: ACCEPTED, complete_operation, final Completed", watcher_complete),
    ("register_watcher on an ended operation: ACCEPTED then final", already_terminal_watcher),
    ("fail/provisioning_failed/cancel/abort/request_retire/mark_retired", terminal_methods),
    ("optional trailing arguments may be omitted", optional_tail),
    ("list_operations: owner/status/kind filters and paging", list_operations),
    ("wait_any: ACCEPTED, then the first to end", wait_any),
    ("wait_for_advance: ACCEPTED, then the new watermark", wait_for_advance),
    ("wait_all: barrier in diagnostic_snapshot, outcomes in request order", wait_all),
    ("cancel_wait_all: true, the wait ends WaitCancelled; then false", cancel_wait_all),
    ("list_since with limit, watermark: contiguous pages up to the watermark", list_since),
    ("list_since: entries carry the outcomes the suite saw", feed_outcomes),
    ("diagnostic_snapshot: counts agree with its operations", diagnostic),
    ("capture_persistence_snapshot: specs and entries", persistence_snapshot),
]

TAIL_CHECKS = [
    ("MaxConcurrentExceeded at the server's limit", max_concurrent),
    ("terminate_owner: every live operation Terminated, ended ones untouched", terminate_owner),
    ("collect_completed: every ended operation, once", collect_completed),
]
