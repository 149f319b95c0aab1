"""The connection cap and the CURVE allow-list in one ZAP handler, on an in-process server."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import parse_monitor_message

from transport import RegistryServer, ServerConfig, codec

pytestmark = pytest.mark.timeout(60)

PING = codec.encode_request(0, "", "default", "ping", ())
_ENDED = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class Dialer:
    """Opens DEALERs to one server and reports whether each handshake was accepted."""

    def __init__(self, endpoint: str, server_key: bytes | None = None) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.endpoint = endpoint
        self.server_key = server_key
        self.open: list[zmq.Socket[bytes]] = []  # a dropped socket would close its connection

    def dial(self, keypair: tuple[bytes, bytes] | None = None) -> tuple[zmq.Socket[bytes], bool]:
        sock: zmq.Socket[bytes] = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        self.open.append(sock)
        if self.server_key is not None:
            public, secret = keypair or zmq.curve_keypair()
            sock.curve_publickey, sock.curve_secretkey = public, secret
            sock.curve_serverkey = self.server_key
        monitor = sock.get_monitor_socket(_ENDED)
        sock.connect(self.endpoint)
        sock.send(PING)
        assert monitor.poll(15_000), "the handshake neither succeeded nor failed"
        event = parse_monitor_message(monitor.recv_multipart())["event"]
        sock.disable_monitor()
        monitor.close(linger=0)
        accepted = event == zmq.EVENT_HANDSHAKE_SUCCEEDED
        if accepted:
            assert sock.poll(10_000) and codec.decode_reply(sock.recv()).status == codec.PONG
        return sock, accepted

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def _server(tmp_path: Path, **config: object) -> RegistryServer:
    return RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "data"),
            **config,  # type: ignore[arg-type]
        )
    ).start()


@pytest.fixture
def curve(tmp_path: Path) -> Iterator[tuple[RegistryServer, Dialer, tuple[bytes, bytes]]]:
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server_public, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, client_secret = zmq.auth.create_certificates(keys, "client")
    (allowed / "client.key").write_bytes(Path(client_public).read_bytes())
    public, secret = zmq.auth.load_certificate(client_secret)
    assert secret is not None
    srv = _server(
        tmp_path,
        curve_secret_file=str(server_secret),
        curve_allow_dir=str(allowed),
        max_clients=2,
    )
    dialer = Dialer(srv.endpoint, zmq.auth.load_certificate(server_public)[0])
    try:
        yield srv, dialer, (public, secret)
    finally:
        dialer.close()
        srv.stop()


def test_allowed_keys_are_capped_and_unknown_keys_refused_below_the_cap(
    curve: tuple[RegistryServer, Dialer, tuple[bytes, bytes]],
) -> None:
    _, dialer, allowed = curve
    assert not dialer.dial()[1]  # a stranger, with the server empty
    first, ok = dialer.dial(allowed)
    assert ok
    assert dialer.dial(allowed)[1]
    assert not dialer.dial(allowed)[1]  # an allowed key, but the cap is reached
    first.close(linger=0)
    deadline = time.monotonic() + 15
    while not dialer.dial(allowed)[1]:  # once the server has seen the close
        assert time.monotonic() < deadline, "the freed place was never given out"
    assert not dialer.dial()[1]  # the stranger is still refused at the cap


def test_refusals_are_logged_once_per_interval_with_a_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="transport.admission")
    srv = _server(tmp_path, max_clients=1)
    dialer = Dialer(srv.endpoint)
    start = time.monotonic()
    try:
        assert dialer.dial()[1]
        for _ in range(5):
            assert not dialer.dial()[1]
    finally:
        dialer.close()
        srv.stop()  # logs what the last interval refused
    elapsed = time.monotonic() - start
    counts = [
        int(m.group(1))
        for r in caplog.records
        if (m := re.match(r"refused (\d+) connection\(s\)", r.getMessage()))
    ]
    assert sum(counts) == 5
    assert len(counts) <= 2 + int(elapsed // 10)  # one line per 10 s interval, plus the last
    assert any(r.getMessage().startswith("file descriptor limit") for r in caplog.records)
