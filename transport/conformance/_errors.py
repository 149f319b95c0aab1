"""Checks of every error a client can provoke, by class, with its exact fields."""

from __future__ import annotations

from typing import Any

import msgspec

from actors import calls
from actors.model import OperationId, OperationKind, OperationProgressUpdate
from transport import codec
from transport.conformance._lifecycle import PEER
from transport.conformance._session import Session
from transport.conformance._wire import expect

__all__ = ["ERROR_CHECKS"]


def not_found(s: Session) -> None:
    ghost = OperationId.new()
    for method, args in (
        ("provisioning_succeeded", ()),
        ("complete_operation", (s.result(ghost),)),
        ("cancel_operation", (None,)),
        ("register_watcher", ()),
    ):
        s.wire.refused("NotFound", [ghost], method, ghost, *args)


def already_registered(s: Session) -> None:
    spec = s.spec()
    s.ok("register_operation", spec)
    s.wire.refused("AlreadyRegistered", [spec.id], "register_operation", spec)
    s.ok("abort_provisioning", spec.id, None)


def invalid_transition(s: Session) -> None:
    op = s.registered()
    s.wire.refused(
        "InvalidTransition",
        [op, "provisioning", "complete_operation"],
        "complete_operation",
        op,
        s.result(op),
    )
    s.ok("provisioning_succeeded", op)
    s.wire.refused(
        "InvalidTransition",
        [op, "running", "provisioning_succeeded"],
        "provisioning_succeeded",
        op,
    )
    s.ok("mark_retired", op)
    s.wire.refused(
        "InvalidTransition", [op, "retired", "cancel_operation"], "cancel_operation", op, None
    )
    s.status(op, "retired")


def peer_errors(s: Session) -> None:
    plain = s.running()
    s.wire.refused("PeerNotExpected", [plain], "peer_ready", plain, PEER)
    child = s.running(OperationKind.MOB_MEMBER_CHILD)
    s.ok("peer_ready", child, PEER)
    s.wire.refused("AlreadyPeerReady", [child], "peer_ready", child, PEER)
    for op in (plain, child):
        s.ok("cancel_operation", op, None)


def wait_errors(s: Session) -> None:
    a = s.running()
    s.wire.refused("DuplicateWaitOperation", [a], "wait_all", "dup", [a, a])
    rid = s.future("wait_all", "first", [a])
    s.wire.refused("WaitAlreadyActive", [], "wait_all", "second", [a])
    s.ok("cancel_wait_all")
    s.wire.error(s.wire.reply(rid), "WaitCancelled")
    s.ok("cancel_operation", a, None)


def invalid_arguments(s: Session) -> str:
    op = s.running()
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("snapshot", (42,)),
        ("provisioning_succeeded", ("not-a-uuid",)),
        ("report_progress", (op, {"message": "x", "percent": 250.0})),
        ("report_progress", (op, {"message": "x", "percent": True})),
        ("register_operation", ({"id": str(OperationId.new())},)),
        ("list_operations", (None, "no-such-status", None, 5, None)),
        ("list_operations", (None, None, None, 5, None, None, "sideways")),
        ("list_since", (-1, 5)),
        ("watermark", ("extra",)),
        ("no_such_method", ()),
    ]
    for method, args in cases:
        reply = s.wire.call(method, *args)
        s.wire.error(reply, "InvalidArgument")
    s.status(op, "running")  # nothing changed
    s.ok("cancel_operation", op, None)
    return f"{len(cases)} refused"


def future_version(s: Session) -> None:
    rid = s.wire.new_id()
    s.wire.send(
        msgspec.msgpack.encode([codec.VERSION + 1, rid, s.wire.epoch, s.registry, "watermark", []])
    )
    reply = s.wire.reply(0)
    s.wire.error(reply, "InvalidArgument")


def server_restarted(s: Session) -> str:
    samples = _mutating_samples(s)
    missing = sorted(calls.CHANGES_STATE - samples.keys())
    expect(not missing, f"no sample arguments for {missing}")
    for method in sorted(calls.CHANGES_STATE):
        for epoch in ("", "not-" + s.wire.epoch):
            reply = s.wire.call(method, *samples[method], epoch=epoch)
            s.wire.error(reply, "ServerRestarted", [s.wire.epoch])
    spec = samples["register_operation"][0]
    expect(s.ok("snapshot", spec.id) is None, "a refused register_operation was executed")
    return f"{len(calls.CHANGES_STATE)} state-changing methods"


def _mutating_samples(s: Session) -> dict[str, tuple[Any, ...]]:
    op = OperationId.new()
    return {
        "register_operation": (s.spec(),),
        "provisioning_succeeded": (op,),
        "provisioning_failed": (op, "x"),
        "peer_ready": (op, PEER),
        "report_progress": (op, OperationProgressUpdate(message="x")),
        "complete_operation": (op, s.result(op)),
        "fail_operation": (op, "x"),
        "abort_provisioning": (op, None),
        "cancel_operation": (op, None),
        "request_retire": (op,),
        "mark_retired": (op,),
        "terminate_owner": ("conformance: must not run",),
        "collect_completed": (),
        "wait_all": ("x", [op]),
        "cancel_wait_all": (),
    }


def read_only_without_epoch(s: Session) -> str:
    done = s.completed()
    samples: dict[str, tuple[Any, ...]] = {
        "snapshot": (done,),
        "list_operations": (s.owner, None, None, 1, None),
        "list_since": (0, 1),
        "watermark": (),
        "diagnostic_snapshot": (),
        "capture_persistence_snapshot": (),
        "register_watcher": (done,),
        "wait_any": ([done],),
        "wait_for_advance": (0,),
    }
    read_only = set(calls.METHODS) - calls.CHANGES_STATE
    missing = sorted(read_only - samples.keys())
    expect(not missing, f"no sample arguments for read-only {missing}")
    for method in sorted(read_only):
        reply = s.wire.call(method, *samples[method], epoch="")
        if method in calls.FUTURE:
            expect(reply.status == codec.ACCEPTED, f"{method} without epoch: {reply.status}")
            s.final(method, reply.req_id)
        else:
            s.wire.value(method, reply)
            s.exercised.add(method)
    return f"{len(read_only)} read-only methods"


ERROR_CHECKS = [
    ("NotFound for an unknown id", not_found),
    ("AlreadyRegistered", already_registered),
    ("InvalidTransition with status and action", invalid_transition),
    ("PeerNotExpected and AlreadyPeerReady", peer_errors),
    ("DuplicateWaitOperation and WaitAlreadyActive", wait_errors),
    ("InvalidArgument: bad types, out of range, unknown method", invalid_arguments),
    ("InvalidArgument: a future protocol version", future_version),
    ("ServerRestarted: wrong or empty epoch on every state-changing method", server_restarted),
    ("read-only methods answer without an epoch", read_only_without_epoch),
]
