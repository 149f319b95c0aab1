"""Frames any valid msgpack encoder may write, and values too large to keep."""

from __future__ import annotations

import msgspec
import pytest
import zmq

from actors import InvalidArgument
from actors.model import (
    MAX_CONTENT_BYTES,
    MAX_ERROR_BYTES,
    MAX_ID_BYTES,
    MAX_NAME_BYTES,
    MAX_REASON_BYTES,
    Aborted,
    Cancelled,
    Failed,
    OperationId,
    OperationKind,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    Terminated,
)
from tests.conftest import background_spec
from transport import RegistryClient, RegistryServer, codec

pytestmark = pytest.mark.timeout(60)


def _dealer(endpoint: str) -> zmq.Socket[bytes]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(endpoint)
    return sock


def _epoch(sock: zmq.Socket[bytes]) -> str:
    sock.send(codec.encode_request(0, "", "default", "ping", ()))
    reply = codec.decode_reply(sock.recv())
    assert reply.status == codec.PONG
    return str(msgspec.msgpack.decode(bytes(reply.payload)))


def _replies(sock: zmq.Socket[bytes], count: int) -> dict[int, codec.Reply]:
    got: dict[int, codec.Reply] = {}
    while len(got) < count:
        for reply in codec.decode_replies(sock.recv()):
            got[reply.req_id] = reply
    return got


# --- batch frames by structure -------------------------------------------------------------

ARRAY16_OF_2 = b"\xdc\x00\x02"
ARRAY32_OF_2 = b"\xdd\x00\x00\x00\x02"


def _wide_array(header: bytes, items: list[bytes]) -> bytes:
    count = len(items)
    inner = (
        b"\xdc" + count.to_bytes(2, "big")
        if header == ARRAY16_OF_2
        else b"\xdd" + count.to_bytes(4, "big")
    )
    return header + msgspec.msgpack.encode(codec.VERSION) + inner + b"".join(items)


@pytest.mark.parametrize("header", [ARRAY16_OF_2, ARRAY32_OF_2], ids=["array16", "array32"])
def test_request_batches_written_with_wide_array_headers_are_batches(
    server: RegistryServer, header: bytes
) -> None:
    sock = _dealer(server.endpoint)
    try:
        epoch = _epoch(sock)
        spec = background_spec(f"wide-{header[0]:x}")
        frame = _wide_array(
            header,
            [
                codec.encode_request(1, epoch, "default", "register_operation", (spec,)),
                codec.encode_request(2, epoch, "default", "provisioning_succeeded", (spec.id,)),
                codec.encode_request(3, "", "default", "watermark", ()),
            ],
        )
        assert codec.is_batch(frame)
        sock.send(frame)
        got = _replies(sock, 3)
        assert {r: got[r].status for r in (1, 2, 3)} == {1: codec.OK, 2: codec.OK, 3: codec.OK}
    finally:
        sock.close()
    with RegistryClient(server.endpoint, timeout=10) as cli:
        snap = cli.snapshot(spec.id)
        assert snap is not None and snap.status.value == "running"


@pytest.mark.parametrize("header", [ARRAY16_OF_2, ARRAY32_OF_2], ids=["array16", "array32"])
def test_reply_batches_written_with_wide_array_headers_decode(header: bytes) -> None:
    replies = [codec.encode_reply(7, codec.OK, 42), codec.encode_reply(8, codec.OK, None)]
    decoded = codec.decode_replies(_wide_array(header, replies))
    assert [(r.req_id, r.status) for r in decoded] == [(7, codec.OK), (8, codec.OK)]
    assert msgspec.msgpack.decode(bytes(decoded[0].payload)) == 42


def test_a_single_request_or_reply_with_a_wide_header_is_not_a_batch() -> None:
    single = codec.encode_request(4, "e", "default", "watermark", ())
    assert single[0] == 0x96
    wide = b"\xdc\x00\x06" + single[1:]
    assert not codec.is_batch(wide)
    assert codec.decode_requests(wide)[0].req_id == 4
    reply = codec.encode_reply(5, codec.OK, 1)
    assert [r.req_id for r in codec.decode_replies(b"\xdd\x00\x00\x00\x04" + reply[1:])] == [5]


# --- caps on text fields ---------------------------------------------------------------------


def _spec(**over: object) -> OperationSpec:
    fields: dict[str, object] = {
        "id": OperationId.new(),
        "kind": OperationKind.MOB_MEMBER_CHILD,
        "owner_session_id": "s",
        "display_name": "x",
        "source_label": "t",
        "child_session_id": None,
    }
    fields.update(over)
    return OperationSpec(**fields)  # type: ignore[arg-type]


CAPPED = [
    ("display_name", MAX_NAME_BYTES, lambda v: _spec(display_name=v)),
    ("owner_session_id", MAX_ID_BYTES, lambda v: _spec(owner_session_id=v)),
    ("source_label", MAX_ID_BYTES, lambda v: _spec(source_label=v)),
    ("child_session_id", MAX_ID_BYTES, lambda v: _spec(child_session_id=v)),
    ("content", MAX_CONTENT_BYTES, lambda v: OperationResult(id=OperationId.new(), content=v)),
    ("message", MAX_REASON_BYTES, lambda v: OperationProgressUpdate(message=v)),
    ("peer_name", MAX_NAME_BYTES, lambda v: OperationPeerHandle(v, "p", "a")),
    ("peer_id", MAX_ID_BYTES, lambda v: OperationPeerHandle("n", v, "a")),
    ("error", MAX_ERROR_BYTES, lambda v: Failed(v)),
    ("reason", MAX_REASON_BYTES, lambda v: Cancelled(v)),
    ("reason", MAX_REASON_BYTES, lambda v: Aborted(v)),
    ("reason", MAX_REASON_BYTES, lambda v: Terminated(v)),
]


@pytest.mark.parametrize(("field", "limit", "make"), CAPPED, ids=[c[0] for c in CAPPED])
def test_every_text_field_is_capped_in_utf8_bytes(field: str, limit: int, make) -> None:  # type: ignore[no-untyped-def]
    make("y" * limit)  # exactly at the limit is fine
    make("é" * (limit // 2))  # two bytes each
    for too_long in ("y" * (limit + 1), "é" * (limit // 2 + 1)):
        with pytest.raises(InvalidArgument, match=f"{field} is too long \\(limit: {limit} bytes"):
            make(too_long)


def test_caps_apply_to_values_decoded_from_the_wire(server: RegistryServer) -> None:
    sock = _dealer(server.endpoint)
    op = OperationId.new()
    try:
        epoch = _epoch(sock)
        spec = {
            "id": str(op),
            "kind": "background_tool_op",
            "owner_session_id": "s",
            "display_name": "n" * (512 * 1024),  # fits the frame, not the field
            "source_label": "t",
        }
        sock.send(codec.encode_request(1, epoch, "default", "register_operation", (spec,)))
        reply = codec.decode_reply(sock.recv())
        assert reply.status == codec.ERROR
        error = codec.decode_error(reply.payload)
        assert isinstance(error, InvalidArgument)
        assert f"display_name is too long (limit: {MAX_NAME_BYTES} bytes" in str(error)
    finally:
        sock.close()
    with RegistryClient(server.endpoint, timeout=10) as cli:
        assert cli.snapshot(op) is None
        with pytest.raises(InvalidArgument, match="run_id is too long"):
            cli.wait_all("r" * (MAX_ID_BYTES + 1), [])
