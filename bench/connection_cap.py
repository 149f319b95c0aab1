"""More connections than the server has file descriptors for, all at once.

Starts ``opsreg serve`` with ``RLIMIT_NOFILE`` soft = hard = ``--limit`` (1,024) and
opens ``--connections`` (2,000) raw DEALER sockets at once, each sending one ping.
Prints one JSON line: how many were answered within 5 s, the server's CPU share and
descriptor count over the next 2 s, the ping latency of a client connected before the
flood, and whether a new client is served once the flood has disconnected.

    python bench/connection_cap.py [--limit N] [--connections N] [--quick]
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
from _common import ROOT, cpu_seconds, stop_server

sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import json
import resource
import subprocess
import tempfile
import threading
import time
from typing import Any

import zmq

from transport import codec
from transport.cli.ready import await_ready

PING = codec.encode_request(0, "", "default", "ping", ())


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pong_ms(sock: zmq.Socket[bytes], within: float) -> float | None:
    start = time.monotonic()
    sock.send(PING)
    if not sock.poll(int(within * 1000)):
        return None
    sock.recv()
    return round((time.monotonic() - start) * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=1024)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="--limit 256 --connections 400")
    args = parser.parse_args()
    if args.quick:
        args.limit, args.connections = 256, 400
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 3 * args.connections + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.limit, args.limit))

    data = tempfile.mkdtemp(prefix="opsreg-cap-")
    with open(os.path.join(data, "server.err"), "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "transport.cli", "serve", "--data", data,
             "--endpoint", "tcp://127.0.0.1:0", "--feed-endpoint", "tcp://127.0.0.1:0",
             "--ready-file", os.path.join(data, "ready.json")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, preexec_fn=limit,
        )  # fmt: skip
    assert proc.stdout is not None
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 2 * args.connections + 64)
    result: dict[str, Any] = {"bench": "connection_cap", "fd_limit": args.limit}
    try:
        ready, _ = await_ready(proc, os.path.join(data, "ready.json"))
        assert ready is not None, "server did not start"
        endpoint = ready["endpoint"]

        def dealer() -> zmq.Socket[bytes]:
            sock: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.connect(endpoint)
            return sock

        existing = dealer()
        assert pong_ms(existing, 10) is not None
        result["server_fds_idle"] = fds(proc.pid)
        flood = [dealer() for _ in range(args.connections)]
        for sock in flood:
            sock.send(PING)
        pending, deadline = set(flood), time.monotonic() + 5
        while pending and time.monotonic() < deadline:
            pending = {s for s in pending if not s.poll(0)}
            threading.Event().wait(0.05)
        result["connections"] = args.connections
        result["answered"] = args.connections - len(pending)
        before, start = cpu_seconds(proc.pid), time.monotonic()
        latencies, fd_counts = [], []
        while time.monotonic() - start < 2.0:
            latencies.append(pong_ms(existing, 5))
            fd_counts.append(fds(proc.pid))
            threading.Event().wait(0.1)
        result["server_cpu_percent"] = round(
            100 * (cpu_seconds(proc.pid) - before) / (time.monotonic() - start)
        )
        result["server_fds_max"] = max(fd_counts)
        answered = [x for x in latencies if x is not None]
        result["existing_client_lost_pings"] = len(latencies) - len(answered)
        result["existing_client_max_ms"] = max(answered) if answered else None
        for sock in flood:
            sock.close(linger=0)
        served = None
        deadline = time.monotonic() + 10
        while served is None and time.monotonic() < deadline:
            served = pong_ms(dealer(), 1)  # the server may not have seen every close yet
        result["new_client_served_after_flood"] = served is not None
    finally:
        ctx.destroy(linger=0)
        stop_server(proc)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
