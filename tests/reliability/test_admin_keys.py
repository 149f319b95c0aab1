"""Admin methods under CURVE: only the keys in ``--curve-admin`` may call them.

Real key pairs from ``opsreg keys``, a real ``opsreg serve`` process, real clients.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import zmq
import zmq.auth

from actors import OperationStatus
from actors.errors import PermissionDenied
from tests.conftest import background_spec
from tests.transport.conftest import ROOT, ServerProcess
from transport import RegistryClient, codec

pytestmark = pytest.mark.timeout(60)


@dataclass
class Keys:
    server_public: Path
    server_secret: Path
    allowed: Path
    admin_dir: Path
    root: Path

    def pair(self, name: str) -> tuple[bytes, bytes]:
        public, secret = zmq.auth.load_certificate(self.root / "client" / f"{name}.key_secret")
        assert secret is not None
        return public, secret

    def client(self, endpoint: str, name: str) -> RegistryClient:
        server_key, _ = zmq.auth.load_certificate(self.server_public)
        return RegistryClient(
            endpoint, timeout=10, curve_server_key=server_key, curve_keypair=self.pair(name)
        )


def _opsreg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transport.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    root = tmp_path / "keys"
    for name in ("worker", "admin"):
        made = _opsreg("keys", str(root), "--client", name)
        assert made.returncode == 0, made.stderr
    admin_dir = tmp_path / "admins"
    admin_dir.mkdir()
    shutil.copy(root / "allowed" / "admin.key", admin_dir / "admin.key")
    return Keys(
        server_public=root / "server" / "server.key",
        server_secret=root / "server" / "server.key_secret",
        allowed=root / "allowed",
        admin_dir=admin_dir,
        root=root,
    )


@pytest.fixture
def server(keys: Keys, tmp_path: Path) -> Iterator[ServerProcess]:
    sp = ServerProcess(
        tmp_path / "data",
        "--curve-secret",
        str(keys.server_secret),
        "--curve-allow",
        str(keys.allowed),
        "--curve-admin",
        str(keys.admin_dir),
    ).start()
    try:
        yield sp
    finally:
        sp.stop()


def test_only_admin_keys_may_terminate_owner(keys: Keys, server: ServerProcess) -> None:
    with (
        keys.client(server.endpoint, "worker") as worker,
        keys.client(server.endpoint, "admin") as admin,
    ):
        spec = background_spec("admin test")
        worker.register_operation(spec)
        worker.provisioning_succeeded(spec.id)
        before = worker.snapshot(spec.id)
        assert before is not None and before.status == OperationStatus.RUNNING

        for method, args in (
            ("terminate_owner", ("not yours",)),
            ("collect_completed", ()),
            ("cancel_wait_all", ()),
        ):
            with pytest.raises(PermissionDenied) as refused:
                getattr(worker, method)(*args)
            assert refused.value == PermissionDenied(method)
        assert worker.snapshot(spec.id) == before  # nothing changed

        admin.terminate_owner("admin says stop")
        after = worker.snapshot(spec.id)
        assert after is not None and after.status == OperationStatus.TERMINATED


def _ask(sock: zmq.Socket[bytes], method: str, *args: object) -> codec.Reply:
    # A state-changing request must name the server's incarnation: learn it from a ping.
    sock.send(codec.encode_request(0, "", "default", "ping", ()))
    assert sock.poll(10_000), "no answer to ping"
    pong = codec.decode_reply(sock.recv())
    epoch = msgspec.msgpack.decode(bytes(pong.payload))
    epoch = epoch if isinstance(epoch, str) else epoch[0]
    sock.send(codec.encode_request(1, epoch, "default", method, args))
    assert sock.poll(10_000), f"no answer to {method}"
    return codec.decode_reply(sock.recv())


def test_taking_over_an_admins_routing_id_does_not_make_one_admin(
    keys: Keys, server: ServerProcess
) -> None:
    """The key is read from each message: a ROUTER_HANDOVER of the routing id gains nothing."""
    server_key, _ = zmq.auth.load_certificate(keys.server_public)
    ctx = zmq.Context()

    def dealer(name: str) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.routing_id = b"the-admin"
        sock.curve_publickey, sock.curve_secretkey = keys.pair(name)
        sock.curve_serverkey = server_key
        sock.connect(server.endpoint)
        return sock

    try:
        admin = dealer("admin")
        assert _ask(admin, "cancel_wait_all").status == codec.OK
        impostor = dealer("worker")
        reply = _ask(impostor, "cancel_wait_all")
        assert reply.status == codec.ERROR
        assert codec.decode_error(reply.payload) == PermissionDenied("cancel_wait_all")
    finally:
        ctx.destroy(linger=0)


def test_admin_keys_must_be_allowed_keys(keys: Keys, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    zmq.auth.create_certificates(stranger, "stranger")
    (stranger / "stranger.key_secret").unlink()
    proc = _opsreg(
        "serve",
        "--endpoint",
        "tcp://127.0.0.1:0",
        "--feed-endpoint",
        "tcp://127.0.0.1:0",
        "--memory",
        "--curve-secret",
        str(keys.server_secret),
        "--curve-allow",
        str(keys.allowed),
        "--curve-admin",
        str(stranger),
    )
    assert proc.returncode == 1
    assert "not in the allow-list" in proc.stderr
