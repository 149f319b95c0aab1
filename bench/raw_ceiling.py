"""The raw ceiling of ``bench/transport.py``: a minimal ROUTER + pykka server and its
blocking DEALER clients, speaking the same envelope, method names and argument shapes
as opsreg's codec (how it is measured: docs/performance.md, "How the transport figures
are measured").

Imported by bench/transport.py, which imports the ``transport`` package before bench/
goes on sys.path (bench/transport.py would shadow it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import threading
from collections import deque
from typing import Any, Final

import msgspec
import pykka
import zmq
from _common import make_ops

from transport import codec

REGISTRY: Final = "bench"
RAW_MAX_COMPLETED: Final = 256
CALL_TIMEOUT: Final = 60.0
RAW_BANNER: Final = re.compile(r"raw serving requests on (\S+)")

# Raw protocol: the same envelope as opsreg's codec (``[VERSION, req_id, epoch,
# registry, method, args]`` -> ``[VERSION, req_id, status, payload]``).
OK, ERROR, ACCEPTED = 0, 1, 2
RAW_EPOCH: Final = "0" * 36  # opsreg's epochs are 36-character UUIDs


# --- operations -----------------------------------------------------------------------------


def raw_ops(count: int, owner: str) -> list[tuple[str, Any, Any]]:
    """The raw client's arguments: what opsreg's codec puts on the wire, as plain values."""
    out = []
    for spec, result in make_ops(count, owner):
        wire = msgspec.msgpack.decode(codec.encode_request(0, "", REGISTRY, "x", (spec, result)))
        out.append((str(spec.id), wire[5][0], wire[5][1]))
    return out


def frame_sizes() -> dict[str, dict[str, int]]:
    spec, result = make_ops(1, "bench-0")[0]
    key, rspec, rresult = raw_ops(1, "bench-0")[0]
    epoch = "e" * 36
    calls = {
        "register_operation": ((spec,), (rspec,)),
        "provisioning_succeeded": ((spec.id,), (key,)),
        "complete_operation": ((spec.id, result), (key, rresult)),
        "register_watcher": ((spec.id,), (key,)),
    }
    enc = msgspec.msgpack.Encoder()
    return {
        "opsreg": {
            m: len(codec.encode_request(123_456, epoch, REGISTRY, m, a))
            for m, (a, _) in calls.items()
        },
        "raw": {
            m: len(enc.encode((1, 123_456, RAW_EPOCH, REGISTRY, m, r)))
            for m, (_, r) in calls.items()
        },
        "reply_opsreg": {"ok_none": len(codec.encode_reply(123_456, codec.OK, None))},
        "reply_raw": {"ok_none": len(enc.encode((1, 123_456, OK, None)))},
    }


# --- the raw ceiling: server ------------------------------------------------------------------


class RawRequest(msgspec.Struct, array_like=True):
    version: int
    req_id: int
    server_epoch: str
    registry: str
    method: str
    args: list[Any]


class RawReply(msgspec.Struct, array_like=True):
    version: int
    req_id: int
    status: int
    payload: Any


class RawOutbox:
    """A deque the actor fills and the I/O thread drains; one pipe byte per wake-up."""

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.awake = False

    def put_many(self, items: list[Any]) -> None:
        self.items.extend(items)
        if not self.awake:
            self.awake = True
            with contextlib.suppress(OSError):
                os.write(self.w, b"x")

    def drain(self) -> list[Any]:
        with contextlib.suppress(BlockingIOError):
            os.read(self.r, 65536)
        self.awake = False
        items, out = self.items, []
        while items:
            out.append(items.popleft())
        return out


class RawActor(pykka.ThreadingActor):
    """A dict of operations; holds "watch" replies until the key's "complete"."""

    def __init__(self, outbox: RawOutbox) -> None:
        super().__init__()
        self.outbox = outbox
        self.ops: dict[str, list[Any]] = {}
        self.completed: deque[str] = deque()
        self.held: dict[str, list[tuple[bytes, int]]] = {}

    def on_receive(self, message: Any) -> Any:
        out: list[tuple[bytes, int, int, Any]] = []
        ops = self.ops
        for identity, req_id, method, args in message:
            if method == "register_operation":
                spec = args[0]
                ops[spec["id"]] = ["registered", spec, None]
                out.append((identity, req_id, OK, None))
                continue
            key = args[0]
            op = ops.get(key)
            if op is None:
                out.append((identity, req_id, ERROR, ["NotFound", [key]]))
            elif method == "provisioning_succeeded":
                op[0] = "running"
                out.append((identity, req_id, OK, None))
            elif method == "complete_operation":
                op[0], op[2] = "completed", args[1]
                for watcher, watch_id in self.held.pop(key, ()):
                    out.append((watcher, watch_id, OK, op[0]))
                out.append((identity, req_id, OK, None))
                self.completed.append(key)
                while len(self.completed) > RAW_MAX_COMPLETED:
                    ops.pop(self.completed.popleft(), None)
            elif method == "register_watcher":
                out.append((identity, req_id, ACCEPTED, None))
                if op[0] == "completed":
                    out.append((identity, req_id, OK, op[0]))
                else:
                    self.held.setdefault(key, []).append((identity, req_id))
            else:
                out.append((identity, req_id, ERROR, ["InvalidArgument", [method]]))
        self.outbox.put_many(out)


