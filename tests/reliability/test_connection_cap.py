"""More connections than the server has file descriptors for.

A real ``opsreg serve`` runs with ``RLIMIT_NOFILE`` soft = hard = 256; this
process opens more raw DEALER connections than that. The server must refuse
the ones beyond its cap (their handshake fails) instead of running out of
descriptors, where libzmq's accept loop spins at full CPU and nobody new gets in.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import parse_monitor_message

from tests.transport.conftest import BANNER, ROOT
from transport import RegistryClient, Unavailable, codec

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

LIMIT = 256
FLOOD = 300  # beyond the server's cap and beyond its fd limit itself
BURST = 60  # of those, opened at once after the cap is reached
OUTCOME_WITHIN = 15.0  # seconds for a connection to be served or refused (loaded machine)
PING = codec.encode_request(0, "", "default", "ping", ())
_ANSWERED = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


class Server:
    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "server.err"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "transport.cli", "serve",
                    "--endpoint", "tcp://127.0.0.1:0",
                    "--feed-endpoint", "tcp://127.0.0.1:0",
                    "--data", str(tmp_path / "data"),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                preexec_fn=_limit_fds,
            )  # fmt: skip
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline()
        match = BANNER.search(self.banner)
        assert match is not None, (self.banner, self.log.read_text())
        self.endpoint = match.group(1)
        # A server that announces no cap has none but the fd limit.
        cap = re.search(r"up to (\d+) connections", self.banner)
        self.cap = int(cap.group(1)) if cap else LIMIT

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4 * FLOOD + 512:
        pytest.skip(f"this process needs about {4 * FLOOD + 512} descriptors, hard limit {hard}")
    if soft != resource.RLIM_INFINITY and soft < 4 * FLOOD + 512:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    srv = Server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


class Peer:
    """A raw DEALER that sent one ping, and a monitor that tells how its handshake ended."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> None:
        self.sock: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.monitor = self.sock.get_monitor_socket(_ANSWERED)
        self.sock.connect(endpoint)
        self.sock.send(PING)
        self.served: bool | None = None  # None: the handshake has not ended yet

    def take_events(self) -> None:
        while self.served is None and self.monitor.poll(0):
            event = parse_monitor_message(self.monitor.recv_multipart())
            self.served = event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(linger=0)
        self.sock.close(linger=0)


def _settle(peers: list[Peer], server: Server) -> None:
    """Wait until every peer's handshake has ended, served or refused."""
    poller = zmq.Poller()
    for peer in peers:
        poller.register(peer.monitor, zmq.POLLIN)
    deadline = time.monotonic() + OUTCOME_WITHIN
    while True:
        for peer in peers:
            peer.take_events()
        open_ = [p for p in peers if p.served is None]
        if not open_:
            return
        left = deadline - time.monotonic()
        assert left > 0, (
            f"{len(open_)} connection(s) neither served nor refused within {OUTCOME_WITHIN}s; "
            f"server fds {server.fds()} of {LIMIT}"
        )
        poller.poll(int(left * 1000) + 1)


def _pong(sock: zmq.Socket[bytes], within: float) -> float | None:
    """Seconds until the answer to a ping just sent, or None if none came ``within``."""
    start = time.monotonic()
    if not sock.poll(int(within * 1000)):
        return None
    assert codec.decode_reply(sock.recv()).status == codec.PONG
    return time.monotonic() - start


def test_connections_beyond_the_cap_are_refused_and_the_server_stays_idle(
    server: Server,
) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 8 * FLOOD)
    peers: list[Peer] = []
    try:
        existing = Peer(ctx, server.endpoint)
        _settle([existing], server)
        assert existing.served and _pong(existing.sock, 10) is not None

        # One at a time up to the cap, so it is reached exactly, then a burst beyond it.
        while len(peers) < FLOOD - BURST:
            peers.append(Peer(ctx, server.endpoint))
            _settle(peers[-1:], server)
        burst = [Peer(ctx, server.endpoint) for _ in range(BURST)]
        peers += burst
        _settle(burst, server)

        served = [p for p in peers if p.served]
        refused = [p for p in peers if not p.served]
        assert 1 + len(served) == server.cap  # the existing client holds one place
        assert len(refused) == FLOOD - len(served)
        for peer in served:
            assert _pong(peer.sock, 10) is not None
        assert not any(p.sock.poll(0) for p in refused)  # no service beyond the cap

        with RegistryClient(server.endpoint, timeout=1.0) as late, pytest.raises(Unavailable):
            late.watermark()

        # Two seconds of the existing client pinging: the server stays nearly idle.
        cpu_before, window_start = server.cpu_seconds(), time.monotonic()
        fds, latencies = [], []
        pace = threading.Event()
        while time.monotonic() - window_start < 2.0:
            existing.sock.send(PING)
            latencies.append(_pong(existing.sock, 5))
            fds.append(server.fds())
            pace.wait(0.1)
        cpu = (server.cpu_seconds() - cpu_before) / (time.monotonic() - window_start)
        print(f"server cpu {cpu:.0%}, fds up to {max(fds)} of {LIMIT}, cap {server.cap}")
        assert cpu < 0.25, f"server used {cpu:.0%} of a core while holding {server.cap} clients"
        assert max(fds) < LIMIT
        assert None not in latencies, "the existing client lost its answers"
        assert max(x for x in latencies if x is not None) < 1.0

        for peer in peers:
            peer.close()
        peers.clear()
        # The server may not have seen every close yet: a refused newcomer tries again.
        deadline = time.monotonic() + OUTCOME_WITHIN
        while True:
            newcomer = Peer(ctx, server.endpoint)
            peers.append(newcomer)
            _settle([newcomer], server)
            if newcomer.served:
                break
            assert time.monotonic() < deadline, "no new client was served after the others left"
        assert _pong(newcomer.sock, 10) is not None
    finally:
        for peer in peers:
            peer.close()
        ctx.destroy(linger=0)
        server.stop()
    log = server.log.read_text()
    assert "file descriptor limit is 256" in log
    assert re.search(r"refused \d+ connection\(s\): \d+ live, at the cap of \d+", log), log
