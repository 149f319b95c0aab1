"""The feed as Server-Sent Events (docs/http.md §3) against a real ``opsreg serve`` process."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.transport.conftest import ServerProcess
from tests.web.sse_util import Event, Gateway, GatewayProcess, SseStream, complete
from transport import RegistryClient
from transport.web import sse
from transport.web.config import GatewayConfig

FEED = "/v1/registries/default/feed"


def open_gateway(server: ServerProcess, heartbeat: float = 15.0) -> Gateway:
    config = GatewayConfig(
        endpoint=server.endpoint,
        feed_endpoint=server.feed_endpoint,
        port=0,
        sse_heartbeat=heartbeat,
        call_timeout=2.0,
    )
    return Gateway(config).start()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, Gateway]]:
    server = ServerProcess(tmp_path / "data", "--max-completed", "100000").start()
    gateway = open_gateway(server)
    try:
        yield server, gateway
    finally:
        gateway.stop()
        server.stop()


def completions(stream: SseStream, count: int) -> list[int]:
    """Read until ``count`` completion events arrived; their seqs (no gap events allowed)."""
    seqs: list[int] = []
    for ev in stream.events():
        assert ev.event in ("completion", "hello") or ev.comment is not None, ev
        if ev.event == "completion":
            assert ev.json()["seq"] == ev.seq
            seqs.append(ev.seq)
            if len(seqs) == count:
                return seqs
    raise AssertionError(f"the stream ended after {len(seqs)} of {count}")


def hello(stream: SseStream) -> Event:
    assert stream.status == 200, stream.body()
    assert stream.headers["content-type"].startswith("text/event-stream")
    ev = stream.next()
    assert ev is not None and ev.event == "hello" and ev.retry == 1000, ev
    return ev


def produce(server: ServerProcess, count: int, chunk: int = 500) -> None:
    with RegistryClient(server.endpoint, timeout=30) as client:
        for start in range(0, count, chunk):
            complete(client, min(chunk, count - start))


def test_reconnect_with_last_event_id_while_completions_continue(
    served: tuple[ServerProcess, Gateway],
) -> None:
    server, gateway = served
    total = 4000
    producer = threading.Thread(target=produce, args=(server, total))
    producer.start()
    try:
        seqs: list[int] = []
        headers: dict[str, str] = {}
        path = FEED + "?after=0"
        for _ in range(8):  # reconnect every 500 entries, as a browser would
            stream = SseStream(gateway.port, path, headers)
            ev = hello(stream)
            assert ev.json()["after"] == (seqs[-1] if seqs else 0)
            seqs += completions(stream, 500)
            stream.close()
            headers = {"Last-Event-ID": str(seqs[-1])}  # wins over ?after=0
    finally:
        producer.join(60)
    assert seqs == list(range(1, total + 1))


def test_entries_older_than_retention_arrive_as_one_gap(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--max-completed", "16").start()
    gateway = open_gateway(server)
    try:
        produce(server, 1500)  # the feed keeps max(4 x 16, 1024) = 1024 entries
        for after, first in ((0, 1), (100, 101)):
            stream = SseStream(gateway.port, f"{FEED}?after={after}")
            assert hello(stream).json() == {"watermark": 1500, "after": after}
            gap = stream.next()
            assert gap is not None and gap.event == "gap"
            assert gap.json() == {"from": first, "through": 476} and gap.seq == 476
            assert completions(stream, 1024) == list(range(477, 1501))
            stream.close()
        # a cursor inside what is held: no gap
        stream = SseStream(gateway.port, f"{FEED}?after=1000")
        hello(stream)
        assert completions(stream, 500) == list(range(1001, 1501))
        stream.close()
    finally:
        gateway.stop()
        server.stop()


def test_where_a_stream_starts(served: tuple[ServerProcess, Gateway]) -> None:
    server, gateway = served
    produce(server, 50)
    now = SseStream(gateway.port, FEED)  # default: now
    assert hello(now).json() == {"watermark": 50, "after": 50}
    explicit_now = SseStream(gateway.port, FEED + "?start=now")
    assert hello(explicit_now).json()["after"] == 50
    oldest = SseStream(gateway.port, FEED + "?start=oldest")
    assert hello(oldest).json() == {"watermark": 50, "after": 0}
    after = SseStream(gateway.port, FEED + "?after=20&start=now")  # after wins
    assert hello(after).seq == 20
    produce(server, 10)
    assert completions(now, 10) == list(range(51, 61))
    assert completions(explicit_now, 10) == list(range(51, 61))
    assert completions(oldest, 60) == list(range(1, 61))
    assert completions(after, 40) == list(range(21, 61))
    for s in (now, explicit_now, oldest, after):
        s.close()


def test_heartbeats_on_an_idle_stream(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    gateway = open_gateway(server, heartbeat=0.1)
    try:
        produce(server, 3)
        stream = SseStream(gateway.port, FEED)
        hello(stream)
        beats = [stream.next() for _ in range(3)]
        assert all(b is not None and b.comment == "heartbeat 3" for b in beats), beats
        stream.close()
    finally:
        gateway.stop()
        server.stop()


@pytest.mark.parametrize(
    ("query", "headers", "name"),
    [
        ("", {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ("", {"Last-Event-ID": "-1"}, "Last-Event-ID"),
        ("?after=-1", {}, "after"),
        ("?after=1e3", {}, "after"),
        ("?after=99999999999999999999", {}, "after"),
        ("?start=sideways", {}, "start"),
        ("?after=5", {}, "after"),  # ahead of the registry's watermark (0)
        ("?after=0", {"Last-Event-ID": "7"}, "Last-Event-ID"),
    ],
)
def test_a_bad_start_is_422(
    served: tuple[ServerProcess, Gateway], query: str, headers: dict[str, str], name: str
) -> None:
    _server, gateway = served
    stream = SseStream(gateway.port, FEED + query, headers)
    assert stream.status == 422
    body = json.loads(stream.body())
    assert body["error"]["class"] == "InvalidArgument"
    assert body["error"]["fields"] == {"name": name}
    stream.close()


def test_disconnect_and_closing_end_streams_promptly(
    served: tuple[ServerProcess, Gateway],
) -> None:
    server, gateway = served
    produce(server, 5)
    streams = [SseStream(gateway.port, FEED + "?after=0") for _ in range(3)]
    for s in streams:
        hello(s)
        assert completions(s, 5) == [1, 2, 3, 4, 5]
    assert gateway.call(_streams(gateway)) == 3
    streams[0].close()  # the client goes: its generator ends without waiting for a heartbeat
    assert gateway.call(_streams(gateway, until=2)) == 2
    # the gateway stopping (GatewayHandle.stop sets closing first): the others end cleanly
    gateway.loop.call_soon_threadsafe(gateway.gateway.closing.set)
    for s in streams[1:]:
        assert s.next() is None and s.ended
    assert gateway.call(_streams(gateway, until=0)) == 0


async def _streams(gateway: Gateway, until: int | None = None) -> int:
    """The gateway's open streams, once no more than ``until`` are left."""
    streams = sse._ATTACHED[gateway.gateway].streams
    while until is not None and len(streams) > until:
        await asyncio.wait(set(streams), timeout=5, return_when=asyncio.FIRST_COMPLETED)
    return len(streams)


