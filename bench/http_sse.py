"""The completion feed delivered over HTTP Server-Sent Events, against ZeroMQ as the baseline.

One ``opsreg serve`` process and one gateway process (``opsreg web``). Two phases in the
same run, each with ``--subscribers`` (4) reader processes connected at the registry's
watermark, then ``--producers`` (2) processes completing ``--ops`` operations between
them as fast as they can (register, start, complete, pipelined):

* ``http``: each reader is a raw HTTP client of ``GET /v1/registries/default/feed``
  (``?after=WATERMARK``), decoding every event's JSON;
* ``zmq``: each reader is a ``FeedSubscriber`` (``after_seq=WATERMARK``).

A reader counts entries in seq order, gaps (a seq skipped, or an ``event: gap``) and
duplicates, and reports when it received its last entry. Aggregate entries/s is
``subscribers x ops`` over the time from the producers' start to the last reader's last
entry (one clock, CLOCK_MONOTONIC, in every process). The producers' own rate is
reported too: it bounds what a live reader can receive. Then ``backlog``: as many new
readers, started together, read the same ``--ops`` entries once all are completed (from
the hub's ring and, beyond it, ``list_since`` pages; for ZeroMQ, the subscriber's
repair). Last, ``fanout``: one process holding ``--fanout`` (100) streams at once (reading
ids only) while the producers complete a quarter of ``--ops`` again: what encoding each
entry once in the hub buys.
Target: HTTP >= 10,000 entries/s aggregate on 2 cores.

    python bench/http_sse.py [--quick] [--ops N] [--subscribers K] [--producers P] [--fanout S]

Prints exactly one JSON line on stdout; progress goes to stderr.
"""

# ruff: noqa: E402
# bench/ holds transport.py, which would shadow the ``transport`` package while this
# directory is on sys.path: import the shared helpers, then take bench/ off the path.
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from _common import (
    ROOT,
    cpu_seconds,
    log,
    now_ns,
    serve_cmd,
    spawn_server,
    status_kib,
    stop_server,
)

sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import asyncio
import json
import socket
import subprocess
import tempfile
from typing import Any

import msgspec

from actors import OperationId, OperationKind, OperationResult, OperationSpec
from transport import FeedSubscriber, RegistryClient
from transport.cli.ready import await_ready

FEED = "/v1/registries/default/feed"


# --- readers (each in its own process) ----------------------------------------------------------


class Tally:
    """Entries in seq order after ``after``: gaps, duplicates, when the last one came."""

    def __init__(self, after: int, count: int) -> None:
        self.last = after
        self.end = after + count
        self.received = 0
        self.gaps = 0
        self.duplicates = 0
        self.first_ns = 0
        self.last_ns = 0

    def seq(self, seq: int) -> None:
        if seq <= self.last:
            self.duplicates += 1
            return
        if seq != self.last + 1:
            self.gaps += 1
        if not self.received:
            self.first_ns = now_ns()
        self.received += 1
        self.last = seq
        if seq >= self.end:
            self.last_ns = now_ns()

    @property
    def done(self) -> bool:
        return self.last >= self.end

    def report(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "gaps": self.gaps,
            "duplicates": self.duplicates,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
        }


def go() -> None:
    """Say this process is up, then wait for the word to start (all readers start at once)."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")


def request(after: int) -> bytes:
    return (
        f"GET {FEED}?after={after} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()


class SseReader:
    """An HTTP response read incrementally: headers, chunked body, SSE events, a ``Tally``.

    ``decode``: whether each completion's JSON is decoded (a real consumer's work) or
    only its ``id:`` read.
    """

    def __init__(self, tally: Tally, decode: bool = True) -> None:
        self.tally = tally
        self.decode = decode
        self.raw = b""
        self.body = b""
        self.headed = False

    def feed(self, data: bytes) -> None:
        if not data:
            raise RuntimeError("the gateway closed the stream")
        self.raw += data
        if not self.headed:
            if b"\r\n\r\n" not in self.raw:
                return
            head, _, self.raw = self.raw.partition(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                raise RuntimeError(head.decode(errors="replace"))
            self.headed = True
        raw, parts = self.raw, [self.body]
        while True:  # de-chunk what is there
            line_end = raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(raw[:line_end], 16)
            if len(raw) < line_end + 2 + size + 2:
                break
            parts.append(raw[line_end + 2 : line_end + 2 + size])
            raw = raw[line_end + 2 + size + 2 :]
            if size == 0:
                raise RuntimeError("the stream ended")
        self.raw = raw
        blocks = b"".join(parts).split(b"\n\n")
        self.body = blocks.pop()
        tally, decode = self.tally, msgspec.json.decode
        for block in blocks:
            if block.startswith(b":"):
                continue
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
            event = fields.get(b"event")
            if event == b"completion":
                tally.seq(decode(fields[b"data"])["seq"] if self.decode else int(fields[b"id"]))
            elif event == b"gap":
                tally.gaps += 1
                tally.last = int(fields[b"id"])


def http_reader(port: int, after: int, count: int) -> dict[str, Any]:
    """Read the SSE feed over a raw socket, decoding each entry's JSON."""
    reader = SseReader(Tally(after, count))
    go()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(request(after))
    while not reader.headed:
        reader.feed(sock.recv(65536))
    print("connected", flush=True)
    while not reader.tally.done:
        reader.feed(sock.recv(1 << 20))
    sock.close()
    return reader.tally.report()


