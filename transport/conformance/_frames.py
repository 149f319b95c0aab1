"""Checks of frames rather than methods: batches, oversized, malformed and multi-part ones."""

from __future__ import annotations

import pickle
import random

import msgspec

from actors.model import OperationId
from transport import codec
from transport.conformance._session import Session
from transport.conformance._wire import Skip, error_of, expect

__all__ = ["FRAME_CHECKS"]


def _batch_of(s: Session, header: bytes | None) -> None:
    wire = s.wire
    spec = s.spec()
    ghost = OperationId.new()
    calls = [
        wire.frame("register_operation", (spec,)),
        wire.frame("provisioning_succeeded", (spec.id,)),
        wire.frame("snapshot", (spec.id,)),
        wire.frame("provisioning_succeeded", (ghost,)),
        wire.frame("watermark", ()),
    ]
    frames = [f for _, f in calls]
    if header is None:
        frame = codec.join_requests(frames)
    else:
        count = len(frames).to_bytes(2, "big")
        frame = header + msgspec.msgpack.encode(codec.VERSION) + b"\xdc" + count + b"".join(frames)
    expect(codec.is_batch(frame), "the codec does not see its own batch as one")
    wire.send(frame)
    replies = [wire.reply(rid) for rid, _ in calls]
    wire.value("register_operation", replies[0])
    wire.value("provisioning_succeeded", replies[1])
    snap = wire.value("snapshot", replies[2])
    expect(snap is not None and snap.status == "running", "a batch ran out of order")
    wire.error(replies[3], "NotFound", [ghost])
    wire.value("watermark", replies[4])
    for rid, _ in calls:
        expect(wire.nothing_more(rid, 0.0), f"req_id {rid} answered twice")
    s.ok("cancel_operation", spec.id, None)


def batch(s: Session) -> None:
    _batch_of(s, None)


def batch_array16(s: Session) -> None:
    _batch_of(s, b"\xdc\x00\x02")


def too_large(s: Session) -> str:
    """Doubling from 1.25 MiB: a frame under the limit is read (and its bad id refused), one
    over it is refused unread; each size is at most twice one the server read, so it stays
    under the size at which a server may drop the connection instead of answering."""
    size = (1 << 20) + (1 << 18)
    while size <= 32 << 20:
        rid, frame = s.wire.frame("snapshot", ("x" * size,))
        s.wire.send(frame)
        reply = s.wire.reply(rid, timeout=max(s.timeout, 10.0))
        expect(reply.status == codec.ERROR, f"a {len(frame)}-byte bad request was answered OK")
        name = error_of(reply)[0]
        if name == "TooLarge":
            got, limit = s.wire.error(reply, "TooLarge")
            expect(got == len(frame), f"TooLarge names {got} bytes, the frame had {len(frame)}")
            expect(limit < got, f"TooLarge limit {limit} is not below the size {got}")
            s.wire.ping()
            return f"{len(frame)} bytes over a {limit}-byte limit"
        s.wire.error(reply, "InvalidArgument")
        size *= 2
    raise Skip("the server accepts request frames of 32 MiB")


def _malformed_reply(s: Session, frame: bytes | list[bytes], what: str) -> None:
    s.wire.send(frame)
    reply = s.wire.reply(0)
    expect(reply.status == codec.ERROR, f"{what}: status {reply.status}, expected an error")
    s.wire.error(reply, "InvalidArgument")


def malformed(s: Session) -> str:
    rng = random.Random(12)
    valid = s.wire.frame("watermark", ())[1]
    frames: list[tuple[str, bytes]] = [
        ("empty frame", b""),
        ("truncated request", valid[:-3]),
        ("not an array", msgspec.msgpack.encode({"method": "ping"})),
        ("wrong field types", msgspec.msgpack.encode([1, "one", 2, 3, 4, 5])),
        ("batch of junk", bytes((codec.BATCH, codec.VERSION)) + b"\x91\xc1"),
        ("pickle", pickle.dumps((1, 1, "", s.registry, "ping", []), protocol=5)),
        ("pickle of an object", pickle.dumps(OperationId.new())),
    ]
    frames += [(f"{n} random bytes", rng.randbytes(n)) for n in (1, 5, 64, 4096)]
    for what, frame in frames:
        _malformed_reply(s, frame, what)
    s.wire.ping()
    return f"{len(frames)} frames refused, ping still answers"


def multipart(s: Session) -> None:
    valid = s.wire.frame("watermark", ())[1]
    _malformed_reply(s, [valid, valid], "a two-frame message")
    s.wire.ping()


FRAME_CHECKS = [
    ("batch frame: every request answered once, under its req_id, in order", batch),
    ("batch frame with an array16 header", batch_array16),
    ("TooLarge for a frame over the server's limit", too_large),
    ("malformed frames (random, pickle, truncated) refused; the server lives", malformed),
    ("InvalidArgument for a multi-frame message", multipart),
]
