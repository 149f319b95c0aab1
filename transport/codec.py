"""The one place that turns requests, replies, model values and errors into frames.

Every frame is a single msgpack document (via msgspec, which validates while it
decodes, so a wrong type becomes a typed ``InvalidArgument`` for free). Nothing
here unpickles anything.

Request  ``[VERSION, req_id, server_epoch, registry, method, args]``
Reply    ``[VERSION, req_id, status, payload]``
Batches  ``[VERSION, [request, ...]]`` and ``[VERSION, [reply, ...]]``: a pipelining
         client packs the requests it has queued into one frame, and the server
         answers the requests of a batch in batches (one frame per client per
         pass). A frame is a batch when it is a 2-element array; a single
         request or reply is a 6- or 4-element one. The count is read from the
         array header in any of its msgpack forms (fixarray, array16, array32),
         so any valid encoder may write it.
Feed     topic ``registry + b"\\0"`` then ``[VERSION, kind, watermark, dropped_through, entries]``

``server_epoch`` is the id of the server incarnation the client believes it is
talking to; a server answers a state-changing request that names another
incarnation (or none, ``""``) with ``ServerRestarted(its epoch)`` instead of
acting on it: a definite "not executed", which the client may re-send.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

import msgspec

from actors.calls import METHODS
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
    WaitAlreadyActive,
    WaitCancelled,
)
from actors.model import (
    CompletionEntry,
    OperationId,
    OperationStatus,
    dec_hook,
    enc_hook,
    trusted_values,
)
from transport.errors import Busy, FeedCursorAhead, FeedGap, ServerRestarted, TooLarge, Unavailable

__all__ = [
    "BATCH",
    "MAX_BATCH",
    "VERSION",
    "FeedMessage",
    "Reply",
    "ReplyBatch",
    "Request",
    "RequestBatch",
    "array_length",
    "decode_args",
    "decode_error",
    "decode_feed",
    "decode_replies",
    "decode_reply",
    "decode_request",
    "decode_requests",
    "decode_value",
    "encode_error",
    "encode_feed",
    "encode_reply",
    "encode_reply_batch",
    "encode_request",
    "is_batch",
    "join_requests",
]

VERSION: Final = 1

# Reply status codes.
OK: Final = 0
ERROR: Final = 1
ACCEPTED: Final = 2  # a future was registered; its value follows in a second reply
PONG: Final = 3  # payload: the server's epoch, or [epoch, False] once to a forgotten client

# The method table (names, argument and reply types, futures, read-only) is
# actors/calls.py; the decoders below are built from it.


class Request(msgspec.Struct, array_like=True):
    version: int
    req_id: int
    server_epoch: str
    registry: str
    method: str
    args: msgspec.Raw


class Reply(msgspec.Struct, array_like=True):
    version: int
    req_id: int
    status: int
    payload: msgspec.Raw


class FeedMessage(msgspec.Struct, array_like=True):
    version: int
    kind: str  # "entries" or "heartbeat"
    watermark: int
    dropped_through: int
    entries: list[CompletionEntry]


class RequestBatch(msgspec.Struct, array_like=True):
    version: int
    requests: list[Request]


class ReplyBatch(msgspec.Struct, array_like=True):
    version: int
    replies: list[Reply]


#: The first byte a batch frame has when written as a fixarray (as this codec does);
#: recognise batches with :func:`is_batch`, which also reads array16/array32 headers.
BATCH: Final = 0x92
#: Requests per batch frame a client sends at most (the frame limit applies too).
MAX_BATCH: Final = 256

_request_decoder = msgspec.msgpack.Decoder(Request)
_reply_decoder = msgspec.msgpack.Decoder(Reply)
_request_batch_decoder = msgspec.msgpack.Decoder(RequestBatch)
_reply_batch_decoder = msgspec.msgpack.Decoder(ReplyBatch)
_feed_decoder = msgspec.msgpack.Decoder(FeedMessage, dec_hook=dec_hook)


def _arg_decoder(types: tuple[Any, ...]) -> msgspec.msgpack.Decoder[Any]:
    return msgspec.msgpack.Decoder(tuple[types] if types else tuple[()], dec_hook=dec_hook)  # type: ignore[valid-type]


_ARG_DECODERS: Final = {name: _arg_decoder(m.arg_types) for name, m in METHODS.items()}
#: method -> {argument count: decoder} for the shortened forms its optional tail allows
_SHORT_DECODERS: Final = {
    name: {
        n: _arg_decoder(m.arg_types[:n]) for n in range(len(m.args) - m.optional_tail, len(m.args))
    }
    for name, m in METHODS.items()
    if m.optional_tail
}
_VALUE_DECODERS: Final = {
    name: msgspec.msgpack.Decoder(m.reply if m.reply is not None else None, dec_hook=dec_hook)
    for name, m in METHODS.items()
}
_ARITY: Final = {name: len(m.args) for name, m in METHODS.items()}


# --- requests --------------------------------------------------------------------------------


def encode_request(
    req_id: int, epoch: str, registry: str, method: str, args: tuple[Any, ...]
) -> bytes:
    """A request frame; ValueError for an argument msgpack cannot carry (an integer
    outside -2**63 .. 2**64-1 raises OverflowError inside msgspec, which the callers,
    catching ValueError, would not expect: it once ended a client's I/O thread)."""
    try:
        return _encoder.encode((VERSION, req_id, epoch, registry, method, _Raw(args)))
    except OverflowError as exc:
        raise ValueError(str(exc)) from None


class _Raw:
    """Encodes its tuple inline (msgspec encodes a tuple as an array)."""

    __slots__ = ("args",)

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.args = args


def _enc(obj: Any) -> Any:
    if isinstance(obj, _Raw):
        return list(obj.args)
    return enc_hook(obj)


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc)


