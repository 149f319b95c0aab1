"""The committed wire vectors (docs/protocol-vectors.json) still hold, byte for byte.

Each vector's value, encoded by today's codec, gives exactly its bytes, and its bytes
decode back to that value. Every method and every error class has a vector, so the
file cannot fall behind the code. Regenerate it with
``python -m tests.transport.make_protocol_vectors`` when the wire changes on purpose
(and say so in docs/protocol.md's version notes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actors import calls
from actors.model import CompletionEntry, dec_hook
from transport import codec

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "protocol-vectors.json").read_text()
)


def _value(payload: Any, kind: Any) -> Any:
    """A JSON-form value as the model type ``kind``."""
    return msgspec.convert(payload, type=kind, dec_hook=dec_hook)


def _args(method: str, args: list[Any]) -> tuple[Any, ...]:
    types = calls.METHODS[method].arg_types[: len(args)]
    return tuple(_value(args, tuple[types] if types else tuple[()]))  # type: ignore[valid-type]


def _id(vector: dict[str, Any]) -> str:
    return (
        f"{vector.get('method') or vector.get('error') or vector.get('kind')}-{vector['hex'][:8]}"
    )


def test_the_vectors_speak_this_codecs_version_and_status_codes() -> None:
    assert VECTORS["protocol_version"] == codec.VERSION
    assert VECTORS["status_codes"] == {
        "OK": codec.OK,
        "ERROR": codec.ERROR,
        "ACCEPTED": codec.ACCEPTED,
        "PONG": codec.PONG,
    }


@pytest.mark.parametrize("vector", VECTORS["requests"], ids=_id)
def test_request_vectors_encode_and_decode_exactly(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    method = vector["method"]
    args = () if method == "ping" else _args(method, vector["args"])
    assert (
        codec.encode_request(
            vector["req_id"], vector["server_epoch"], vector["registry"], method, args
        )
        == frame
    )
    req = codec.decode_request(frame)
    assert (req.version, req.req_id, req.server_epoch, req.registry, req.method) == (
        codec.VERSION,
        vector["req_id"],
        vector["server_epoch"],
        vector["registry"],
        method,
    )
    assert not codec.is_batch(frame)
    if method == "ping":
        return
    decoded = codec.decode_args(method, req.args)
    # Omitted optional trailing arguments arrive as None.
    assert decoded == args + (None,) * (len(calls.METHODS[method].arg_types) - len(args))
    assert vector["future"] == (method in calls.FUTURE)
    assert vector["state_changing"] == (method in calls.CHANGES_STATE)


@pytest.mark.parametrize("vector", VECTORS["replies"], ids=_id)
def test_reply_vectors_encode_and_decode_exactly(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    status, method = vector["status"], vector["method"]
    if status == codec.OK:
        value = _value(vector["payload"], calls.METHODS[method].reply)
    else:
        value = vector["payload"]
    assert codec.encode_reply(vector["req_id"], status, value) == frame
    reply = codec.decode_reply(frame)
    assert (reply.version, reply.req_id, reply.status) == (codec.VERSION, vector["req_id"], status)
    if status == codec.OK:
        assert codec.decode_value(method, reply.payload) == value
    else:
        assert msgspec.msgpack.decode(bytes(reply.payload)) == value


@pytest.mark.parametrize("vector", VECTORS["errors"], ids=_id)
def test_error_vectors_encode_and_decode_exactly(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    name, fields = vector["payload"]
    assert name == vector["error"]
    exc = codec._ERRORS[name](*fields)
    assert str(exc) == vector["message"]
    assert codec.encode_reply(vector["req_id"], codec.ERROR, codec.encode_error(exc)) == frame
    reply = codec.decode_reply(frame)
    assert (reply.req_id, reply.status) == (vector["req_id"], codec.ERROR)
    decoded = codec.decode_error(reply.payload)
    assert type(decoded).__name__ == name
    assert decoded == exc
    assert str(decoded) == vector["message"]


@pytest.mark.parametrize("vector", VECTORS["batches"], ids=_id)
def test_batch_vectors_are_recognised_and_split_exactly(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    assert codec.is_batch(frame)
    if vector["kind"] == "request_batch":
        parts = [bytes.fromhex(h) for h in vector["requests"]]
        if frame[0] == codec.BATCH:
            assert codec.join_requests(parts) == frame
        assert codec.decode_requests(frame) == [codec.decode_request(p) for p in parts]
    else:
        parts = [bytes.fromhex(h) for h in vector["replies"]]
        replies = [codec.decode_reply(p) for p in parts]
        assert codec.decode_replies(frame) == replies
        triples = []
        for r in replies:
            payload: Any = msgspec.msgpack.decode(bytes(r.payload))
            if r.status == codec.OK and payload is not None:
                payload = codec.decode_value("snapshot", r.payload)
            triples.append((r.req_id, r.status, payload))
        assert codec.encode_reply_batch(triples) == frame


@pytest.mark.parametrize("vector", VECTORS["feed"], ids=_id)
def test_feed_vectors_encode_and_decode_exactly(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    assert bytes.fromhex(vector["topic"]) == codec.topic("default") == b"default\0"
    entries = _value(vector["entries"], list[CompletionEntry])
    assert vector["dropped_through"] == 0  # always 0 on the wire (kept for version 1)
    assert codec.encode_feed(vector["kind"], vector["watermark"], entries) == frame
    msg = codec.decode_feed(frame)
    assert (msg.version, msg.kind, msg.watermark, msg.dropped_through, msg.entries) == (
        codec.VERSION,
        vector["kind"],
        vector["watermark"],
        vector["dropped_through"],
        entries,
    )


def test_every_method_error_class_and_frame_kind_has_a_vector() -> None:
    full = {
        v["method"]
        for v in VECTORS["requests"]
        if v["method"] != "ping" and len(v["args"]) == len(calls.METHODS[v["method"]].args)
    }
    assert full == set(calls.METHODS)
    assert {n for n, m in calls.METHODS.items() if m.optional_tail} <= {
        v["method"]
        for v in VECTORS["requests"]
        if v["method"] in calls.METHODS and len(v["args"]) < len(calls.METHODS[v["method"]].args)
    }
    assert "ping" in {v["method"] for v in VECTORS["requests"]}
    ok = {v["method"] for v in VECTORS["replies"] if v["status"] == codec.OK}
    assert ok == set(calls.METHODS)
    statuses = {v["status"] for v in VECTORS["replies"]} | {v["status"] for v in VECTORS["errors"]}
    assert statuses == {codec.OK, codec.ERROR, codec.ACCEPTED, codec.PONG}
    pongs = [v["payload"] for v in VECTORS["replies"] if v["status"] == codec.PONG]
    assert any(isinstance(p, str) for p in pongs) and any(isinstance(p, list) for p in pongs)
    assert {v["error"] for v in VECTORS["errors"]} == set(codec._ERRORS)
    assert {v["kind"] for v in VECTORS["batches"]} == {"request_batch", "reply_batch"}
    assert any(bytes.fromhex(v["hex"])[0] == 0xDC for v in VECTORS["batches"])
    assert {v["kind"] for v in VECTORS["feed"]} == {"entries", "heartbeat"}


def _table_rows(doc: str, heading: str) -> dict[str, list[str]]:
    """The rows of the first table under ``heading``, by their first cell's `name`."""
    section = doc.split(heading, 1)[1]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if rows and not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if line.startswith("| `") and cells[0].count("`") == 2:
            rows[cells[0].strip("`")] = cells
    return rows


def test_protocol_md_method_table_and_error_catalogue_agree_with_the_codec() -> None:
    from transport.admission import ADMIN_METHODS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    methods = _table_rows(doc, "## 6. Methods")
    assert set(methods) == set(calls.METHODS) | {"ping"}
    for name in calls.METHODS:
        _, args, _, future, changes, admin = methods[name]
        assert (future == "yes") == (name in calls.FUTURE), name
        assert (changes == "yes") == (name in calls.CHANGES_STATE), name
        assert (admin == "yes") == (name in ADMIN_METHODS), name
        optional = args.count("*optional*")
        expected = calls.METHODS[name].optional_tail
        assert optional == expected or (optional == 1 and args.startswith("all")), name
    errors = _table_rows(doc, "## 8. Errors")
    assert set(errors) == set(codec._ERRORS)
    for name, cls in codec._ERRORS.items():
        assert re.findall(r"`([a-z_]+)`", errors[name][1]) == list(cls.field_names), name