def test_the_server_killed_and_restarted_mid_stream(
    served: tuple[ServerProcess, Gateway],
) -> None:
    server, gateway = served
    produce(server, 300)
    # 1..300 come from list_since pages (the hub starts at 300), the rest from the hub
    stream = SseStream(gateway.port, FEED + "?after=0", timeout=60)
    hello(stream)
    seqs = completions(stream, 150)
    server.kill9()
    server.start()  # same ports, same data directory
    produce(server, 300)
    seqs += completions(stream, 450)
    assert seqs == list(range(1, 601))
    stream.close()


def test_a_hub_behind_retention_restarts_and_streams_see_the_gap(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--max-completed", "16").start()
    gateway = open_gateway(server)
    try:
        produce(server, 10)
        stream = SseStream(gateway.port, FEED + "?after=0")
        hello(stream)
        assert completions(stream, 10) == list(range(1, 11))
        # the gateway's loop stalls while 1,500 completions pass (the feed keeps 1,024)
        held, release = threading.Event(), threading.Event()

        def stall() -> None:
            held.set()
            release.wait(60)

        gateway.loop.call_soon_threadsafe(stall)
        assert held.wait(10)
        try:
            produce(server, 1500)
        finally:
            release.set()
        gap = stream.next()
        assert gap is not None and gap.event == "gap", gap
        assert gap.json() == {"from": 11, "through": 486}
        assert completions(stream, 1024) == list(range(487, 1511))
        stats = gateway.call(_stats(gateway))
        assert stats["hubs"]["default"]["resets"] == 1
        assert stats["hubs"]["default"]["last"] == 1510
        stream.close()
    finally:
        gateway.stop()
        server.stop()


async def _stats(gateway: Gateway) -> dict[str, Any]:
    return sse.hub_stats(gateway.gateway)


def test_a_stream_that_never_reads_does_not_grow_the_gateway(tmp_path: Path) -> None:
    """8 streams stall while 20,000 completions flow: the gateway's RSS stays within
    8 MiB of what it was with a full ring (measured: +1.3 MB; a design that queues per
    stream grew 17.7 MB with 5 stalled streams), and a reading stream gets every one."""
    server = ServerProcess(tmp_path / "data", "--max-completed", "100000").start()
    gateway = GatewayProcess(server, tmp_path / "web.ready.json")
    try:
        reader = SseStream(gateway.port, FEED + "?after=0", timeout=120)
        hello(reader)
        got: list[int] = []
        flowing = threading.Thread(target=lambda: got.extend(completions(reader, 30_000)))
        flowing.start()
        produce(server, 10_000)  # fills the hub's ring (10,000 entries)
        warm = SseStream(gateway.port, FEED + "?after=9999")
        hello(warm)
        assert completions(warm, 1) == [10_000]  # the hub is there
        before = gateway.rss_kib()
        stalled = [SseStream(gateway.port, FEED + "?after=10000") for _ in range(8)]
        for s in stalled:
            hello(s)
        produce(server, 20_000)
        flowing.join(120)
        assert got == list(range(1, 30_001))  # the other streams kept flowing
        after = gateway.rss_kib()
        assert after - before < 8 * 1024, (before, after)
        # nothing was dropped for the stalled ones: they were only held back
        assert completions(stalled[0], 20_000) == list(range(10_001, 30_001))
        for s in [reader, warm, *stalled]:
            s.close()
    finally:
        gateway.stop()
        server.stop()


def test_a_stream_with_a_cursor_starts_while_the_server_is_down(
    served: tuple[ServerProcess, Gateway],
) -> None:
    server, gateway = served
    produce(server, 20)
    server.kill9()
    stream = SseStream(gateway.port, FEED, {"Last-Event-ID": "10"}, timeout=60)
    assert hello(stream).json() == {"watermark": None, "after": 10}
    oldest = SseStream(gateway.port, FEED + "?start=oldest")
    assert oldest.status == 503  # where "oldest" is cannot be known now
    assert json.loads(oldest.body())["error"]["class"] in ("Unavailable", "CallTimeout")
    oldest.close()
    server.start()
    produce(server, 5)
    assert completions(stream, 15) == list(range(11, 26))
    stream.close()


def test_the_feed_is_a_read_behind_the_token(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    token = "a-token-for-the-feed-tests"
    config = GatewayConfig(
        endpoint=server.endpoint,
        feed_endpoint=server.feed_endpoint,
        port=0,
        token=token,
        reads_need_token=True,
    )
    gateway = Gateway(config).start()
    try:
        refused = SseStream(gateway.port, FEED)
        assert refused.status == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert json.loads(refused.body())["error"]["class"] == "Unauthorized"
        refused.close()
        unknown = SseStream(gateway.port, "/v1/registries/other/feed?access_token=" + token)
        assert unknown.status == 404, unknown.body()
        unknown.close()
        for stream in (
            SseStream(gateway.port, FEED + "?access_token=" + token),  # EventSource's way
            SseStream(gateway.port, FEED, {"Authorization": "Bearer " + token}),
        ):
            assert hello(stream).json() == {"watermark": 0, "after": 0}
            stream.close()
    finally:
        gateway.stop()
        server.stop()


def test_head_answers_the_headers_without_a_stream(served: tuple[ServerProcess, Gateway]) -> None:
    _server, gateway = served
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            f"HEAD {FEED} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):  # the gateway closes: no stream was started
            answer += chunk
    head = answer.decode().lower()
    assert head.startswith("http/1.1 200") and "content-type: text/event-stream" in head
    assert gateway.call(_streams(gateway)) == 0
