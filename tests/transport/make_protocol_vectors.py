"""Write ``docs/protocol-vectors.json``: byte-exact frames of wire protocol version 1.

Run by hand after a change to the wire (``python -m tests.transport.make_protocol_vectors``);
its output is committed. ``tests/transport/test_protocol_vectors.py`` checks that the codec
still encodes each vector's value to exactly its bytes and decodes them back, and that
every method and error class has a vector.

Every value is fixed (ids, timestamps, epochs), so the file only changes when the
wire does. Values are given in their JSON form (``msgspec.to_builtins``): structs as
objects with every field, ids as their canonical text, enums as their values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from actors import calls
from actors.errors import (
    AlreadyPeerReady,
    AlreadyRegistered,
    DuplicateWaitOperation,
    Internal,
    InvalidArgument,
    InvalidTransition,
    LimitExceeded,
    MaxConcurrentExceeded,
    NotFound,
    OpsLifecycleError,
    OutcomeUnknown,
    PeerNotExpected,
    PermissionDenied,
    Unavailable,
    WaitAlreadyActive,
    WaitCancelled,
)
from actors.model import (
    Aborted,
    Cancelled,
    Completed,
    CompletionBatch,
    CompletionEntry,
    DiagnosticSnapshot,
    Failed,
    OperationCanonicalState,
    OperationId,
    OperationKind,
    OperationLifecycleSnapshot,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    OperationStatus,
    PersistedOpsSnapshot,
    RegistryCanonicalState,
    Retired,
    Terminated,
    WaitAllResult,
    WaitAllSatisfied,
    enc_hook,
)
from transport import codec
from transport.errors import Busy, FeedCursorAhead, FeedGap, ServerRestarted, TooLarge

OUT = Path(__file__).resolve().parents[2] / "docs" / "protocol-vectors.json"

EPOCH = "019ad9a0-4c00-7000-8000-00000000e90c"
REG = "default"
A = OperationId("019ad9a0-4c00-7000-8000-000000000001")
B = OperationId("019ad9a0-4c00-7000-8000-000000000002")
C = OperationId("019ad9a0-4c00-7000-8000-000000000003")
D = OperationId("019ad9a0-4c00-7000-8000-000000000004")
E = OperationId("019ad9a0-4c00-7000-8000-000000000005")
F = OperationId("019ad9a0-4c00-7000-8000-000000000006")
WAIT = "019ad9a0-4c00-7000-8000-0000000000aa"
T0 = 1_764_590_400_000  # 2025-12-01T12:00:00Z in Unix milliseconds

SPEC = OperationSpec(
    id=A,
    kind=OperationKind.BACKGROUND_TOOL_OP,
    owner_session_id="s1",
    display_name="build",
    source_label="ci",
)
RESULT = OperationResult(id=A, content="ok", is_error=False, duration_ms=1500, tokens_used=42)
PEER = OperationPeerHandle(peer_name="member-a", peer_id="p1", address="tcp://10.0.0.7:7000")
PROGRESS = OperationProgressUpdate(message="half way", percent=50.0)
DONE = Completed(result=RESULT)

SNAP = OperationLifecycleSnapshot(
    id=A,
    kind=OperationKind.BACKGROUND_TOOL_OP,
    display_name="build",
    status=OperationStatus.COMPLETED,
    peer_ready=False,
    progress_count=1,
    watcher_count=0,
    terminal_outcome=DONE,
    child_session_id=None,
    peer_handle=None,
    created_at_ms=T0,
    started_at_ms=T0 + 10,
    completed_at_ms=T0 + 1510,
    elapsed_ms=1500,
    owner_session_id="s1",
    last_progress=PROGRESS,
)
RUNNING = OperationLifecycleSnapshot(
    id=B,
    kind=OperationKind.MOB_MEMBER_CHILD,
    display_name="child",
    status=OperationStatus.RUNNING,
    peer_ready=True,
    progress_count=0,
    watcher_count=2,
    terminal_outcome=None,
    child_session_id="child-7",
    peer_handle=PEER,
    created_at_ms=T0,
    started_at_ms=T0 + 5,
    completed_at_ms=None,
    elapsed_ms=None,
    owner_session_id="s1",
    last_progress=None,
)
ENTRY = CompletionEntry(
    seq=7,
    operation_id=A,
    kind=OperationKind.BACKGROUND_TOOL_OP,
    display_name="build",
    terminal_outcome=DONE,
    completed_at_ms=T0 + 1510,
)
ENTRY2 = CompletionEntry(
    seq=8,
    operation_id=B,
    kind=OperationKind.MOB_MEMBER_CHILD,
    display_name="child",
    terminal_outcome=Cancelled(reason="user asked"),
    completed_at_ms=T0 + 2000,
)
PERSISTED = PersistedOpsSnapshot(
    epoch_id=EPOCH,
    authority_state=RegistryCanonicalState(
        operations={
            A: OperationCanonicalState(
                status=OperationStatus.COMPLETED,
                kind=OperationKind.BACKGROUND_TOOL_OP,
                peer_ready=False,
                progress_count=1,
                watcher_count=0,
                terminal_outcome=DONE,
                terminal_buffered=False,
                created_at_ms=T0,
                started_at_ms=T0 + 10,
                completed_at_ms=T0 + 1510,
                peer_handle=None,
                last_progress=PROGRESS,
                completion_seq=7,
            )
        },
        completed_order=(A,),
        max_completed=256,
        max_concurrent=None,
        active_count=0,
        wait_request_id=None,
        wait_operation_ids=(),
        next_completion_seq=8,
    ),
    operation_specs={A: SPEC},
    completion_entries=(ENTRY,),
    cursors={},
    dropped_through=6,
)

#: method -> (arguments, what the request means, the OK reply's value)
CALLS: dict[str, tuple[tuple[Any, ...], str, Any]] = {
    "register_operation": ((SPEC,), "register operation A (status provisioning)", None),
    "provisioning_succeeded": ((A,), "A: provisioning -> running", None),
    "provisioning_failed": ((A, "no capacity"), "A -> failed('no capacity')", None),
    "peer_ready": ((B, PEER), "B (mob_member_child) is reachable at PEER", None),
    "register_watcher": ((A,), "a future of A's terminal outcome", DONE),
    "report_progress": ((A, PROGRESS), "A made progress (50 %)", None),
    "complete_operation": ((A, RESULT), "A -> completed(RESULT)", None),
    "fail_operation": ((A, "boom"), "A -> failed('boom')", None),
    "abort_provisioning": ((A, "not needed"), "A -> aborted('not needed')", None),
    "cancel_operation": ((A, None), "A -> cancelled(no reason)", None),
    "request_retire": ((A,), "A: running -> retiring", None),
    "mark_retired": ((A,), "A -> retired", None),
    "snapshot": ((A,), "the view of A, or nil when it is unknown", SNAP),
    "list_operations": (
        (
            "s1",
            OperationStatus.RUNNING,
            OperationKind.MOB_MEMBER_CHILD,
            100,
            ("build", A),
            "bu",
            "name",
        ),
        "owner s1's running mob_member_child operations named bu…, 100 per page by name, after (build, A)",
        [RUNNING],
    ),
    "terminate_owner": (("shutting down",), "every non-terminal operation -> terminated", None),
    "collect_completed": (
        (),
        "drain every terminal operation (here one of each outcome)",
        [
            (A, DONE),
            (B, Failed(error="Traceback (most recent call last):\n...\nValueError: boom")),
            (C, Aborted(reason=None)),
            (D, Cancelled(reason="user asked")),
            (E, Retired()),
            (F, Terminated(reason="registry restarted")),
        ],
    ),
    "wait_all": (
        ("run-1", [A, B]),
        "a future: the barrier over A and B",
        WaitAllResult(
            outcomes=((A, DONE), (B, Cancelled(reason="user asked"))),
            satisfied=WaitAllSatisfied(wait_request_id=WAIT, operation_ids=(A, B)),
        ),
    ),
    "cancel_wait_all": ((), "clear the active barrier (true if there was one)", True),
    "wait_any": (([A, B],), "a future: the first of A, B to end", (B, Aborted(reason=None))),
    "list_since": (
        (6, 100),
        "feed entries after seq 6, at most 100",
        CompletionBatch(entries=(ENTRY, ENTRY2), watermark=8, dropped_through=0),
    ),
    "watermark": ((), "the highest published seq", 8),
    "wait_for_advance": ((8,), "a future: the watermark once it exceeds 8", 9),
    "capture_persistence_snapshot": ((), "the registry's persisted state", PERSISTED),
    "diagnostic_snapshot": (
        (),
        "counters and the barrier",
        DiagnosticSnapshot(
            operation_count=2,
            active_count=1,
            wait_active=True,
            wait_request_id=WAIT,
            wait_operation_ids=(A, B),
            operations=(SNAP, RUNNING),
            pending_commit_count=0,
            wait_run_id="run-1",
        ),
    ),
}

#: requests that leave out optional trailing arguments (they arrive as nil)
SHORT: list[tuple[str, tuple[Any, ...], str]] = [
    ("cancel_operation", (A,), "the reason left out: nil"),
    ("abort_provisioning", (A,), "the reason left out: nil"),
    ("list_operations", (), "every filter and the page left out: first 256 by (display_name, id)"),
    ("list_operations", ("s1",), "owner s1, other filters and the page left out"),
    ("list_since", (0,), "the limit left out: at most 256 entries"),
]

ERRORS: list[OpsLifecycleError] = [
    AlreadyRegistered(A),
    NotFound(A),
    InvalidTransition(A, OperationStatus.PROVISIONING, "complete_operation"),
    PeerNotExpected(A),
    AlreadyPeerReady(B),
    MaxConcurrentExceeded(4, 4),
    WaitAlreadyActive(),
    DuplicateWaitOperation(A),
    Internal("store commit failed: disk I/O error"),
    WaitCancelled(WAIT),
    InvalidArgument("limit must be an integer in [1, 1024], got 0"),
    Busy(4096),
    TooLarge(2_000_000, 1_048_576),
    Unavailable("store lost: the data directory was removed"),
    OutcomeUnknown("fsync failed: [Errno 5] Input/output error"),
    LimitExceeded("waits held for this client", 10_000),
    PermissionDenied("terminate_owner"),
    ServerRestarted(EPOCH),
    FeedCursorAhead(12, 8),
    FeedGap(3, 100, 1200),
]


def builtins(value: Any) -> Any:
    return msgspec.to_builtins(value, enc_hook=enc_hook)


def vec(hex_of: bytes, **fields: Any) -> dict[str, Any]:
    return {**fields, "hex": hex_of.hex()}


def build() -> dict[str, Any]:
    requests = []
    req_id = 1
    for method, (args, meaning, _) in CALLS.items():
        frame = codec.encode_request(req_id, EPOCH, REG, method, args)
        requests.append(
            vec(
                frame,
                method=method,
                req_id=req_id,
                server_epoch=EPOCH,
                registry=REG,
                args=builtins(list(args)),
                meaning=meaning,
                future=method in calls.FUTURE,
                state_changing=method in calls.CHANGES_STATE,
            )
        )
        req_id += 1
    for method, args, meaning in SHORT:
        frame = codec.encode_request(req_id, EPOCH, REG, method, args)
        requests.append(
            vec(
                frame,
                method=method,
                req_id=req_id,
                server_epoch=EPOCH,
                registry=REG,
                args=builtins(list(args)),
                meaning=meaning,
                future=False,
                state_changing=method in calls.CHANGES_STATE,
            )
        )
        req_id += 1
    # A read needs no epoch; the client's heartbeat is a ping with req_id 0.
    requests.append(
        vec(
            codec.encode_request(req_id, "", REG, "watermark", ()),
            method="watermark",
            req_id=req_id,
            server_epoch="",
            registry=REG,
            args=[],
            meaning="a read sent before any epoch is known (allowed)",
            future=False,
            state_changing=False,
        )
    )
    requests.append(
        vec(
            codec.encode_request(0, "", REG, "ping", ()),
            method="ping",
            req_id=0,
            server_epoch="",
            registry=REG,
            args=[],
            meaning="heartbeat; answered with PONG carrying the server's epoch",
            future=False,
            state_changing=False,
        )
    )

    replies = []
    for i, (method, (_, _, value)) in enumerate(CALLS.items(), start=1):
        replies.append(
            vec(
                codec.encode_reply(i, codec.OK, value),
                method=method,
                req_id=i,
                status=codec.OK,
                payload=builtins(value),
                meaning=f"OK: the value of {method}"
                + (" (its final reply, after ACCEPTED)" if method in calls.FUTURE else ""),
            )
        )
    replies.append(
        vec(
            codec.encode_reply(5, codec.ACCEPTED, None),
            method="register_watcher",
            req_id=5,
            status=codec.ACCEPTED,
            payload=None,
            meaning="ACCEPTED: the future is registered; its value follows under req_id 5",
        )
    )
    replies.append(
        vec(
            codec.encode_reply(0, codec.PONG, EPOCH),
            method="ping",
            req_id=0,
            status=codec.PONG,
            payload=EPOCH,
            meaning="PONG: the server's epoch",
        )
    )
    replies.append(
        vec(
            codec.encode_reply(0, codec.PONG, [EPOCH, False]),
            method="ping",
            req_id=0,
            status=codec.PONG,
            payload=[EPOCH, False],
            meaning="PONG, once, to a client the server had forgotten: re-establish waits",
        )
    )

    errors = []
    for i, exc in enumerate(ERRORS, start=100):
        payload = codec.encode_error(exc)
        errors.append(
            vec(
                codec.encode_reply(i, codec.ERROR, payload),
                error=type(exc).__name__,
                req_id=i,
                status=codec.ERROR,
                payload=builtins(payload),
                message=str(exc),
            )
        )

    single = [codec.encode_request(i, EPOCH, REG, "snapshot", (A,)) for i in (40, 41)]
    single.append(codec.encode_request(42, EPOCH, REG, "fail_operation", (A, "boom")))
    wide = b"\xdc\x00\x02" + bytes((codec.VERSION,)) + b"\xdc\x00\x02" + b"".join(single[:2])
    batches = [
        vec(
            codec.join_requests(single),
            kind="request_batch",
            requests=[h.hex() for h in single],
            meaning="three requests in one frame: [1, [request, request, request]]",
        ),
        vec(
            wide,
            kind="request_batch",
            requests=[h.hex() for h in single[:2]],
            meaning="the same shape written with array16 headers (any encoder may)",
        ),
        vec(
            codec.encode_reply_batch(
                [
                    (40, codec.OK, SNAP),
                    (41, codec.OK, None),
                    (42, codec.ERROR, codec.encode_error(NotFound(A))),
                    (43, codec.ACCEPTED, None),
                ]
            ),
            kind="reply_batch",
            replies=[
                codec.encode_reply(40, codec.OK, SNAP).hex(),
                codec.encode_reply(41, codec.OK, None).hex(),
                codec.encode_reply(42, codec.ERROR, codec.encode_error(NotFound(A))).hex(),
                codec.encode_reply(43, codec.ACCEPTED, None).hex(),
            ],
            meaning="replies in one frame: [1, [reply, ...]]",
        ),
    ]

    feed = [
        vec(
            codec.encode_feed("entries", 8, [ENTRY, ENTRY2]),
            topic=codec.topic(REG).hex(),
            kind="entries",
            watermark=8,
            dropped_through=0,
            entries=builtins([ENTRY, ENTRY2]),
            meaning="entries 7 and 8; watermark is the last entry's seq",
        ),
        vec(
            codec.encode_feed("heartbeat", 8, []),
            topic=codec.topic(REG).hex(),
            kind="heartbeat",
            watermark=8,
            dropped_through=0,
            entries=[],
            meaning="heartbeat: the registry's watermark is 8",
        ),
    ]
    return {
        "protocol_version": codec.VERSION,
        "about": (
            "Byte-exact frames of opsreg wire protocol version 1 (see protocol.md). "
            "hex is the whole ZeroMQ message frame; values are in their JSON form. "
            "Generated by tests/transport/make_protocol_vectors.py; checked by "
            "tests/transport/test_protocol_vectors.py."
        ),
        "status_codes": {
            "OK": codec.OK,
            "ERROR": codec.ERROR,
            "ACCEPTED": codec.ACCEPTED,
            "PONG": codec.PONG,
        },
        "requests": requests,
        "replies": replies,
        "errors": errors,
        "batches": batches,
        "feed": feed,
    }


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