def _check_version(version: int) -> None:
    if version != VERSION:
        raise InvalidArgument(
            f"unsupported protocol version {version} (this server speaks {VERSION})"
        )


def decode_request(frame: bytes) -> Request:
    """Decode the envelope only; raises ``InvalidArgument`` when it is malformed."""
    try:
        req = _request_decoder.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidArgument(f"malformed request frame: {exc}") from None
    _check_version(req.version)
    return req


def _array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def join_requests(frames: list[bytes]) -> bytes:
    """One batch frame from single request frames (each is already a msgpack array)."""
    return bytes((BATCH, VERSION)) + _array_header(len(frames)) + b"".join(frames)


def array_length(data: bytes) -> int | None:
    """The element count of the msgpack array ``data`` starts with; None if it is no array."""
    if not data:
        return None
    head = data[0]
    if head & 0xF0 == 0x90:
        return head & 0x0F
    if head == 0xDC and len(data) >= 3:
        return int.from_bytes(data[1:3], "big")
    if head == 0xDD and len(data) >= 5:
        return int.from_bytes(data[1:5], "big")
    return None


#: array16 and array32 headers (a fixarray is 0x90-0x9f)
_WIDE_ARRAYS: Final = (0xDC, 0xDD)


def is_batch(frame: bytes) -> bool:
    """A batch frame is a 2-element array (a single request has 6, a reply 4)."""
    if not frame:
        return False
    head = frame[0]
    return head == BATCH or (head in _WIDE_ARRAYS and array_length(frame) == 2)


def decode_requests(frame: bytes) -> list[Request]:
    """A single request or a batch; raises ``InvalidArgument`` when it is malformed."""
    # is_batch, inlined: this runs for every frame the server reads.
    head = frame[0] if frame else 0
    if head != BATCH and (head not in _WIDE_ARRAYS or array_length(frame) != 2):
        return [decode_request(frame)]
    try:
        batch = _request_batch_decoder.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidArgument(f"malformed request batch: {exc}") from None
    _check_version(batch.version)
    for req in batch.requests:
        _check_version(req.version)
    return batch.requests


def decode_args(method: str, raw: msgspec.Raw) -> tuple[Any, ...]:
    """Decode and validate the arguments of ``method``; errors are ``InvalidArgument``."""
    decoder = _ARG_DECODERS.get(method)
    if decoder is None:
        raise InvalidArgument(f"unknown method {method[:64]!r}")
    data = bytes(raw)
    short = _SHORT_DECODERS.get(method)
    try:
        if short is None:
            return tuple(decoder.decode(data))
        # Omitted optional trailing arguments arrive as None (read off the array header).
        count = array_length(data)
        if count is None or count not in short:
            return tuple(decoder.decode(data))
        args = tuple(short[count].decode(data))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidArgument(f"{method}: {exc}") from None
    return args + (None,) * (_ARITY[method] - len(args))


