"""What one misbehaving client or subscriber costs an ``opsreg serve`` process.

Three scenarios, each against a fresh server subprocess with its default settings,
each with a calm client on another registry timing its own calls meanwhile:

``unread_replies``
    a raw DEALER pipelines R ``list_operations`` (N operations with long display
    names registered first, so each reply is megabytes) and never reads.
``registry_names``
    a raw DEALER asks for the watermark of K distinct registry names, in windows of
    50, reading the answers (``ok`` or ``LimitExceeded``).
``stalled_subscriber``
    a SUB that never reads while C lifecycles with 16 KB display names complete.

Prints one JSON line: per scenario the server's VmRSS before and at its peak (MB),
its peak thread count, and the calm client's slowest call (ms).

    python bench/server_bounds.py [--quick]
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from actors import OperationId, OperationKind, OperationResult, OperationSpec
from bench._common import spawn_server, status_kib, stop_server
from transport import RegistryClient, codec


def _spec(name: str) -> OperationSpec:
    return OperationSpec(
        id=OperationId.new(),
        kind=OperationKind.BACKGROUND_TOOL_OP,
        owner_session_id="bench",
        display_name=name,
        source_label="bench",
    )


def _scenario(tmp: str, body: Callable[[str, str, Callable[[], None]], dict[str, Any]]) -> Any:
    """Run ``body(endpoint, feed_endpoint, calm)`` against a fresh server, sampling it."""
    cmd = [sys.executable, "-m", "transport.cli", "serve", "--endpoint", "tcp://127.0.0.1:0"]
    cmd += ["--feed-endpoint", "tcp://127.0.0.1:0", "--data", tempfile.mkdtemp(dir=tmp)]
    proc, ready, line = spawn_server(cmd, os.path.join(tmp, "server.log"))
    if ready is None:
        stop_server(proc)
        raise RuntimeError(f"server did not start: {line!r}")
    endpoint, feed = ready["endpoint"], ready["feed_endpoint"]
    peak = {"rss": 0, "threads": 0, "calm_ms": 0.0}
    done = threading.Event()
    calm_client = RegistryClient(endpoint, registry="calm", timeout=60)

    def calm() -> None:
        started = time.monotonic()
        calm_client.watermark()
        peak["calm_ms"] = max(peak["calm_ms"], (time.monotonic() - started) * 1000)

    def sample() -> None:
        while not done.wait(0.02):
            peak["rss"] = max(peak["rss"], status_kib(proc.pid, "VmRSS"))
            peak["threads"] = max(peak["threads"], status_kib(proc.pid, "Threads"))
            calm()

    try:
        calm()
        before = status_kib(proc.pid, "VmRSS")
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out = body(endpoint, feed, calm)
        done.set()
        sampler.join()
        return {
            **out,
            "rss_mb_before": round(before / 1024, 1),
            "rss_mb_peak": round(peak["rss"] / 1024, 1),
            "threads_peak": peak["threads"],
            "calm_client_slowest_ms": round(peak["calm_ms"], 1),
        }
    finally:
        done.set()
        calm_client.close()
        stop_server(proc)


def unread_replies(ops: int, requests: int) -> Callable[[str, str, Callable[[], None]], Any]:
    def body(endpoint: str, feed: str, calm: Callable[[], None]) -> dict[str, Any]:
        with RegistryClient(endpoint, timeout=120) as cli:
            for start in range(0, ops, 1000):
                futures = [
                    cli.submit("register_operation", _spec(f"{i:06d}" + "n" * 1000))
                    for i in range(start, min(ops, start + 1000))
                ]
                for f in futures:
                    f.get(timeout=120)
            reply_bytes = len(codec.encode_reply(0, codec.OK, cli.list_operations()))
            hog = zmq.Context.instance().socket(zmq.DEALER)
            hog.setsockopt(zmq.LINGER, 0)
            hog.setsockopt(zmq.RCVHWM, 1)
            hog.setsockopt(zmq.RCVBUF, 4096)
            hog.connect(endpoint)
            marker = _spec("marker")
            for req_id in range(requests):
                hog.send(codec.encode_request(req_id, "", "default", "list_operations", ()))
            hog.send(codec.encode_request(-1, "", "default", "register_operation", (marker,)))
            while cli.snapshot(marker.id) is None:
                pass
            cli.watermark()
            hog.close()
        return {"requests": requests, "reply_mb": round(reply_bytes / 2**20, 2)}

    return body


def registry_names(names: int) -> Callable[[str, str, Callable[[], None]], Any]:
    def body(endpoint: str, feed: str, calm: Callable[[], None]) -> dict[str, Any]:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 120_000)
        sock.connect(endpoint)
        outcomes: dict[str, int] = {}
        for start in range(0, names, 50):
            count = min(50, names - start)
            for i in range(start, start + count):
                sock.send(codec.encode_request(i, "", f"name-{i}", "watermark", ()))
            got = 0
            while got < count:
                for reply in codec.decode_replies(sock.recv()):
                    got += 1
                    what = "ok"
                    if reply.status != codec.OK:
                        what = type(codec.decode_error(reply.payload)).__name__
                    outcomes[what] = outcomes.get(what, 0) + 1
        sock.close()
        return {"names": names, "outcomes": outcomes}

    return body


def stalled_subscriber(completions: int) -> Callable[[str, str, Callable[[], None]], Any]:
    def body(endpoint: str, feed: str, calm: Callable[[], None]) -> dict[str, Any]:
        stalled = zmq.Context.instance().socket(zmq.SUB)
        stalled.setsockopt(zmq.LINGER, 0)
        stalled.setsockopt(zmq.RCVHWM, 1)
        stalled.setsockopt(zmq.RCVBUF, 4096)
        stalled.setsockopt(zmq.SUBSCRIBE, codec.topic("default"))
        stalled.connect(feed)
        with RegistryClient(endpoint, timeout=120) as cli:
            cli.watermark()
            stalled.poll(10_000)
            for start in range(0, completions, 300):
                specs = [_spec(f"{i:06d}" + "x" * 16_000) for i in range(start, start + 300)]
                futures = []
                for spec in specs:
                    futures.append(cli.submit("register_operation", spec))
                    futures.append(cli.submit("provisioning_succeeded", spec.id))
                    result = OperationResult(id=spec.id, content="done")
                    futures.append(cli.submit("complete_operation", spec.id, result))
                for f in futures:
                    f.get(timeout=120)
        stalled.close()
        return {"completions": completions, "entry_kb": 16}

    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    args = parser.parse_args(argv)
    q = args.quick
    out: dict[str, Any] = {"bench": "server_bounds", "quick": q}
    with tempfile.TemporaryDirectory() as tmp:
        out["unread_replies"] = _scenario(
            tmp, unread_replies(1500 if q else 5000, 150 if q else 840)
        )
        out["registry_names"] = _scenario(tmp, registry_names(2000 if q else 20_000))
        out["stalled_subscriber"] = _scenario(tmp, stalled_subscriber(8000 if q else 20_000))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