def fanout_reader(port: int, after: int, count: int, streams: int) -> dict[str, Any]:
    """``streams`` SSE streams in one process (asyncio), reading ids only."""

    async def one(reader: SseReader) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(request(after))
        while not reader.headed:
            reader.feed(await r.read(65536))
        connected.release()
        while not reader.tally.done:
            reader.feed(await r.read(1 << 20))
        w.close()

    async def run() -> None:
        tasks = [asyncio.ensure_future(one(reader)) for reader in readers]
        for _ in readers:
            await connected.acquire()
        print("connected", flush=True)
        await asyncio.gather(*tasks)

    readers = [SseReader(Tally(after, count), decode=False) for _ in range(streams)]
    connected = asyncio.Semaphore(0)
    go()
    asyncio.run(run())
    tallies = [r.tally.report() for r in readers]
    return {
        "received": sum(t["received"] for t in tallies),
        "gaps": sum(t["gaps"] for t in tallies),
        "duplicates": sum(t["duplicates"] for t in tallies),
        "first_ns": min(t["first_ns"] for t in tallies),
        "last_ns": max(t["last_ns"] for t in tallies),
    }


def zmq_reader(endpoint: str, feed_endpoint: str, after: int, count: int) -> dict[str, Any]:
    tally = Tally(after, count)
    go()
    with FeedSubscriber(endpoint, feed_endpoint, after_seq=after) as feed:
        print("connected", flush=True)
        while not tally.done:
            entry = feed.next(timeout=60)
            if entry is None:
                raise RuntimeError("no entry for 60 s")
            tally.seq(entry.seq)
    return tally.report()


# --- the run ------------------------------------------------------------------------------------


def produce(endpoint: str, count: int, chunk: int = 1000) -> None:
    """Complete ``count`` operations, pipelined (one producer process)."""
    with RegistryClient(endpoint, timeout=60) as client:
        batches = []
        for start in range(0, count, chunk):
            batch = []
            for _ in range(min(chunk, count - start)):
                op_id = OperationId.new()
                spec = OperationSpec(
                    id=op_id,
                    kind=OperationKind.BACKGROUND_TOOL_OP,
                    owner_session_id="bench-sse",
                    display_name="bench",
                    source_label="bench",
                )
                batch.append((spec, OperationResult(id=op_id, content="ok")))
            batches.append(batch)
        go()
        for batch in batches:
            with client.pipeline() as p:
                for spec, result in batch:
                    p.register_operation(spec)
                    p.provisioning_succeeded(spec.id)
                    p.complete_operation(spec.id, result)
        print(json.dumps({"done_ns": now_ns()}), flush=True)


def gateway_cmd(endpoint: str, feed_endpoint: str, ready_file: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "transport.cli",
        "web",
        "--endpoint",
        endpoint,
        "--feed-endpoint",
        feed_endpoint,
        "--http",
        "127.0.0.1:0",
        "--ready-file",
        ready_file,
    ]


def spawn(role: list[str], count: int) -> list[subprocess.Popen[str]]:
    """``count`` processes of ``role``, once each said it is ready (imports done)."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, *role],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for proc in procs:
        expect(proc, "ready")
    return procs


def expect(proc: subprocess.Popen[str], word: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != word:
        raise RuntimeError(f"expected {word!r} from a child, got {line!r}")


def start(procs: list[subprocess.Popen[str]]) -> int:
    """Tell every process to go; the time it was told."""
    t0 = now_ns()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return t0


def answers(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    out = []
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and not line.startswith("{"):  # "connected", when not read yet
            line = proc.stdout.readline()
        proc.wait(300)
        if not line.startswith("{"):
            raise RuntimeError(f"a child failed (exit {proc.returncode})")
        out.append(json.loads(line))
    return out


def summary(tallies: list[dict[str, Any]], t0: int) -> dict[str, Any]:
    """Aggregate entries/s from ``t0`` to the last reader's last entry, gaps, duplicates."""
    elapsed = (max(x["last_ns"] for x in tallies) - t0) / 1e9
    delivered = sum(x["received"] for x in tallies)
    return {
        "entries": delivered,
        "entries_per_s": round(delivered / elapsed, 1),
        "elapsed_s": round(elapsed, 3),
        "gaps": sum(x["gaps"] for x in tallies),
        "duplicates": sum(x["duplicates"] for x in tallies),
    }