# --- replies ---------------------------------------------------------------------------------


def encode_reply(req_id: int, status: int, payload: Any) -> bytes:
    return _encoder.encode((VERSION, req_id, status, payload))


def encode_reply_batch(replies: list[tuple[int, int, Any]]) -> bytes:
    """``(req_id, status, payload)`` triples as one batch frame."""
    return _encoder.encode((VERSION, [(VERSION, r, st, p) for r, st, p in replies]))


def decode_reply(frame: bytes) -> Reply:
    return _reply_decoder.decode(frame)


def decode_replies(frame: bytes) -> list[Reply]:
    """A single reply or a batch of them."""
    head = frame[0] if frame else 0  # is_batch, inlined: this runs for every reply
    if head != BATCH and (head not in _WIDE_ARRAYS or array_length(frame) != 2):
        return [_reply_decoder.decode(frame)]
    return _reply_batch_decoder.decode(frame).replies


def decode_value(method: str, raw: msgspec.Raw) -> Any:
    data = bytes(raw)
    try:
        value = _VALUE_DECODERS[method].decode(data)
    except msgspec.ValidationError:
        # The server may hold text over today's caps (kept by an older version): read it.
        with trusted_values():
            value = _VALUE_DECODERS[method].decode(data)
    if isinstance(value, list) and method == "collect_completed":
        return [tuple(pair) for pair in value]
    return value


_ERRORS: Final[dict[str, type[OpsLifecycleError]]] = {
    cls.__name__: cls
    for cls in (
        AlreadyRegistered,
        NotFound,
        InvalidTransition,
        PeerNotExpected,
        AlreadyPeerReady,
        MaxConcurrentExceeded,
        WaitAlreadyActive,
        DuplicateWaitOperation,
        Internal,
        WaitCancelled,
        InvalidArgument,
        Busy,
        TooLarge,
        Unavailable,
        OutcomeUnknown,
        LimitExceeded,
        PermissionDenied,
        ServerRestarted,
        FeedCursorAhead,
        FeedGap,
    )
}


def encode_error(exc: OpsLifecycleError) -> list[Any]:
    fields = [getattr(v, "value", v) if isinstance(v, OperationStatus) else v for v in exc.args]
    return [type(exc).__name__, fields]


def decode_error(raw: msgspec.Raw) -> OpsLifecycleError:
    """Rebuild the same error class, fields and message the server raised."""
    try:
        name, fields = msgspec.msgpack.decode(bytes(raw), type=tuple[str, list[Any]])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Internal("server sent an unreadable error")
    cls = _ERRORS.get(name)
    if cls is None or len(fields) != len(cls.field_names):
        return Internal(f"server error {name}: {fields!r}")
    values = []
    for field, value in zip(cls.field_names, fields, strict=True):
        if field == "id" and isinstance(value, str):
            with contextlib.suppress(InvalidArgument):
                value = OperationId(value)
        elif field == "status" and isinstance(value, str):
            value = OperationStatus(value)
        values.append(value)
    return cls(*values)


# --- feed ------------------------------------------------------------------------------------


def topic(registry: str) -> bytes:
    """The PUB topic of a registry; the NUL keeps ``default`` from matching ``default2``."""
    return registry.encode() + b"\0"


def encode_feed(kind: str, watermark: int, entries: list[CompletionEntry]) -> bytes:
    """A feed frame; its ``dropped_through`` field is always 0 (subscribers repair gaps
    by asking ``list_since``), kept so that the frame's shape does not change."""
    return _encoder.encode((VERSION, kind, watermark, 0, entries))


def decode_feed(frame: bytes) -> FeedMessage:
    try:
        return _feed_decoder.decode(frame)
    except msgspec.ValidationError:
        with trusted_values():  # as in decode_value
            return _feed_decoder.decode(frame)
