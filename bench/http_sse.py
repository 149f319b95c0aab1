"""The completion feed delivered over HTTP Server-Sent Events, against ZeroMQ as the baseline.

One ``opsreg serve`` process and one gateway process (``opsreg web``). Two phases in the
same run, each with ``--subscribers`` (4) reader processes started at the registry's
watermark, then one producer completing ``--ops`` operations as fast as it can
(register, start, complete, pipelined):

* ``http``: each reader is a raw HTTP client of ``GET /v1/registries/default/feed``
  (``?after=WATERMARK``), decoding every event's JSON;
* ``zmq``: each reader is a ``FeedSubscriber`` (``after_seq=WATERMARK``).

A reader counts entries in seq order, gaps (a seq skipped, or an ``event: gap``) and
duplicates, and reports when it received its last entry. Aggregate entries/s is
``subscribers x ops`` over the time from the producer's start to the last reader's last
entry (the same clock, CLOCK_MONOTONIC, in every process). The producer's own rate is
reported too: it bounds what a live reader can receive. Then ``backlog``: as many new
readers read the same ``--ops`` entries after they were all completed (from the hub's
ring and, beyond it, ``list_since`` pages; for ZeroMQ, the subscriber's repair), timed
from the first entry any of them received to the last one's last. Target: HTTP >= 10,000 entries/s aggregate on 2 cores.

    python bench/http_sse.py [--quick] [--ops N] [--subscribers K]

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
from _common import ROOT, cpu_seconds, log, now_ns, serve_cmd, spawn_server, stop_server

sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import json
import socket
import subprocess
import tempfile
import time
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


def http_reader(port: int, after: int, count: int) -> dict[str, Any]:
    """Read the SSE feed over a raw socket (chunked body), decoding each entry's JSON."""
    tally = Tally(after, count)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"GET {FEED}?after={after} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    head, _, raw = raw.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.decode(errors="replace"))
    body = b""
    decode = msgspec.json.decode
    print("ready", flush=True)
    while not tally.done:
        # de-chunk what is there
        while True:
            line_end = raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(raw[:line_end], 16)
            if len(raw) < line_end + 2 + size + 2:
                break
            body += raw[line_end + 2 : line_end + 2 + size]
            raw = raw[line_end + 2 + size + 2 :]
            if size == 0:
                raise RuntimeError("the stream ended")
        blocks = body.split(b"\n\n")
        body = blocks.pop()
        for block in blocks:
            if block.startswith(b":"):
                continue
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
            event = fields.get(b"event")
            if event == b"completion":
                entry = decode(fields[b"data"])
                tally.seq(entry["seq"])
            elif event == b"gap":
                tally.gaps += 1
                tally.last = int(fields[b"id"])
        if not tally.done:
            data = sock.recv(1 << 20)
            if not data:
                raise RuntimeError("the gateway closed the stream")
            raw += data
    sock.close()
    return tally.report()


def zmq_reader(endpoint: str, feed_endpoint: str, after: int, count: int) -> dict[str, Any]:
    tally = Tally(after, count)
    with FeedSubscriber(endpoint, feed_endpoint, after_seq=after) as feed:
        print("ready", flush=True)
        while not tally.done:
            entry = feed.next(timeout=60)
            if entry is None:
                raise RuntimeError("no entry for 60 s")
            tally.seq(entry.seq)
    return tally.report()


# --- the run ------------------------------------------------------------------------------------


def produce(endpoint: str, count: int, chunk: int = 1000) -> float:
    """Complete ``count`` operations, pipelined; seconds it took."""
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
        t0 = time.perf_counter()
        for batch in batches:
            with client.pipeline() as p:
                for spec, result in batch:
                    p.register_operation(spec)
                    p.provisioning_succeeded(spec.id)
                    p.complete_operation(spec.id, result)
        return time.perf_counter() - t0


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


def readers(
    kind: str, args: argparse.Namespace, ready: dict[str, Any], port: int, after: int
) -> list[subprocess.Popen[str]]:
    """``args.subscribers`` reader processes after seq ``after``, once each said it is ready."""
    role = [sys.executable, __file__, "--role", kind, "--after", str(after), "--ops", str(args.ops)]
    role += ["--port", str(port), "--endpoint", ready["endpoint"]]
    role += ["--feed-endpoint", ready["feed_endpoint"]]
    procs = [
        subprocess.Popen(role, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(args.subscribers)
    ]
    for r in procs:
        assert r.stdout is not None
        if r.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a {kind} reader did not start")
    return procs


def results(kind: str, procs: list[subprocess.Popen[str]], t0: int | None) -> dict[str, Any]:
    """What the readers reported: aggregate entries/s from ``t0`` (None: from the first
    entry any of them received), gaps, duplicates."""
    out = []
    for r in procs:
        assert r.stdout is not None
        line = r.stdout.readline()
        r.wait(300)
        if not line.startswith("{"):
            raise RuntimeError(f"a {kind} reader failed (exit {r.returncode})")
        out.append(json.loads(line))
    start = min(x["first_ns"] for x in out) if t0 is None else t0
    elapsed = (max(x["last_ns"] for x in out) - start) / 1e9
    delivered = sum(x["received"] for x in out)
    return {
        "entries": delivered,
        "entries_per_s": round(delivered / elapsed, 1),
        "elapsed_s": round(elapsed, 3),
        "gaps": sum(x["gaps"] for x in out),
        "duplicates": sum(x["duplicates"] for x in out),
    }


def phase(
    kind: str, args: argparse.Namespace, ready: dict[str, Any], port: int, pids: dict[str, int]
) -> dict[str, Any]:
    """Live readers while the producer runs, then readers of the same entries as a backlog."""
    with RegistryClient(ready["endpoint"], timeout=30) as client:
        after = client.watermark()
    live = readers(kind, args, ready, port, after)
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    log(f"{kind}: {args.subscribers} readers after seq {after}; producing {args.ops}")
    t0 = now_ns()
    produce_s = produce(ready["endpoint"], args.ops)
    out = results(kind, live, t0)
    out["producer_ops_per_s"] = round(args.ops / produce_s, 1)
    out["cpu_s"] = {name: round(cpu_seconds(pid) - cpu0[name], 2) for name, pid in pids.items()}
    log(f"{kind}: {args.subscribers} readers of the {args.ops} entries as a backlog")
    out["backlog"] = results(kind, readers(kind, args, ready, port, after), None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--role", choices=("http", "zmq"), help=argparse.SUPPRESS)
    parser.add_argument("--after", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--feed-endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "http":
        print(json.dumps(http_reader(args.port, args.after, args.ops)), flush=True)
        return
    if args.role == "zmq":
        out = zmq_reader(args.endpoint, args.feed_endpoint, args.after, args.ops)
        print(json.dumps(out), flush=True)
        return
    if args.quick:
        args.ops = 2_000
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
        "http": http,
        "zmq": zmq,
        "http_over_zmq": round(ratio, 3),
        "backlog_http_over_zmq": round(backlog, 3),
        "target_entries_per_s": 10_000,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
