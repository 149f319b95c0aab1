"""Auth (docs/http.md §4) and the commands that start a gateway: ``opsreg web`` and
``opsreg serve --http``, as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.transport.conftest import ROOT, ServerProcess
from tests.web.conftest import TOKEN, Web, start_gateway, start_server
from tests.web.http_util import Http
from transport.cli.ready import await_ready
from transport.web import GatewayConfig

pytestmark = pytest.mark.timeout(60)

SPEC = {"spec": {"owner_session_id": "auth", "display_name": "x"}}


def test_changing_state_needs_the_token_reading_does_not(web_token: Web) -> None:
    anon = Http(web_token.url)
    status, body = anon.post("register_operation", SPEC)
    assert (status, body["error"]["class"]) == (401, "Unauthorized")
    wrong = Http(web_token.url, token="not-the-token-at-all")
    assert wrong.post("register_operation", SPEC)[0] == 401
    op = Http(web_token.url, token=TOKEN).ok("register_operation", SPEC)["id"]
    # Reads are open by default: read-only methods, GETs.
    assert anon.ok("snapshot", {"op_id": op})["status"] == "provisioning"
    assert anon.get(f"/v1/registries/default/operations/{op}")[0] == 200
    # A refused call changed nothing.
    assert anon.ok("watermark") == 0
    assert len(anon.get("/v1/registries/default/operations")[1]["items"]) == 1


def test_closed_reads_need_the_token_too(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    gateway = start_gateway(server, token=TOKEN, reads_need_token=True)
    try:
        anon = Http(gateway.url)
        assert anon.get("/v1/registries/default/operations")[0] == 401
        assert anon.post("watermark", {})[0] == 401
        assert anon.get(f"/v1/registries/default/operations?access_token={TOKEN}")[0] == 200
        assert Http(gateway.url, token=TOKEN).get("/v1/registries/default/stats")[0] == 200
    finally:
        gateway.stop()
        server.stop()


def test_a_non_loopback_address_without_a_token_is_refused() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        GatewayConfig(host="0.0.0.0").check()
    GatewayConfig(host="0.0.0.0", token=TOKEN).check()
    GatewayConfig(host="localhost").check()
    GatewayConfig(host="::1").check()
    with pytest.raises(ValueError, match="needs --http-token-file"):
        GatewayConfig(reads_need_token=True).check()


def opsreg(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transport.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_web_command_refuses_bad_setups_in_one_line(tmp_path: Path) -> None:
    done = opsreg("web", "--http", "0.0.0.0:0")
    assert done.returncode == 2
    assert "not a loopback address" in done.stderr and "--http-token-file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    short = tmp_path / "token"
    short.write_text("abc\n")
    done = opsreg("web", "--http", "127.0.0.1:0", "--http-token-file", str(short))
    assert done.returncode == 2 and "at least 16 characters" in done.stderr
    done = opsreg("web", "--http", "127.0.0.1:0", "--http-token-file", str(tmp_path / "none"))
    assert done.returncode == 2 and "No such file" in done.stderr


def start(*args: str, ready: Path) -> tuple[subprocess.Popen[str], dict[str, Any], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "transport.cli", *args, "--ready-file", str(ready)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    info, line = await_ready(proc, ready)
    assert info is not None, (line, proc.stderr.read() if proc.stderr else "")
    return proc, info, line


def test_opsreg_web_serves_a_running_server_and_stops_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        proc, info, line = start(
            "web",
            "--endpoint",
            server.endpoint,
            "--feed-endpoint",
            server.feed_endpoint,
            "--http",
            "127.0.0.1:0",
            ready=tmp_path / "web.json",
        )
        assert f"dashboard on {info['http']}/" in line
        http = Http(info["http"])
        assert http.get("/healthz") == (200, {"ok": True, "registry": "default", "watermark": 0})
        op = http.ok("register_operation", SPEC)["id"]
        assert http.ok("snapshot", {"op_id": op})["display_name"] == "x"
        status, page = http.get("/")
        assert status == 200 and page.lower().startswith("<!doctype html")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "opsreg web stopped cleanly" in out
    finally:
        server.stop()


def test_serve_with_http_prints_the_dashboard_address(tmp_path: Path) -> None:
    proc, info, line = start(
        "serve",
        "--memory",
        "--endpoint",
        "tcp://127.0.0.1:0",
        "--feed-endpoint",
        "tcp://127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        ready=tmp_path / "serve.json",
    )
    try:
        assert info["http"].startswith("http://127.0.0.1:")
        assert f"dashboard on {info['http']}/" in line
        http = Http(info["http"])
        assert http.ok("register_operation", SPEC)["id"]
        assert json.loads(json.dumps(http.get("/v1/registries")[1])) == {"registries": ["default"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "opsreg stopped cleanly" in out


def test_a_busy_http_port_is_named_and_exits_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = opsreg("web", "--http", f"127.0.0.1:{port}")
    assert done.returncode == 1, done.stderr
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in done.stderr
