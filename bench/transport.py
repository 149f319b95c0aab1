"""Throughput and latency of opsreg over ZeroMQ, against a minimal ROUTER + pykka ceiling.

Everything runs in one invocation, on tcp loopback, with every party in its
own process (a pool of spawned worker processes that is reused across
scenarios; servers are subprocesses, started fresh for every measurement).

``lifecycles_per_s.per_call``
    Full lifecycles (``register_operation`` -> ``provisioning_succeeded`` ->
    ``complete_operation``) from 4 worker processes, each with its own
    ``RegistryClient`` calling the per-call methods (every call waits for its
    reply), against an ``opsreg serve`` subprocess with the durable store on
    (``synchronous=full``, the default). Each worker does N/4 lifecycles on its
    own operations, built before the clock starts. The clock runs from a
    common start (the main process sends "go" to every worker once all are
    connected and warmed up) until the last worker is done.
``lifecycles_per_s.pipelined``
    The same, but each worker sends its lifecycles with ``client.submit`` in
    windows of W lifecycles (3 W requests), then waits for all of the window's
    futures before sending the next window.
``lifecycles_per_s.raw_ceiling_per_call``
    The same three calls per lifecycle from 4 per-call worker processes, each
    with a minimal blocking DEALER client (send, recv, in the calling thread),
    against the ceiling server written in this file (``--raw-server``): one
    ROUTER socket whose I/O thread decodes each msgpack frame with msgspec and
    hands the requests it read in one pass to a ``pykka.ThreadingActor`` as one
    batch; the actor keeps a dict (set on "register", updated on "start" and
    "complete", a bounded FIFO of 256 completed keys as opsreg's
    ``max_completed``) and queues its replies on a deque + wake-up pipe that
    the I/O thread polls, encodes and sends. No validation, no journal, no
    disk. Request frames carry the same envelope, method names and argument
    shapes as opsreg's, so they are within a few bytes of the same size
    (``frame_bytes``).

``watcher_latency_us`` (microseconds)
    A prober process registers an operation and starts it, then tells a
    watcher process its id (over a pipe); the watcher calls
    ``register_watcher`` and, once it has the future, tells the prober, which
    calls ``complete_operation``. The watcher stamps the moment its future
    resolves. Stamps are ``time.clock_gettime_ns(CLOCK_MONOTONIC)``, one clock
    for every process on Linux. Two latencies per probe:
    ``from_complete_return`` = watcher resolved - ``complete_operation``
    returned in the prober (the definition in the brief; it can be negative,
    because the server resolves watchers before it answers the completing
    call, docs/semantics.md), and ``from_complete_call`` = watcher resolved -
    ``complete_operation`` called (end to end, including the durable commit).
    ``under_load`` is measured while the per-call load above runs (probes are
    paced: one at a time, 2 ms apart; the prober and the watcher are two more
    processes, which the raw run has too); ``standalone`` is measured on the
    same server right after, with no other load, and ``standalone_memory_store``
    against ``opsreg serve --memory`` (the same without the journal). The raw
    figures do the same against the ceiling server with a "watch" request that
    the actor acknowledges at once and answers for good when a "complete"
    for that key arrives (the held reply), while the raw per-call load runs.
    Percentiles pool the samples of all repetitions.

``feed``
    4 processes each iterate a ``FeedSubscriber`` (connected and caught up
    before the clock) while one process completes a burst of B lifecycles
    pipelined. Rates are entries per second from the start of the burst to
    the moment the last subscriber has seq B (``aggregate`` counts all four
    subscribers' entries, ``per_subscriber`` is each one's own). The burst is
    produced no faster than the server completes lifecycles, so these rates
    are bounded by ``producer_lifecycles_per_s``; ``last_entry_lag_ms`` (last
    subscriber's seq B minus the producer's last reply) shows whether the
    subscribers kept up. Every subscriber must see seqs 1..B exactly once, in
    order: ``unrepaired_gaps`` counts missing or out-of-order seqs and
    ``FeedGap`` errors, and must be 0; ``repairs`` is the total of
    ``sub.repairs`` (catch-ups from ``list_since``, including each
    subscriber's first one).

After every opsreg measurement the registry's watermark must equal the number
of lifecycles completed (workers, warm-ups and probes). Each rate is the median
of R repetitions with min and max; repetitions interleave the scenarios.
``server_cpu`` is the server process's CPU time (user + system, from /proc)
during the timed part divided by its wall time: 1.0 is one core;
``client_cpu_4_workers`` is the same for the four worker processes together.
``machine`` says how busy the whole machine was during the run and how much of
that was not this benchmark (``others_cores``): on a shared 2-core machine any
other work skews every figure, so compare paired ratios rather than rates.

Ratios and targets: ``per_call_over_raw`` divides the median per-call rate by
the median raw rate (``paired`` divides the two rates of the same repetition);
``watcher_p50_over_raw`` divides the p50 of ``from_complete_return`` under load
by the raw held-reply p50 measured the same way (null unless both are positive;
``from_complete_return_p50_minus_raw_us`` gives the difference), and the same
for ``from_complete_call``, for information. Targets: per-call >= 0.7 x raw,
pipelined >= 10,000 lifecycles/s, watcher p50 <= 2 x raw held-reply p50
(``from_complete_return``, under load), zero unrepaired feed gaps. Because that
p50 is the difference of two arrival times and is often negative, the watcher
target is evaluated as ``p50 - raw_p50 <= |raw_p50|``, which is ``p50 <= 2 x
raw_p50`` whenever ``raw_p50`` is positive.

Diagnostics (``--diagnose``, not needed for the targets): opsreg per-call
driven by a minimal blocking DEALER client speaking opsreg's codec (what
``RegistryClient``'s I/O thread costs), opsreg per-call with ``--memory`` (what
the journal costs), and the raw ceiling pipelined (what the window protocol
allows). ``--py-spy DIR`` records the opsreg server during each timed phase
(``--py-spy-flags=--gil`` to see only the thread holding the GIL);
``--server-arg`` passes options to ``opsreg serve``; ``--switch-interval``
sets the server's ``sys.setswitchinterval`` (an experiment).

Usage::

    python bench/transport.py [--quick] [--repeat R] [--n N] [--pipelined-n N]
                              [--burst B] [--probes P] [--data-root DIR] [--diagnose]

Prints exactly one JSON line on stdout; progress goes to stderr.
"""

