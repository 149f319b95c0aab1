"""A client that cannot complete the handshake is told why, not "is opsreg serve running"."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq.auth

from tests.transport.conftest import ROOT, ServerProcess

pytestmark = pytest.mark.timeout(120)


def stats(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSREG_")}
    return subprocess.run(
        [sys.executable, "-m", "transport.cli", "stats", "--endpoint", endpoint, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def the_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    root = tmp_path / "keys"
    for d in ("server", "client", "allowed", "stranger"):
        (root / d).mkdir(parents=True)
    zmq.auth.create_certificates(root / "server", "server")
    public, _ = zmq.auth.create_certificates(root / "client", "client")
    zmq.auth.create_certificates(root / "stranger", "stranger")
    (root / "allowed" / "client.key").write_bytes(Path(public).read_bytes())
    return root


@pytest.fixture
def curve_server(tmp_path: Path, keys: Path) -> Iterator[ServerProcess]:
    sp = ServerProcess(
        tmp_path / "data",
        "--curve-secret",
        str(keys / "server" / "server.key_secret"),
        "--curve-allow",
        str(keys / "allowed"),
    ).start()
    try:
        yield sp
    finally:
        sp.stop()


def test_a_client_without_keys_is_told_the_server_requires_curve(
    curve_server: ServerProcess,
) -> None:
    line = the_line(stats(curve_server.endpoint, "--timeout", "0.5"))
    assert "requires CURVE" in line and "--curve-server" in line, line
    assert "running there" not in line


def test_a_key_the_server_does_not_allow_is_named_as_refused(
    curve_server: ServerProcess, keys: Path
) -> None:
    server_key = str(keys / "server" / "server.key")
    stranger = str(keys / "stranger" / "stranger.key_secret")
    proc = stats(curve_server.endpoint, "--timeout", "0.5", "--curve-server", server_key)
    assert proc.returncode == 2  # --curve-server without --curve-cert is bad usage
    line = the_line(
        stats(
            curve_server.endpoint,
            "--timeout",
            "0.5",
            "--curve-server",
            server_key,
            "--curve-cert",
            stranger,
        )
    )
    assert "refused this client's CURVE key" in line and "--curve-allow" in line, line


def test_a_curve_client_of_a_plain_server_is_told_so(
    server_process: ServerProcess, keys: Path
) -> None:
    line = the_line(
        stats(
            server_process.endpoint,
            "--timeout",
            "0.5",
            "--curve-server",
            str(keys / "server" / "server.key"),
            "--curve-cert",
            str(keys / "client" / "client.key_secret"),
        )
    )
    assert "the server does not" in line, line


def test_nothing_listening_keeps_the_plain_question() -> None:
    line = the_line(stats("tcp://127.0.0.1:9", "--timeout", "0.5"))
    assert "is `opsreg serve` running there?" in line
