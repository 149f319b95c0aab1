"""Raw sockets for the conformance suite: one DEALER speaking frames, one SUB reading the feed.

Nothing here goes through ``RegistryClient`` or ``FeedSubscriber``: frames are
built with :mod:`transport.codec`'s encoders and read back with its decoders,
so what is checked is the wire itself, as a client in another language sees it.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import msgspec
import zmq

from transport import codec

__all__ = ["CheckFailed", "FeedWire", "Skip", "Wire", "epoch_of", "error_of", "expect"]


class CheckFailed(Exception):
    """A check saw something the protocol does not allow (the message says what)."""


class Skip(Exception):
    """A check that does not apply to this server (the message says why)."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


class Wire:
    """One DEALER connection; replies are kept by ``req_id`` until asked for."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, registry: str, timeout: float):
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.registry = registry
        self.timeout = timeout
        self.epoch = ""
        self._ids = itertools.count(1)
        #: req_id -> replies received and not yet taken, each with "came in a batch frame"
        self._got: dict[int, list[tuple[codec.Reply, bool]]] = {}

    def close(self) -> None:
        self.sock.close(linger=0)

    def new_id(self) -> int:
        return next(self._ids)

    def frame(
        self,
        method: str,
        args: tuple[Any, ...] | list[Any],
        *,
        req_id: int | None = None,
        epoch: str | None = None,
        registry: str | None = None,
    ) -> tuple[int, bytes]:
        rid = self.new_id() if req_id is None else req_id
        frame = codec.encode_request(
            rid,
            self.epoch if epoch is None else epoch,
            self.registry if registry is None else registry,
            method,
            tuple(args),
        )
        return rid, frame

    def send(self, frame: bytes | list[bytes]) -> None:
        if isinstance(frame, list):
            self.sock.send_multipart(frame)
        else:
            self.sock.send(frame)

    def request(self, method: str, *args: Any, epoch: str | None = None) -> int:
        rid, frame = self.frame(method, args, epoch=epoch)
        self.send(frame)
        return rid

    def call(self, method: str, *args: Any, epoch: str | None = None) -> codec.Reply:
        return self.reply(self.request(method, *args, epoch=epoch))

    def _read(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0 or not self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
            return False
        while True:
            try:
                data = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return True
            batched = codec.is_batch(data)
            try:
                replies = codec.decode_replies(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise CheckFailed(f"unreadable reply frame {data[:32]!r}: {exc}") from None
            for r in replies:
                self._got.setdefault(r.req_id, []).append((r, batched))

    def reply_with_frame(
        self, req_id: int, timeout: float | None = None
    ) -> tuple[codec.Reply, bool]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._got.get(req_id):
            if not self._read(deadline):
                raise CheckFailed(f"no reply to req_id {req_id} within {self.timeout:g}s")
        got = self._got[req_id]
        item = got.pop(0)
        if not got:
            del self._got[req_id]
        return item

    def reply(self, req_id: int, timeout: float | None = None) -> codec.Reply:
        return self.reply_with_frame(req_id, timeout)[0]

    def nothing_more(self, req_id: int, within: float = 0.05) -> bool:
        """True if no further reply for ``req_id`` arrives within ``within`` seconds."""
        deadline = time.monotonic() + within
        while not self._got.get(req_id):
            if not self._read(deadline):
                return True
        return False

    # --- reading replies ---------------------------------------------------------------------

    def value(self, method: str, reply: codec.Reply) -> Any:
        """The OK value of ``reply``, decoded by the method table's reply type."""
        if reply.status == codec.ERROR:
            name, fields = error_of(reply)
            raise CheckFailed(f"{method}: refused with {name}{tuple(fields)!r}")
        expect(reply.status == codec.OK, f"{method}: status {reply.status}, expected OK (0)")
        try:
            return codec.decode_value(method, reply.payload)
        except (msgspec.DecodeError, msgspec.ValidationError, Exception) as exc:
            raise CheckFailed(f"{method}: reply does not match its schema: {exc}") from None

    def ok(self, method: str, *args: Any) -> Any:
        return self.value(method, self.call(method, *args))

    def future(self, method: str, *args: Any) -> int:
        """Send a future method; check its ACCEPTED; return the req_id its final comes under."""
        rid = self.request(method, *args)
        accepted = self.reply(rid)
        if accepted.status == codec.ERROR:
            name, fields = error_of(accepted)
            raise CheckFailed(f"{method}: refused with {name}{tuple(fields)!r}")
        expect(
            accepted.status == codec.ACCEPTED,
            f"{method}: first reply has status {accepted.status}, expected ACCEPTED (2)",
        )
        expect(
            bytes(accepted.payload) == b"\xc0",
            f"{method}: ACCEPTED carries {bytes(accepted.payload)!r}, expected nil",
        )
        return rid

    def final(self, method: str, rid: int) -> Any:
        return self.value(method, self.reply(rid))

    def error(self, reply: codec.Reply, name: str, fields: list[Any] | None = None) -> list[Any]:
        expect(reply.status == codec.ERROR, f"expected {name}, got status {reply.status}")
        got_name, got_fields = error_of(reply)
        expect(got_name == name, f"expected {name}, got {got_name}{tuple(got_fields)!r}")
        if fields is not None:
            expect(got_fields == fields, f"{name} fields {got_fields!r}, expected {fields!r}")
        return got_fields

    def refused(self, name: str, fields: list[Any] | None, method: str, *args: Any) -> list[Any]:
        return self.error(self.call(method, *args), name, fields)

    def ping(self, req_id: int | None = None) -> tuple[int, Any]:
        rid = self.new_id() if req_id is None else req_id
        self.send(codec.encode_request(rid, "", self.registry, "ping", ()))
        reply = self.reply(rid)
        expect(reply.status == codec.PONG, f"ping answered with status {reply.status}, not PONG")
        return reply.req_id, msgspec.msgpack.decode(bytes(reply.payload))


