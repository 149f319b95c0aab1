"""A plain HTTP client for the gateway's tests (stdlib ``http.client``, one connection a call)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.transport.conftest import ROOT, _drain
from transport.cli.ready import await_ready


class Http:
    """Calls to a gateway at ``url``: ``post(method, body)``, ``get(path)``; each returns
    ``(status, parsed JSON or text)``."""

    def __init__(self, url: str, registry: str = "default", token: str | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.registry = registry
        self.token = token

    def request(
        self,
        verb: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            h = {"content-type": "application/json", **(headers or {})}
            if self.token is not None and "authorization" not in {k.lower() for k in h}:
                h["authorization"] = f"Bearer {self.token}"
            conn.request(verb, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            kind = resp.getheader("content-type", "")
            return resp.status, json.loads(data) if "json" in kind else data.decode()
        finally:
            conn.close()

    def post(self, method: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        raw = b"" if body is None else json.dumps(body).encode()
        return self.request("POST", f"/v1/registries/{self.registry}/{method}", raw, **kw)

    def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.request("GET", path, **kw)

    def ok(self, method: str, body: Any = None, **kw: Any) -> Any:
        status, value = self.post(method, body, **kw)
        assert status == 200, (method, status, value)
        return value


def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """``check()``'s first truthy value, polled with an Event-paced deadline."""
    pace = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        pace.wait(0.02)
    raise AssertionError("condition not met in time")


class GatewayProcess:
    """``opsreg web`` in a child process (port 0; the address from its ``--ready-file``)."""

    def __init__(self, endpoint: str, feed_endpoint: str, ready_file: Path, *extra: str) -> None:
        self.log: list[str] = []
        cmd = [
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
            str(ready_file),
            *extra,
        ]
        ready_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        ready, line = await_ready(self.proc, ready_file, timeout=30)
        if ready is None:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"opsreg web did not start: {line!r} {err!r}")
        #: the gateway's base address, ``http://127.0.0.1:PORT``, its port and its pid
        self.url: str = ready["http"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.pid = int(ready["pid"])
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=_drain, args=(stream, self.log), daemon=True).start()

    def rss_kib(self) -> int:
        """The gateway process's resident memory (``VmRSS`` of /proc/PID/status)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise KeyError("VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
