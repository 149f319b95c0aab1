"""Running the gateway: uvicorn on a thread of its own, for ``opsreg web`` and ``serve --http``.

The gateway's event loop runs on one thread (uvicorn's ``Server.serve``); the caller's
thread keeps signals and the lifetime. :func:`start_gateway_thread` returns once the
socket is listening (or raises why it could not start), so the address printed is one
that answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import uvicorn

from transport.web.app import create_app
from transport.web.config import GatewayConfig

__all__ = ["GatewayHandle", "start_gateway_thread"]

log = logging.getLogger("opsreg.web")


class GatewayHandle:
    """A gateway running on its own thread: ``url`` where it listens, ``stop()`` to end it."""

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        url: str,
        loop: asyncio.AbstractEventLoop,
        closing: Any,
    ) -> None:
        self._server = server
        self._thread = thread
        self._loop = loop
        self._closing = closing
        #: the gateway's base address, ``http://HOST:PORT``
        self.url = url

    @property
    def running(self) -> bool:
        """Whether the gateway's thread is still serving."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (open feeds end at once) and join the thread."""
        if self._thread.is_alive():
            # Long-lived responses (the SSE feed) end on this, so the graceful shutdown
            # does not wait for them.
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._closing)
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the gateway did not stop within %.0f s", timeout)


def start_gateway_thread(config: GatewayConfig, ready_timeout: float = 30.0) -> GatewayHandle:
    """Start a gateway for ``config`` on a new thread; return once it listens.

    Raises ``ValueError`` for a configuration refused by :meth:`GatewayConfig.check`
    and ``OSError`` when the address cannot be bound.
    """
    config.check()
    app = create_app(config)
    uv = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        limit_concurrency=config.max_connections,
        ws="none",
    )
    server = uvicorn.Server(uv)
    failure: list[BaseException] = []

    loop = asyncio.new_event_loop()

    def run() -> None:
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.serve())
        except BaseException as exc:  # SystemExit when the bind fails
            failure.append(exc)
            log.error("the gateway stopped: %r", exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="opsreg-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while thread.is_alive() and not server.started and time.monotonic() < deadline:
        thread.join(0.01)  # uvicorn says it listens only through this flag
    if not server.started:
        server.should_exit = True
        thread.join(5)
        if failure and not isinstance(failure[0], SystemExit):
            raise OSError(f"the gateway could not start: {failure[0]!r}")
        raise OSError(f"the gateway could not listen on {config.host}:{config.port}")
    port = _bound_port(server) or config.port
    host = f"[{config.host}]" if ":" in config.host else config.host
    closing = app.state.gateway.closing.set
    return GatewayHandle(server, thread, f"http://{host}:{port}", loop, closing)


def _bound_port(server: Any) -> int | None:
    for s in getattr(server, "servers", []):
        for sock in getattr(s, "sockets", []):
            return int(sock.getsockname()[1])
    return None