def error_of(reply: codec.Reply) -> tuple[str, list[Any]]:
    """An error payload is ``[class name, [fields...]]``."""
    try:
        name, fields = msgspec.msgpack.decode(bytes(reply.payload), type=tuple[str, list[Any]])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CheckFailed(f"error payload is not [name, fields]: {exc}") from None
    return name, fields


def epoch_of(pong: Any) -> str:
    """A pong carries the epoch, or ``[epoch, False]`` once to a client the server forgot."""
    if isinstance(pong, list) and len(pong) == 2 and pong[1] is False:
        pong = pong[0]
    expect(isinstance(pong, str) and pong, f"pong payload {pong!r} is not a non-empty epoch")
    return str(pong)


class FeedWire:
    """A SUB socket on one registry's topic; frames decoded with the codec."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, registry: str, timeout: float):
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.topic = codec.topic(registry)
        self.sock.setsockopt(zmq.SUBSCRIBE, self.topic)
        self.sock.connect(endpoint)
        self.timeout = timeout

    def close(self) -> None:
        self.sock.close(linger=0)

    def next(self, timeout: float | None = None) -> codec.FeedMessage:
        wait = self.timeout if timeout is None else timeout
        if not self.sock.poll(int(wait * 1000) + 1, zmq.POLLIN):
            raise CheckFailed(f"no feed message within {wait:g}s")
        parts = self.sock.recv_multipart()
        expect(len(parts) == 2, f"feed message has {len(parts)} frames, expected 2")
        expect(parts[0] == self.topic, f"feed topic {parts[0]!r}, expected {self.topic!r}")
        try:
            return codec.decode_feed(parts[1])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CheckFailed(f"unreadable feed frame: {exc}") from None

    def heartbeat(self, timeout: float) -> codec.FeedMessage:
        """The next heartbeat (entries frames before it are returned by ``drain``-ing)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            expect(left > 0, f"no heartbeat within {timeout:g}s")
            msg = self.next(left)
            if msg.kind == "heartbeat":
                return msg