# ruff: noqa: E402
# This file is bench/transport.py: when run as a script its own directory comes
# first on sys.path and would shadow the ``transport`` package.
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)  # for _common (spawned workers re-run this too)
from _common import (
    die_with_parent,
    lifecycles,
    log,
    make_ops,
    now_ns,
    spawn_process,
    spawn_server,
    split,
    stop_server,
    summary,
)

sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import contextlib
import itertools
import json
import multiprocessing
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar, Final

import msgspec
import pykka
import zmq

from actors import OperationId, OperationResult, OperationSpec
from transport import codec
from transport.client import RegistryClient
from transport.errors import FeedGap
from transport.feed import FeedSubscriber
from transport.metrics import percentile

REGISTRY: Final = "bench"
WORKERS: Final = 4
POOL_SIZE: Final = WORKERS + 2  # 4 load workers, a watcher, a prober/producer
WATCHER, PROBER = WORKERS, WORKERS + 1
DEFAULT_N, QUICK_N = 16_000, 4_000
DEFAULT_PIPELINED_N, QUICK_PIPELINED_N = 48_000, 16_000
DEFAULT_BURST, QUICK_BURST = 20_000, 8_000
DEFAULT_STANDALONE_PROBES, QUICK_STANDALONE_PROBES = 1_000, 300
DEFAULT_REPEAT, QUICK_REPEAT = 5, 1
WINDOW: Final = 200
WARM_LIFECYCLES: Final = 50
WARM_PROBES: Final = 20
PROBE_GAP_S: Final = 0.002
RAW_MAX_COMPLETED: Final = 256
CALL_TIMEOUT: Final = 60.0
STEP_TIMEOUT: Final = 300.0
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


# --- worker processes ---------------------------------------------------------------------------


class Ctl:
    """A task's side of the control pipe to the main process."""

    def __init__(self, conn: Connection, peer: Connection | None) -> None:
        self.conn = conn
        self.peer = peer

    def ready(self) -> int:
        """Tell main we are ready and wait for "go"; returns the time go arrived."""
        self.conn.send(("ready",))
        while True:
            msg = self.conn.recv()
            if msg[0] == "go":
                return now_ns()

    def ready_nowait(self) -> None:
        self.conn.send(("ready",))

    def stop_requested(self) -> bool:
        while self.conn.poll(0):
            if self.conn.recv()[0] == "stop":
                return True
        return False


def connect(endpoint: str) -> RegistryClient:
    cli = RegistryClient(endpoint, registry=REGISTRY, timeout=CALL_TIMEOUT)
    if not cli.wait_connected(30):
        cli.close()
        raise RuntimeError(f"no answer from {endpoint}")
    return cli


def timed(ctl: Ctl, run: Callable[[list[Any]], None], ops: list[Any]) -> dict[str, Any]:
    """Warm up on the first WARM_LIFECYCLES operations, wait for "go", time the rest."""
    run(ops[:WARM_LIFECYCLES])
    t0 = ctl.ready()
    cpu0 = time.process_time()
    run(ops[WARM_LIFECYCLES:])
    t1 = now_ns()
    return {"t_start": t0, "t_end": t1, "cpu": time.process_time() - cpu0}


