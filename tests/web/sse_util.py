"""Helpers of the SSE feed's tests: a gateway on a real port, a raw SSE reader, a producer."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from actors import OperationId, OperationKind, OperationResult, OperationSpec
from tests.web import http_util
from transport import RegistryClient
from transport.web import create_app
from transport.web.config import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Gateway:
    """The gateway (``create_app``) served as ``start_gateway_thread`` does, its loop at hand."""

    config: GatewayConfig
    app: Starlette = field(init=False)
    port: int = 0
    loop: asyncio.AbstractEventLoop = field(init=False)

    def __post_init__(self) -> None:
        self.app = create_app(self.config)
        self.loop = asyncio.new_event_loop()
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.config.port,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=2,
                ws="none",
            )
        )
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        await self._server.serve()

    def start(self) -> Gateway:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "no gateway"
            self._thread.join(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run ``coro`` on the gateway's loop and return its value."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """As ``GatewayHandle.stop``: ``closing`` first (open feeds end), then uvicorn."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.gateway.closing.set)
            self._server.should_exit = True
            self._thread.join(10)
            assert not self._thread.is_alive(), "the gateway did not stop"


@dataclass
class Event:
    """One SSE event as read off the wire (``comment`` for a ``:`` line)."""

    event: str = "message"
    id: str | None = None
    data: str = ""
    retry: int | None = None
    comment: str | None = None

    @property
    def seq(self) -> int:
        assert self.id is not None
        return int(self.id)

    def json(self) -> Any:
        return json.loads(self.data)


class SseStream:
    """A raw HTTP/1.1 GET over a socket, its chunked body parsed as SSE events."""

    def __init__(
        self, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 20.0
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buf = b""
        self._body = b""
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        self.ended = False

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the gateway closed the connection")
        self._buf += data

    def _until(self, mark: bytes) -> bytes:
        while mark not in self._buf:
            self._recv()
        out, _, self._buf = self._buf.partition(mark)
        return out

    def _chunk(self) -> None:
        size = int(self._until(b"\r\n"), 16)
        while len(self._buf) < size + 2:
            self._recv()
        self._body += self._buf[:size]
        self._buf = self._buf[size + 2 :]
        if size == 0:
            self.ended = True

    def body(self) -> bytes:
        """A non-streamed answer's body (an error's JSON)."""
        length = int(self.headers.get("content-length", "0"))
        while len(self._buf) < length:
            self._recv()
        return self._buf[:length]

    def next(self) -> Event | None:
        """The next event (or comment); None at the end of the stream."""
        while b"\n\n" not in self._body:
            if self.ended:
                return None
            self._chunk()
        block, _, self._body = self._body.partition(b"\n\n")
        ev = Event()
        for line in block.decode().split("\n"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                ev.comment = value
            elif name == "data":
                ev.data = value if not ev.data else ev.data + "\n" + value
            elif name == "id":
                ev.id = value
            elif name == "event":
                ev.event = value
            elif name == "retry":
                ev.retry = int(value)
        return ev

    def events(self) -> Iterator[Event]:
        while (ev := self.next()) is not None:
            yield ev

    def close(self) -> None:
        self.sock.close()


def complete(client: RegistryClient, count: int, name: str = "sse") -> list[OperationId]:
    """Register, start and complete ``count`` operations, pipelined; their ids."""
    ids = []
    with client.pipeline() as p:
        for _ in range(count):
            op_id = OperationId.new()
            p.register_operation(
                OperationSpec(
                    id=op_id,
                    kind=OperationKind.BACKGROUND_TOOL_OP,
                    owner_session_id="sse-test",
                    display_name=name,
                    source_label="test",
                )
            )
            p.provisioning_succeeded(op_id)
            p.complete_operation(op_id, OperationResult(id=op_id, content="ok"))
            ids.append(op_id)
    return ids


# --- a gateway in its own process (for its RSS) ------------------------------------------------


class GatewayProcess(http_util.GatewayProcess):
    """``opsreg web`` in a child process for ``server``, with this SSE heartbeat."""

    def __init__(self, server: Any, ready_file: Path, heartbeat: float = 15.0) -> None:
        super().__init__(
            server.endpoint, server.feed_endpoint, ready_file, "--sse-heartbeat", str(heartbeat)
        )
