"""A greedy HTTP caller costs the gateway bounded threads, fds and memory, read from /proc
of a real ``opsreg web`` process; the other callers keep being served."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.transport.conftest import ROOT, ServerProcess
from tests.web.http_util import Http, until
from transport.cli.ready import await_ready

pytestmark = pytest.mark.timeout(90)


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    fields["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return fields


def test_a_greedy_caller_is_bounded_and_others_are_served(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    ready = tmp_path / "web.json"
    web = subprocess.Popen(
        [
            sys.executable, "-m", "transport.cli", "web",
            "--endpoint", server.endpoint, "--feed-endpoint", server.feed_endpoint,
            "--http", "127.0.0.1:0", "--ready-file", str(ready), "--log-level", "warning",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    socks: list[socket.socket] = []
    try:
        info, line = await_ready(web, ready)
        assert info is not None, line
        http = Http(info["http"])
        op = http.ok("register_operation", {"spec": {"owner_session_id": "g"}})["id"]
        http.ok("provisioning_succeeded", {"op_id": op})
        for _ in range(20):  # warm up the gateway's paths before the baseline
            http.ok("snapshot", {"op_id": op})
        base = proc_status(web.pid)
        parts = urlsplit(info["http"])
        body = json.dumps({"op_id": op, "timeout": 60}).encode()
        request = (
            b"POST /v1/registries/default/register_watcher HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        for _ in range(400):  # the greedy caller: 400 held watchers, never read
            s = socket.create_connection((parts.hostname, parts.port))
            s.sendall(request)
            socks.append(s)
        # 256 are held (the per-caller bound), the rest refused at once with 429.
        until(lambda: http.ok("snapshot", {"op_id": op})["watcher_count"] == 256)
        refused = 0
        for s in socks:
            s.settimeout(0.01)
            with contextlib.suppress(TimeoutError):
                refused += b" 429 " in s.recv(4096)
        assert refused == 400 - 256
        during = proc_status(web.pid)
        # Others are served while it holds its share.
        t0 = time.monotonic()
        assert http.ok("watermark") == 0
        assert time.monotonic() - t0 < 2
        assert during["Threads"] <= base["Threads"] + 2, (base, during)
        assert during["fds"] <= base["fds"] + 400 + 8, (base, during)
        assert during["VmRSS"] - base["VmRSS"] < 64 * 1024, (base, during)  # KiB
        for s in socks:
            s.close()
        socks.clear()
        until(lambda: http.ok("snapshot", {"op_id": op})["watcher_count"] == 0)
        until(lambda: proc_status(web.pid)["fds"] <= base["fds"] + 8)
    finally:
        for s in socks:
            s.close()
        web.send_signal(signal.SIGTERM)
        web.communicate(timeout=20)
        server.stop()
    assert web.returncode == 0