def task_per_call(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = connect(endpoint)
    try:
        return timed(ctl, lambda ops: lifecycles(cli, ops), make_ops(n + WARM_LIFECYCLES, owner))
    finally:
        cli.close()


def pipelined(cli: RegistryClient, ops: list[tuple[OperationSpec, OperationResult]]) -> None:
    submit = cli.submit
    for i in range(0, len(ops), WINDOW):
        futures = []
        for spec, result in ops[i : i + WINDOW]:
            futures.append(submit("register_operation", spec))
            futures.append(submit("provisioning_succeeded", spec.id))
            futures.append(submit("complete_operation", spec.id, result))
        for f in futures:
            f.get(timeout=CALL_TIMEOUT)


def task_pipelined(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = connect(endpoint)
    try:
        return timed(ctl, lambda ops: pipelined(cli, ops), make_ops(n + WARM_LIFECYCLES, owner))
    finally:
        cli.close()


def call_lifecycles(call: Callable[..., Any], ops: list[tuple[Any, Any, Any]]) -> None:
    """Per-call lifecycles through a ``call(method, *args)`` client: (key, spec, result)."""
    for key, spec, result in ops:
        call("register_operation", spec)
        call("provisioning_succeeded", key)
        call("complete_operation", key, result)


def task_mini_per_call(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = MiniOpsClient(endpoint)
    try:
        ops = [(spec.id, spec, result) for spec, result in make_ops(n + WARM_LIFECYCLES, owner)]
        return timed(ctl, lambda chunk: call_lifecycles(cli.call, chunk), ops)
    finally:
        cli.close()


def task_raw_pipelined(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = RawClient(endpoint)

    def run(ops: list[tuple[str, Any, Any]]) -> None:
        send = cli.send
        for i in range(0, len(ops), WINDOW):
            chunk = ops[i : i + WINDOW]
            for key, spec, result in chunk:
                send("register_operation", (spec,))
                send("provisioning_succeeded", (key,))
                send("complete_operation", (key, result))
            cli.take(3 * len(chunk))

    try:
        return timed(ctl, run, raw_ops(n + WARM_LIFECYCLES, owner))
    finally:
        cli.close()


def task_raw_per_call(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = RawClient(endpoint)
    try:
        return timed(
            ctl, lambda ops: call_lifecycles(cli.call, ops), raw_ops(n + WARM_LIFECYCLES, owner)
        )
    finally:
        cli.close()


def task_watcher(ctl: Ctl, endpoint: str, raw: bool) -> dict[str, Any]:
    """Arm a watcher on each id the prober sends; stamp when it resolves."""
    peer = ctl.peer
    assert peer is not None
    resolved: list[int] = []
    if raw:
        rcli = RawClient(endpoint)
        try:
            ctl.ready_nowait()
            while (msg := peer.recv())[0] == "probe":
                req_id = rcli.send("register_watcher", (msg[1],))
                if rcli.recv(req_id).status != ACCEPTED:
                    raise RuntimeError("raw watch was not held")
                peer.send(("armed",))
                rcli.recv(req_id)
                resolved.append(now_ns())
        finally:
            rcli.close()
        return {"resolved": resolved}
    cli = connect(endpoint)
    try:
        ctl.ready_nowait()
        while (msg := peer.recv())[0] == "probe":
            future = cli.register_watcher(OperationId(msg[1]))
            peer.send(("armed",))
            future.get(timeout=CALL_TIMEOUT)
            resolved.append(now_ns())
    finally:
        cli.close()
    return {"resolved": resolved}


def task_prober(ctl: Ctl, endpoint: str, raw: bool, count: int | None) -> dict[str, Any]:
    """Probe watcher latency: ``count`` probes, or until main says stop."""
    peer = ctl.peer
    assert peer is not None
    called: list[int] = []
    returned: list[int] = []
    if raw:
        rcli = RawClient(endpoint)

        def probe() -> tuple[int, int]:
            key, spec, result = raw_ops(1, "prober")[0]
            rcli.call("register_operation", spec)
            rcli.call("provisioning_succeeded", key)
            peer.send(("probe", key))
            peer.recv()
            t_call = now_ns()
            rcli.call("complete_operation", key, result)
            return t_call, now_ns()

        close: Callable[[], None] = rcli.close
    else:
        cli = connect(endpoint)

        def probe() -> tuple[int, int]:
            spec, result = make_ops(1, "prober")[0]
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
            peer.send(("probe", str(spec.id)))
            peer.recv()
            t_call = now_ns()
            cli.complete_operation(spec.id, result)
            return t_call, now_ns()

        close = cli.close
    try:
        for _ in range(WARM_PROBES):
            probe()
        ctl.ready()
        while (count is None and not ctl.stop_requested()) or (
            count is not None and len(called) < count
        ):
            t_call, t_ret = probe()
            called.append(t_call)
            returned.append(t_ret)
            time.sleep(PROBE_GAP_S)
    finally:
        peer.send(("end",))
        close()
    return {"warm": WARM_PROBES, "called": called, "returned": returned}


def task_subscriber(
    ctl: Ctl, feed_endpoint: str, endpoint: str, burst: int, after: int
) -> dict[str, Any]:
    sub = FeedSubscriber(feed_endpoint, endpoint, registry=REGISTRY, after_seq=after)
    received = out_of_order = 0
    expect = after + 1
    gap: str | None = None
    t_first = t_last = 0
    try:
        while sub.next(timeout=0.3) is not None:  # the catch-up; nothing should be there
            out_of_order += 1
        ctl.ready()
        last = after + burst
        while expect <= last:
            entry = sub.next(timeout=CALL_TIMEOUT)
            if entry is None:
                break
            if entry.seq != expect:
                out_of_order += 1
            received += 1
            expect = entry.seq + 1
            if received == 1:
                t_first = now_ns()
        t_last = now_ns()
    except FeedGap as exc:
        gap = str(exc)
    finally:
        repairs, duplicates = sub.repairs, sub.duplicates
        sub.close()
    return {
        "received": received,
        "out_of_order": out_of_order,
        "cursor": expect - 1,
        "feed_gap": gap,
        "repairs": repairs,
        "duplicates": duplicates,
        "t_first": t_first,
        "t_last": t_last,
    }


def task_producer(ctl: Ctl, endpoint: str, burst: int) -> dict[str, Any]:
    cli = connect(endpoint)
    try:
        ops = make_ops(burst, "producer")
        t0 = ctl.ready()
        cpu0 = time.process_time()
        pipelined(cli, ops)
        t1 = now_ns()
        return {"t_start": t0, "t_end": t1, "cpu": time.process_time() - cpu0}
    finally:
        cli.close()


def task_watermark(ctl: Ctl, endpoint: str) -> dict[str, Any]:
    cli = connect(endpoint)
    try:
        ctl.ready_nowait()
        return {"watermark": cli.watermark()}
    finally:
        cli.close()


TASKS: Final[dict[str, Callable[..., dict[str, Any]]]] = {
    "per_call": task_per_call,
    "pipelined": task_pipelined,
    "raw_per_call": task_raw_per_call,
    "mini_per_call": task_mini_per_call,
    "raw_pipelined": task_raw_pipelined,
    "watcher": task_watcher,
    "prober": task_prober,
    "subscriber": task_subscriber,
    "producer": task_producer,
    "watermark": task_watermark,
}


def worker_main(conn: Connection, peer: Connection | None) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # main cleans up; Ctrl-C is its business
    ctl = Ctl(conn, peer)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "exit":
            return
        if msg[0] != "run":
            continue  # a stale "go" or "stop"
        _, name, kwargs = msg
        try:
            result = TASKS[name](ctl, **kwargs)
        except BaseException:
            conn.send(("error", f"{name}: {traceback.format_exc()}"))
        else:
            conn.send(("done", result))


class Pool:
    """Worker processes that stay up for the whole run, driven over pipes."""

    def __init__(self, size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        watcher_end, prober_end = ctx.Pipe()
        for i in range(size):
            mine, theirs = ctx.Pipe()
            peer = watcher_end if i == WATCHER else prober_end if i == PROBER else None
            proc = ctx.Process(target=worker_main, args=(theirs, peer), daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(proc)

    def _expect(self, index: int, kind: str, deadline: float) -> Any:
        conn = self.conns[index]
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"worker {index}: no {kind!r} within {STEP_TIMEOUT}s")
        msg = conn.recv()
        if msg[0] == "error":
            raise RuntimeError(f"worker {index} failed: {msg[1]}")
        if msg[0] != kind:
            raise RuntimeError(f"worker {index}: expected {kind!r}, got {msg[0]!r}")
        return msg[1] if len(msg) > 1 else None

    def run(
        self,
        tasks: dict[int, tuple[str, dict[str, Any]]],
        main: list[int],
        stop: tuple[int, ...] = (),
    ) -> tuple[int, dict[int, dict[str, Any]]]:
        """Start ``tasks``; "go" once all are ready; when the ``main`` ones are done,
        "stop" the ``stop`` ones; returns the go time and every task's result."""
        deadline = time.monotonic() + STEP_TIMEOUT
        for index, (name, kwargs) in tasks.items():
            self.conns[index].send(("run", name, kwargs))
        for index in tasks:
            self._expect(index, "ready", deadline)
        t_go = now_ns()
        for index in tasks:
            self.conns[index].send(("go",))
        results = {}
        for index in main:
            results[index] = self._expect(index, "done", deadline)
        for index in stop:
            self.conns[index].send(("stop",))
        for index in tasks:
            if index not in results:
                results[index] = self._expect(index, "done", deadline)
        return t_go, results

    def close(self, grace: float = 10.0) -> None:
        """Ask every worker to exit; kill those still busy after ``grace`` seconds."""
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.send(("exit",))
        deadline = time.monotonic() + grace
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self.conns:
            conn.close()


# --- servers ---------------------------------------------------------------------------------------


class ServerProcess:
    """A server subprocess: ``opsreg serve`` (endpoints from its ready file) or, with
    ``raw``, the baseline server of this script (endpoint from its first line)."""

    def __init__(self, cmd: list[str], log_dir: str, raw: bool = False) -> None:
        self.cmd = cmd
        self.raw = raw
        self.log_path = os.path.join(log_dir, f"server-{time.monotonic_ns()}.log")
        self.proc: subprocess.Popen[str] | None = None
        self.endpoint = self.feed_endpoint = ""

    def start(self) -> ServerProcess:
        if self.raw:
            self.proc, line = spawn_process(self.cmd, self.log_path)
            match = RAW_BANNER.search(line)
            ready = None if match is None else {"endpoint": match.group(1), "feed_endpoint": ""}
        else:
            self.proc, ready, line = spawn_server(self.cmd, self.log_path)
        if ready is None:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r} {Path(self.log_path).read_text()}")
        self.endpoint, self.feed_endpoint = ready["endpoint"], ready["feed_endpoint"]
        return self

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)
            self.proc = None


def loaded_run(
    n: int,
    elapsed: float,
    cpu: float,
    res: dict[int, Any],
    loaded: dict[str, list[int]],
    alone: dict[str, list[int]],
) -> dict[str, Any]:
    """One per-call repetition with watcher probes, as the measurement methods return it."""
    return {
        "rate": n / elapsed,
        "server_cpu": cpu / elapsed,
        "client_cpu": sum(res[i]["cpu"] for i in range(WORKERS)) / elapsed,
        "probes_during": len(loaded["return"]),
        "under_load": loaded,
        "standalone": alone,
    }


def opsreg_server(
    data_dir: str, log_dir: str, extra: list[str], switch_interval: float | None = None
) -> ServerProcess:
    launcher = ["-m", "transport.cli"]
    if switch_interval is not None:  # an experiment: the GIL switch interval of the server
        launcher = [
            "-c",
            f"import sys; sys.setswitchinterval({switch_interval!r}); "
            "from transport.cli import main; sys.exit(main(sys.argv[1:]))",
        ]
    cmd = [
        sys.executable,
        *launcher,
        "serve",
        "--endpoint",
        "tcp://127.0.0.1:0",
        "--feed-endpoint",
        "tcp://127.0.0.1:0",
        "--data",
        data_dir,
        *extra,
    ]
    return ServerProcess(cmd, log_dir).start()


def raw_server(log_dir: str) -> ServerProcess:
    cmd = [sys.executable, os.path.abspath(__file__), "--raw-server"]
    return ServerProcess(cmd, log_dir, raw=True).start()


# --- scenarios ---------------------------------------------------------------------------------------


class Spy:
    """``py-spy record`` attached to a server for one timed phase (``--py-spy DIR``)."""

    flags: ClassVar[list[str]] = ["--nonblocking"]

    def __init__(self, out_dir: str | None, server: ServerProcess, name: str) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        if out_dir is None or server.proc is None:
            return
        exe = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or "py-spy"
        out = os.path.join(out_dir, f"{name}.txt")
        cmd = [exe, "record", "--pid", str(server.proc.pid), "--rate", "250", "--threads"]
        cmd += [
            *self.flags,
            "--format",
            "raw",
            "--output",
            out,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        time.sleep(0.5)  # let it attach

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


class Bench:
    def __init__(
        self,
        pool: Pool,
        root: str,
        server_args: list[str],
        spy_dir: str | None,
        switch_interval: float | None,
    ) -> None:
        self.pool = pool
        self.switch_interval = switch_interval
        self.root = root
        self.server_args = server_args
        self.spy_dir = spy_dir
        self.runs = 0

    def _server(self) -> ServerProcess:
        return opsreg_server(self._data_dir(), self.root, self.server_args, self.switch_interval)

    def _data_dir(self) -> str:
        self.runs += 1
        return os.path.join(self.root, f"data-{self.runs}")

    def _check_watermark(self, server: ServerProcess, expected: int) -> None:
        _, res = self.pool.run(
            {PROBER: ("watermark", {"endpoint": server.endpoint})}, main=[PROBER]
        )
        mark = res[PROBER]["watermark"]
        if mark != expected:
            raise RuntimeError(f"expected watermark {expected}, the registry says {mark}")

    def _load(
        self, task: str, endpoint: str, n: int, probe: bool, raw: bool
    ) -> tuple[int, dict[int, dict[str, Any]]]:
        tasks: dict[int, tuple[str, dict[str, Any]]] = {
            i: (task, {"endpoint": endpoint, "n": k, "owner": f"bench-{i}"})
            for i, k in enumerate(split(n, WORKERS))
        }
        if probe:
            tasks[WATCHER] = ("watcher", {"endpoint": endpoint, "raw": raw})
            tasks[PROBER] = ("prober", {"endpoint": endpoint, "raw": raw, "count": None})
        return self.pool.run(tasks, main=list(range(WORKERS)), stop=(PROBER,) if probe else ())

    def _probes(self, endpoint: str, raw: bool, count: int) -> dict[str, list[int]]:
        tasks = {
            WATCHER: ("watcher", {"endpoint": endpoint, "raw": raw}),
            PROBER: ("prober", {"endpoint": endpoint, "raw": raw, "count": count}),
        }
        _, res = self.pool.run(tasks, main=[PROBER])
        return latencies(res[PROBER], res[WATCHER])

    def per_call(self, n: int, standalone: int) -> dict[str, Any]:
        server = self._server()
        try:
            spy = Spy(self.spy_dir, server, f"per_call-{self.runs}")
            cpu0 = server.cpu_seconds()
            t_go, res = self._load("per_call", server.endpoint, n, probe=True, raw=False)
            elapsed = (max(res[i]["t_end"] for i in range(WORKERS)) - t_go) / 1e9
            cpu = server.cpu_seconds() - cpu0
            spy.stop()
            loaded = latencies(res[PROBER], res[WATCHER])
            alone = self._probes(server.endpoint, False, standalone)
            probes = (
                len(loaded["return"]) + len(alone["return"]) + 2 * WARM_PROBES
            )  # each probe is one lifecycle
            self._check_watermark(server, n + WORKERS * WARM_LIFECYCLES + probes)
        finally:
            server.stop()
        return loaded_run(n, elapsed, cpu, res, loaded, alone)

    def memory_probes(self, count: int) -> dict[str, list[int]]:
        """Standalone watcher probes against ``opsreg serve --memory`` (no journal, no disk)."""
        server = opsreg_server(self._data_dir(), self.root, ["--memory"])
        try:
            return self._probes(server.endpoint, False, count)
        finally:
            server.stop()

    def pipelined(self, n: int) -> dict[str, Any]:
        return self.plain("pipelined", n, "opsreg")

    def plain(self, task: str, n: int, kind: str) -> dict[str, Any]:
        """One load from the 4 workers, no probes; ``kind`` is "opsreg", "memory" or "raw"."""
        if kind == "raw":
            server = raw_server(self.root)
        elif kind == "memory":
            server = opsreg_server(self._data_dir(), self.root, ["--memory"], self.switch_interval)
        else:
            server = self._server()
        try:
            spy = Spy(self.spy_dir if kind != "raw" else None, server, f"{task}-{self.runs}")
            cpu0 = server.cpu_seconds()
            t_go, res = self._load(task, server.endpoint, n, probe=False, raw=kind == "raw")
            elapsed = (max(r["t_end"] for r in res.values()) - t_go) / 1e9
            cpu = server.cpu_seconds() - cpu0
            spy.stop()
            if kind != "raw":
                self._check_watermark(server, n + WORKERS * WARM_LIFECYCLES)
        finally:
            server.stop()
        return {
            "rate": n / elapsed,
            "server_cpu": cpu / elapsed,
            "client_cpu": sum(res[i]["cpu"] for i in range(WORKERS)) / elapsed,
        }

    def raw(self, n: int, standalone: int) -> dict[str, Any]:
        server = raw_server(self.root)
        try:
            cpu0 = server.cpu_seconds()
            t_go, res = self._load("raw_per_call", server.endpoint, n, probe=True, raw=True)
            elapsed = (max(res[i]["t_end"] for i in range(WORKERS)) - t_go) / 1e9
            cpu = server.cpu_seconds() - cpu0
            loaded = latencies(res[PROBER], res[WATCHER])
            alone = self._probes(server.endpoint, True, standalone)
        finally:
            server.stop()
        return loaded_run(n, elapsed, cpu, res, loaded, alone)

    def feed(self, burst: int) -> dict[str, Any]:
        server = self._server()
        try:
            sub_args = {
                "feed_endpoint": server.feed_endpoint,
                "endpoint": server.endpoint,
                "burst": burst,
                "after": 0,
            }
            tasks: dict[int, tuple[str, dict[str, Any]]] = {
                i: ("subscriber", sub_args) for i in range(WORKERS)
            }
            tasks[PROBER] = ("producer", {"endpoint": server.endpoint, "burst": burst})
            spy = Spy(self.spy_dir, server, f"feed-{self.runs}")
            cpu0 = server.cpu_seconds()
            t_go, res = self.pool.run(tasks, main=[PROBER])
            subs = [res[i] for i in range(WORKERS)]
            t_done = max(s["t_last"] for s in subs)
            cpu = server.cpu_seconds() - cpu0
            spy.stop()
            self._check_watermark(server, burst)
        finally:
            server.stop()
        elapsed = (t_done - t_go) / 1e9
        produced = (res[PROBER]["t_end"] - t_go) / 1e9
        unrepaired = sum(
            (burst - s["received"]) + s["out_of_order"] + (s["feed_gap"] is not None) for s in subs
        )
        return {
            "aggregate": sum(s["received"] for s in subs) / elapsed,
            "per_subscriber": [
                round(s["received"] / ((s["t_last"] - t_go) / 1e9), 1) for s in subs
            ],
            "producer_lifecycles_per_s": burst / produced,
            "last_entry_lag_ms": (t_done - res[PROBER]["t_end"]) / 1e6,
            "repairs": sum(s["repairs"] for s in subs),
            "duplicates": sum(s["duplicates"] for s in subs),
            "unrepaired_gaps": unrepaired,
            "feed_gaps": [s["feed_gap"] for s in subs if s["feed_gap"]],
            "server_cpu": cpu / elapsed,
        }


def latencies(prober: dict[str, Any], watcher: dict[str, Any]) -> dict[str, list[int]]:
    resolved = watcher["resolved"][prober["warm"] :]
    called, returned = prober["called"], prober["returned"]
    if len(resolved) != len(called):
        raise RuntimeError(f"{len(called)} probes but {len(resolved)} watcher stamps")
    return {
        "return": [r - t for r, t in zip(resolved, returned, strict=True)],
        "call": [r - t for r, t in zip(resolved, called, strict=True)],
    }


# --- statistics and output ------------------------------------------------------------------------


def pcts_us(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    if not ordered:
        return {"n": 0}
    out: dict[str, float] = {"n": len(ordered)}
    for name, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999)):
        value = percentile(ordered, q)
        assert value is not None
        out[name] = round(value / 1000, 1)
    out["max"] = round(ordered[-1] / 1000, 1)
    return out


def mount_of(path: str) -> dict[str, str]:
    """The file system holding ``path`` (from /proc/mounts), e.g. to tell tmpfs from a disk."""
    best = ("", "?", "?")
    real = os.path.realpath(path)
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, fstype, dev)
    return {"mount": best[0], "fstype": best[1], "device": best[2]}


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / tick, fields[7] / tick


def machine_load(
    load_start: tuple[float, float, float], cpu_start: tuple[float, float], wall: float
) -> dict[str, Any]:
    """How busy the machine was during the run, and how much of that was not this benchmark.

    ``ours`` is this process and every child it reaped (servers, workers, py-spy);
    ``others`` is the rest: other work sharing the machine, which skews every figure.
    """
    busy, steal = machine_cpu()
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    used = busy - cpu_start[0]
    return {
        "loadavg_1m_at_start": round(load_start[0], 2),
        "busy_cores": round(used / wall, 2),
        "ours_cores": round(ours / wall, 2),
        "others_cores": round(max(0.0, used - ours) / wall, 2),
        "steal_cores": round((steal - cpu_start[1]) / wall, 3),
    }


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run (< 60 s)")
    parser.add_argument("--repeat", type=int, default=None, metavar="R")
    parser.add_argument("--n", type=int, default=None, metavar="N", help="per-call lifecycles")
    parser.add_argument("--pipelined-n", type=int, default=None, metavar="N")
    parser.add_argument("--burst", type=int, default=None, metavar="B", help="feed burst size")
    parser.add_argument("--probes", type=int, default=None, help="standalone watcher probes")
    parser.add_argument("--data-root", default=None, help="where the temporary stores go")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for opsreg serve (repeatable), e.g. --server-arg=--synchronous=normal",
    )
    parser.add_argument(
        "--py-spy", default=None, metavar="DIR", help="py-spy the opsreg server into DIR"
    )
    parser.add_argument(
        "--py-spy-flags",
        default="--nonblocking",
        metavar="FLAGS",
        help='extra py-spy record flags (default "--nonblocking"; "--gil" shows CPU holders)',
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="S",
        help="experiment: sys.setswitchinterval(S) in the opsreg server (default: Python's)",
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also measure: opsreg per-call with a minimal DEALER client (no RegistryClient), "
        "opsreg per-call with --memory, and the raw ceiling pipelined",
    )
    parser.add_argument("--raw-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_server:
        return raw_server_main()
    q = args.quick
    n = args.n or (QUICK_N if q else DEFAULT_N)
    pn = args.pipelined_n or (QUICK_PIPELINED_N if q else DEFAULT_PIPELINED_N)
    burst = args.burst or (QUICK_BURST if q else DEFAULT_BURST)
    probes = args.probes or (QUICK_STANDALONE_PROBES if q else DEFAULT_STANDALONE_PROBES)
    repeat = args.repeat or (QUICK_REPEAT if q else DEFAULT_REPEAT)
    if min(n, pn) < WORKERS or burst < 1 or repeat < 1:
        parser.error(f"--n and --pipelined-n must be >= {WORKERS}; --burst, --repeat >= 1")

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    began = time.perf_counter()
    load_start = os.getloadavg()
    cpu_start = machine_cpu()
    root = tempfile.mkdtemp(prefix="opsreg-bench-transport-", dir=args.data_root)
    pool: Pool | None = None
    completed = False
    per_call: list[dict[str, Any]] = []
    pipe: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    feed: list[dict[str, Any]] = []
    memory: list[dict[str, list[int]]] = []
    diag: dict[str, list[dict[str, Any]]] = {
        "per_call_minimal_client": [],
        "per_call_memory_store": [],
        "raw_ceiling_pipelined": [],
    }
    try:
        log(f"starting {POOL_SIZE} worker processes; stores under {root}")
        pool = Pool(POOL_SIZE)
        if args.py_spy:
            os.makedirs(args.py_spy, exist_ok=True)
            Spy.flags = shlex.split(args.py_spy_flags)
        bench = Bench(pool, root, args.server_arg, args.py_spy, args.switch_interval)
        for rep in range(repeat):
            tag = f"rep {rep + 1}/{repeat}"
            raw.append(bench.raw(n, probes))
            log(f"{tag} raw ceiling per-call: {raw[-1]['rate']:,.0f} lifecycles/s")
            per_call.append(bench.per_call(n, probes))
            log(f"{tag} opsreg per-call:      {per_call[-1]['rate']:,.0f} lifecycles/s")
            pipe.append(bench.pipelined(pn))
            log(f"{tag} opsreg pipelined:     {pipe[-1]['rate']:,.0f} lifecycles/s")
            feed.append(bench.feed(burst))
            log(f"{tag} feed:                 {feed[-1]['aggregate']:,.0f} entries/s")
            memory.append(bench.memory_probes(probes))
            if args.diagnose:
                for key, task, size, kind in (
                    ("per_call_minimal_client", "mini_per_call", n, "opsreg"),
                    ("per_call_memory_store", "per_call", n, "memory"),
                    ("raw_ceiling_pipelined", "raw_pipelined", pn, "raw"),
                ):
                    diag[key].append(bench.plain(task, size, kind))
                    log(f"{tag} {key}: {diag[key][-1]['rate']:,.0f} lifecycles/s")
        completed = True
    finally:
        if pool is not None:
            pool.close(grace=10.0 if completed else 0.5)
        shutil.rmtree(root, ignore_errors=True)

    def pooled(runs: list[dict[str, Any]], when: str, kind: str) -> list[int]:
        return [x for r in runs for x in r[when][kind]]

    lat = {
        name: {
            when: {
                "from_complete_return": pcts_us(pooled(runs, when, "return")),
                "from_complete_call": pcts_us(pooled(runs, when, "call")),
            }
            for when in ("under_load", "standalone")
        }
        for name, runs in (("opsreg", per_call), ("raw_held_reply", raw))
    }
    lat["opsreg"]["standalone_memory_store"] = {
        "from_complete_return": pcts_us([x for m in memory for x in m["return"]]),
        "from_complete_call": pcts_us([x for m in memory for x in m["call"]]),
    }
    rate = {k: [r["rate"] for r in v] for k, v in (("pc", per_call), ("pl", pipe), ("raw", raw))}
    paired = [a / b for a, b in zip(rate["pc"], rate["raw"], strict=True)]
    per_call_ratio = statistics.median(rate["pc"]) / statistics.median(rate["raw"])

    def lat_ratio(kind: str) -> float | None:
        """opsreg p50 / raw p50 under load; None unless both are positive (a ratio of
        negative latencies would read backwards)."""
        a = lat["opsreg"]["under_load"][kind].get("p50")
        b = lat["raw_held_reply"]["under_load"][kind].get("p50")
        return None if a is None or b is None or a <= 0 or b <= 0 else round(a / b, 3)

    watcher_ratio = lat_ratio("from_complete_return")
    p50 = lat["opsreg"]["under_load"]["from_complete_return"].get("p50")
    raw_p50 = lat["raw_held_reply"]["under_load"]["from_complete_return"].get("p50")
    unrepaired = sum(f["unrepaired_gaps"] for f in feed)
    out: dict[str, Any] = {
        "bench": "transport",
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "pykka": _version("pykka"),
        "msgspec": _version("msgspec"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "store": {"server_args": args.server_arg, **mount_of(root)},
        "server_switch_interval": args.switch_interval,
        "quick": q,
        "repeat": repeat,
        "workers": WORKERS,
        "n_per_call": n,
        "n_pipelined": pn,
        "window_lifecycles": WINDOW,
        "feed_burst": burst,
        "frame_bytes": frame_sizes(),
        "lifecycles_per_s": {
            "per_call": summary(rate["pc"]),
            "pipelined": summary(rate["pl"]),
            "raw_ceiling_per_call": summary(rate["raw"]),
        },
        "server_cpu": {
            "per_call": summary([r["server_cpu"] for r in per_call], 2),
            "pipelined": summary([r["server_cpu"] for r in pipe], 2),
            "raw_ceiling_per_call": summary([r["server_cpu"] for r in raw], 2),
            "feed": summary([r["server_cpu"] for r in feed], 2),
        },
        "client_cpu_4_workers": {
            "per_call": summary([r["client_cpu"] for r in per_call], 2),
            "pipelined": summary([r["client_cpu"] for r in pipe], 2),
            "raw_ceiling_per_call": summary([r["client_cpu"] for r in raw], 2),
        },
        "watcher_latency_us": {
            "measured_during": "per_call_load (4 per-call workers) and standalone",
            "probes_per_rep_under_load": {
                "opsreg": [r["probes_during"] for r in per_call],
                "raw": [r["probes_during"] for r in raw],
            },
            **lat,
        },
        "feed": {
            "subscribers": WORKERS,
            "entries_per_s_aggregate": summary([f["aggregate"] for f in feed]),
            "entries_per_s_per_subscriber": [f["per_subscriber"] for f in feed],
            "producer_lifecycles_per_s": summary([f["producer_lifecycles_per_s"] for f in feed]),
            "last_entry_lag_ms": summary([f["last_entry_lag_ms"] for f in feed], 2),
            "repairs": sum(f["repairs"] for f in feed),
            "duplicates": sum(f["duplicates"] for f in feed),
            "unrepaired_gaps": unrepaired,
            "feed_gap_errors": [g for f in feed for g in f["feed_gaps"]],
        },
        "ratios": {
            "per_call_over_raw": {
                "of_medians": round(per_call_ratio, 3),
                "paired": summary(paired, 3),
            },
            "watcher_p50_over_raw": {
                "from_complete_return": watcher_ratio,
                "from_complete_return_p50_minus_raw_us": None
                if p50 is None or raw_p50 is None
                else round(p50 - raw_p50, 1),
                "from_complete_call": lat_ratio("from_complete_call"),
            },
        },
        "targets": {
            "per_call_ge_0_7_raw": per_call_ratio >= 0.7,
            "pipelined_ge_10k": statistics.median(rate["pl"]) >= 10_000,
            "watcher_p50_le_2x_raw": p50 is not None
            and raw_p50 is not None
            and p50 - raw_p50 <= abs(raw_p50),
            "zero_unrepaired_feed_gaps": unrepaired == 0,
        },
        "machine": machine_load(load_start, cpu_start, time.perf_counter() - began),
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    if args.diagnose:
        out["diagnostics"] = {
            key: {
                "lifecycles_per_s": summary([r["rate"] for r in runs]),
                "server_cpu": summary([r["server_cpu"] for r in runs], 2),
                "client_cpu_4_workers": summary([r["client_cpu"] for r in runs], 2),
            }
            for key, runs in diag.items()
        }
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