def raw_server_main() -> int:
    """``--raw-server``: the ceiling server, until SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.RCVHWM, 100_000)
    router.setsockopt(zmq.SNDHWM, 100_000)
    router.bind("tcp://127.0.0.1:*")
    endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
    outbox = RawOutbox()
    actor = RawActor.start(outbox)
    decoder = msgspec.msgpack.Decoder(RawRequest)
    encoder = msgspec.msgpack.Encoder()

    def loop() -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(outbox.r, zmq.POLLIN)
        while not stop.is_set():
            events = dict(poller.poll(100))
            if router in events:
                batch = []
                for _ in range(512):
                    try:
                        identity, frame = router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    req = decoder.decode(frame)
                    batch.append((identity, req.req_id, req.method, req.args))
                if batch:
                    actor.tell(batch)
            if outbox.r in events:
                for identity, req_id, status, value in outbox.drain():
                    frame = encoder.encode((1, req_id, status, value))
                    router.send_multipart([identity, frame], zmq.NOBLOCK)

    io = threading.Thread(target=loop, name="raw-io", daemon=True)
    io.start()
    print(f"raw serving requests on {endpoint}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        io.join(timeout=10)
        actor.stop()
        router.close(linger=0)
        ctx.term()
    return 0


# --- the raw ceiling: client -------------------------------------------------------------------


class RawClient:
    """A blocking DEALER: send a frame, read replies until the one for this request arrives."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, int(CALL_TIMEOUT * 1000))
        self.sock.connect(endpoint)
        self.ids = itertools.count(1)
        self.encoder = msgspec.msgpack.Encoder()
        self.decoder = msgspec.msgpack.Decoder(RawReply)

    def send(self, method: str, args: tuple[Any, ...]) -> int:
        req_id = next(self.ids)
        self.sock.send(self.encoder.encode((1, req_id, RAW_EPOCH, REGISTRY, method, args)))
        return req_id

    def recv(self, req_id: int) -> RawReply:
        while True:
            reply = self.decoder.decode(self.sock.recv())
            if reply.req_id == req_id:
                if reply.status == ERROR:
                    raise RuntimeError(f"raw server error: {reply.payload!r}")
                return reply

    def call(self, method: str, *args: Any) -> Any:
        return self.recv(self.send(method, args)).payload

    def take(self, count: int) -> None:
        """Read ``count`` replies, whichever requests they answer (pipelining)."""
        for _ in range(count):
            if self.decoder.decode(self.sock.recv()).status == ERROR:
                raise RuntimeError("raw server error")

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


class MiniOpsClient(RawClient):
    """The same blocking DEALER speaking opsreg's codec (diagnostic: opsreg's server
    without ``RegistryClient``'s I/O thread)."""

    epoch = ""

    def send(self, method: str, args: tuple[Any, ...]) -> int:
        if not self.epoch:
            # The server refuses state-changing requests that name no incarnation.
            self.sock.send(codec.encode_request(0, "", REGISTRY, "ping", ()))
            pong = codec.decode_reply(self.sock.recv())
            self.epoch = msgspec.msgpack.decode(bytes(pong.payload))
        req_id = next(self.ids)
        self.sock.send(codec.encode_request(req_id, self.epoch, REGISTRY, method, args))
        return req_id

    def recv(self, req_id: int) -> RawReply:
        while True:
            reply = codec.decode_reply(self.sock.recv())
            if reply.req_id == req_id:
                if reply.status == codec.ERROR:
                    raise codec.decode_error(reply.payload)
                return RawReply(reply.version, reply.req_id, reply.status, None)
