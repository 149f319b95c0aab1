"""Two hosts: the server in one network namespace, a worker and a subscriber in another,
over tcp on a veth pair with CURVE. Skipped, with the reason, where namespaces cannot
be created (not root, no iproute2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq.auth

from tests.transport.conftest import BANNER, ROOT

pytestmark = pytest.mark.timeout(120)

SERVER_IP = "192.0.2.1"  # TEST-NET-1: exists only inside the namespaces this test makes
CLIENT_IP = "192.0.2.2"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def hosts() -> Iterator[tuple[str, str]]:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    tag = f"opsreg{os.getpid() % 100000}"
    server_ns, client_ns = f"{tag}s", f"{tag}c"
    made = _ip("netns", "add", server_ns)
    if made.returncode != 0:
        pytest.skip(f"cannot create network namespaces here: {made.stderr.strip()}")
    try:
        _ip("netns", "add", client_ns).check_returncode()
        steps = [
            ("link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b"),
            ("link", "set", f"{tag}a", "netns", server_ns),
            ("link", "set", f"{tag}b", "netns", client_ns),
            ("-n", server_ns, "addr", "add", f"{SERVER_IP}/24", "dev", f"{tag}a"),
            ("-n", client_ns, "addr", "add", f"{CLIENT_IP}/24", "dev", f"{tag}b"),
            ("-n", server_ns, "link", "set", f"{tag}a", "up"),
            ("-n", client_ns, "link", "set", f"{tag}b", "up"),
            ("-n", server_ns, "link", "set", "lo", "up"),
            ("-n", client_ns, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot wire the namespaces: ip {' '.join(step)}: {done.stderr}")
        yield server_ns, client_ns
    finally:
        _ip("netns", "del", server_ns)
        _ip("netns", "del", client_ns)


def test_worker_and_subscriber_on_another_host_over_curve(
    hosts: tuple[str, str], tmp_path: Path
) -> None:
    server_ns, client_ns = hosts
    keys = tmp_path / "keys"
    allowed = tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server_public, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, client_secret = zmq.auth.create_certificates(keys, "client")
    shutil.copy(client_public, allowed / "client.key")
    server = subprocess.Popen(
        [
            "ip", "netns", "exec", server_ns, sys.executable, "-m", "transport.cli", "serve",
            "--endpoint", f"tcp://{SERVER_IP}:5555",
            "--feed-endpoint", f"tcp://{SERVER_IP}:5556",
            "--data", str(tmp_path / "data"),
            "--curve-secret", str(server_secret),
            "--curve-allow", str(allowed),
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert BANNER.search(banner), (banner, server.stderr.read() if server.stderr else "")
        client = subprocess.run(
            [
                "ip", "netns", "exec", client_ns, sys.executable, "-m",
                "tests.reliability.multihost_client",
                f"tcp://{SERVER_IP}:5555", f"tcp://{SERVER_IP}:5556",
                str(server_public), str(client_secret), "25",
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        report = json.loads(client.stdout.strip().splitlines()[-1])
        assert len(report["ids"]) == 25
        assert report["seqs"] == list(range(1, 26))
        assert report["watermark"] == 25
        # A client on the same host without an allowed key gets nothing.
        stranger = subprocess.run(
            [
                "ip", "netns", "exec", client_ns, sys.executable, "-c",
                "from transport import RegistryClient, Unavailable\n"
                f"c = RegistryClient('tcp://{SERVER_IP}:5555', timeout=1.0)\n"
                "try:\n    c.watermark(); print('answered')\n"
                "except Unavailable:\n    print('refused')\n"
                "c.close()",
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert stranger.stdout.strip() == "refused", stranger.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