def phase(
    kind: str,
    args: argparse.Namespace,
    ready: dict[str, Any],
    port: int,
    pids: dict[str, int],
    backlog: bool = True,
) -> dict[str, Any]:
    """Live readers while the producers run, then readers of the same entries as a backlog.

    ``kind`` ``fanout`` is one process holding ``--fanout`` streams, of ``--ops / 4``
    completions (no backlog run).
    """
    with RegistryClient(ready["endpoint"], timeout=30) as client:
        after = client.watermark()
    ops = args.ops // 4 if kind == "fanout" else args.ops
    reader = ["--role", kind, "--after", str(after), "--ops", str(ops), "--port", str(port)]
    reader += ["--endpoint", ready["endpoint"], "--feed-endpoint", ready["feed_endpoint"]]
    reader += ["--fanout", str(args.fanout)]
    count = 1 if kind == "fanout" else args.subscribers
    live = spawn(reader, count)
    start(live)
    for proc in live:
        expect(proc, "connected")
    shares = [ops // args.producers + (i < ops % args.producers) for i in range(args.producers)]
    producers = [
        spawn(["--role", "producer", "--ops", str(n), "--endpoint", ready["endpoint"]], 1)[0]
        for n in shares
    ]
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    rss0 = status_kib(pids["gateway"], "VmRSS")
    streams = args.fanout if kind == "fanout" else args.subscribers
    log(f"{kind}: {streams} streams after seq {after}; {args.producers} producers of {ops}")
    t0 = start(producers)
    out = summary(answers(live), t0)
    produced_s = (max(x["done_ns"] for x in answers(producers)) - t0) / 1e9
    out["streams"] = streams
    out["producer_ops_per_s"] = round(ops / produced_s, 1)
    out["cpu_s"] = {name: round(cpu_seconds(pid) - cpu0[name], 2) for name, pid in pids.items()}
    out["gateway_rss_kib"] = [rss0, status_kib(pids["gateway"], "VmRSS")]
    if backlog:
        log(f"{kind}: {args.subscribers} readers of the {args.ops} entries as a backlog")
        again = spawn(reader, args.subscribers)
        t0 = start(again)
        out["backlog"] = summary(answers(again), t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ops", type=int, help="operations completed (20,000; --quick 2,000)")
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--fanout", type=int, help="streams of the fan-out run (100; --quick 20)")
    parser.add_argument(
        "--role", choices=("http", "zmq", "fanout", "producer"), help=argparse.SUPPRESS
    )
    parser.add_argument("--after", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--feed-endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "http":
        print(json.dumps(http_reader(args.port, args.after, args.ops)), flush=True)
        return
    if args.role == "fanout":
        print(json.dumps(fanout_reader(args.port, args.after, args.ops, args.fanout)), flush=True)
        return
    if args.role == "producer":
        produce(args.endpoint, args.ops)
        return
    if args.role == "zmq":
        out = zmq_reader(args.endpoint, args.feed_endpoint, args.after, args.ops)
        print(json.dumps(out), flush=True)
        return
    if args.ops is None:
        args.ops = 2_000 if args.quick else 20_000
    if args.fanout is None:
        args.fanout = 20 if args.quick else 100
    with tempfile.TemporaryDirectory(prefix="bench-sse-") as tmp:
        retain = str(max(args.ops, 256))  # the feed keeps 4 x this: no gap is legitimate
        server, ready, banner = spawn_server(
            serve_cmd(os.path.join(tmp, "data"), "--max-completed", retain),
            os.path.join(tmp, "server.log"),
        )
        gateway: subprocess.Popen[str] | None = None
        try:
            if ready is None:
                raise RuntimeError(f"the server did not start: {banner!r}")
            ready_file = os.path.join(tmp, "web.ready.json")
            with open(os.path.join(tmp, "web.log"), "w") as err:
                gateway = subprocess.Popen(
                    gateway_cmd(ready["endpoint"], ready["feed_endpoint"], ready_file),
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
            web, line = await_ready(gateway, ready_file, 60)
            if web is None:
                raise RuntimeError(f"the gateway did not start: {line!r}")
            port = int(web["http"].rsplit(":", 1)[1])
            pids = {"server": server.pid, "gateway": gateway.pid}
            http = phase("http", args, ready, port, pids)
            zmq = phase("zmq", args, ready, port, pids)
            fanout = phase("fanout", args, ready, port, pids, backlog=False)
        finally:
            if gateway is not None:
                stop_server(gateway)
            stop_server(server)
    ratio = http["entries_per_s"] / zmq["entries_per_s"]
    backlog = http["backlog"]["entries_per_s"] / zmq["backlog"]["entries_per_s"]
    out = {
        "bench": "http_sse",
        "ops": args.ops,
        "subscribers": args.subscribers,
        "producers": args.producers,
        "http": http,
        "zmq": zmq,
        "fanout": fanout,
        "http_over_zmq": round(ratio, 3),
        "backlog_http_over_zmq": round(backlog, 3),
        "target_entries_per_s": 10_000,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
