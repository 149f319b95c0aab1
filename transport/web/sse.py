"""The completion feed as Server-Sent Events: ``GET /v1/registries/{registry}/feed``.

docs/http.md §3 is the contract. One ``FeedHub`` per registry (transport/web/feedhub.py)
reads the feed once and keeps a bounded ring of encoded events; each stream here holds
only a cursor. It sends from the ring while its cursor is inside it, else pages the
registry with ``list_since(cursor, 1024)`` on the gateway's shared client, turning
entries the registry no longer holds into one ``event: gap``. Every event carries
``id:``, so ``Last-Event-ID`` resumes exactly after the last one a client saw.

Memory: a stream that does not read blocks in ``send`` (uvicorn stops the writer at its
transport's high-water mark), holding one slice (at most ``_SLICE`` events, 64 KiB) and its
cursor; nothing is queued per stream, so a stalled reader costs the gateway nothing
that grows (tests/web/test_sse.py measures it).

Lifetime: ``attach(gateway)`` at startup, ``await detach(gateway)`` at shutdown (it
closes every hub and ends every open stream with a clean end of body). uvicorn waits
for open responses *before* the app's shutdown, so ``attach`` also detaches as soon as
``gateway.closing`` is set (``GatewayHandle.stop`` sets it first); ``detach`` may run twice.

Errors (401, 404, 422, 503) are answered here as the gateway's JSON errors
(``transport.web.errors``), so the route needs no wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from collections.abc import AsyncGenerator
from typing import Any, Final, Protocol

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from actors.errors import OpsLifecycleError, OpsregError, Unavailable
from actors.model import CompletionEntry, enc_hook
from transport.aio import AsyncRegistryClient
from transport.web.config import GatewayConfig
from transport.web.errors import HttpError, body_of, status_of
from transport.web.feedhub import (
    DEFAULT_CAPACITY,
    PAGE,
    TAKE_BYTES,
    FeedHub,
    list_since_fitting,
)

__all__ = ["attach", "detach", "feed", "hub_stats"]

log = logging.getLogger(__name__)

#: streams that may read a page from the registry at once (per event loop)
_PAGERS: Final = 8
_pager_gates: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def _pagers() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _pager_gates.get(loop)
    if gate is None:
        for old in [k for k in _pager_gates if k.is_closed()]:
            del _pager_gates[old]
        gate = _pager_gates[loop] = asyncio.Semaphore(_PAGERS)
    return gate


#: events one ``send`` carries at most (a slice copied out of the ring)
_SLICE: Final = 256
#: seconds a stream waits before asking a registry that did not answer again
_RETRY: Final = 0.5
#: seconds ``detach`` lets open streams end cleanly before cancelling them
_GRACE: Final = 1.0
_SEQ = re.compile(r"[0-9]{1,19}")
_MAX_SEQ: Final = (1 << 63) - 1

_json = msgspec.json.Encoder(enc_hook=enc_hook)
#: a proxy must neither cache nor buffer the stream (nginx reads X-Accel-Buffering)
_HEADERS: Final = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class Gateway(Protocol):
    """What the feed needs of the gateway (``transport.web.app.Gateway``)."""

    config: GatewayConfig
    #: set when the gateway stops: every stream ends
    closing: asyncio.Event

    async def client(self, registry: str) -> AsyncRegistryClient: ...

    def authorize(self, request: Request, *, write: bool) -> None: ...


class _Hubs:
    """The hubs and open streams of one gateway."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hubs: dict[str, FeedHub] = {}
        self.streams: set[asyncio.Task[None]] = set()
        self.closed = False
        self.watcher: asyncio.Task[None] | None = None


_ATTACHED: weakref.WeakKeyDictionary[Any, _Hubs] = weakref.WeakKeyDictionary()


def attach(gateway: Gateway, capacity: int = DEFAULT_CAPACITY) -> None:
    """Make ``gateway`` ready to serve feeds (each registry's hub keeps ``capacity`` entries).

    Called on the gateway's loop (its lifespan): from then on ``gateway.closing`` detaches it.
    """
    hubs = _ATTACHED[gateway] = _Hubs(capacity)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on a loop: only ``detach`` ends the streams
        return
    hubs.watcher = loop.create_task(_detach_on_closing(gateway))


async def _detach_on_closing(gateway: Gateway) -> None:
    await gateway.closing.wait()
    await detach(gateway)


async def detach(gateway: Gateway) -> None:
    """Close every hub of ``gateway`` and end its open streams (idempotent)."""
    hubs = _ATTACHED.get(gateway)
    if hubs is None:
        return
    hubs.closed = True
    watcher, hubs.watcher = hubs.watcher, None
    if watcher is not None and watcher is not asyncio.current_task():
        watcher.cancel()
    for hub in list(hubs.hubs.values()):
        await hub.close()
    if hubs.streams:
        _done, pending = await asyncio.wait(set(hubs.streams), timeout=_GRACE)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_GRACE)


def hub_stats(gateway: Gateway) -> dict[str, Any]:
    """``{"streams": open streams, "hubs": {registry: {"last", "first", "received", "resets"}}}``."""
    hubs = _ATTACHED.get(gateway)
    if hubs is None:
        return {"streams": 0, "hubs": {}}
    return {
        "streams": len(hubs.streams),
        "hubs": {
            name: {
                "last": hub.last,
                "first": hub.first(),
                "received": hub.received,
                "resets": hub.resets,
            }
            for name, hub in hubs.hubs.items()
        },
    }


# --- the route ------------------------------------------------------------------------------------


async def feed(request: Request) -> Response:
    """``GET /v1/registries/{registry}/feed``: the completion feed as ``text/event-stream``."""
    try:
        return await _feed(request)
    except (HttpError, OpsLifecycleError) as exc:
        headers = {"WWW-Authenticate": "Bearer"} if status_of(exc) == 401 else None
        return JSONResponse(body_of(exc), status_of(exc), headers=headers)


async def _feed(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    gateway.authorize(request, write=False)
    registry = request.path_params["registry"]
    explicit, source, start = _start(request)
    hubs = _ATTACHED.get(gateway)
    if hubs is None or hubs.closed or gateway.closing.is_set():
        raise HttpError(503, "Unavailable", "the gateway is shutting down", {})
    client = await gateway.client(registry)
    if hubs.closed:  # detached while the client was made
        raise HttpError(503, "Unavailable", "the gateway is shutting down", {})
    hub = hubs.hubs.get(registry)
    if hub is None:
        hub = hubs.hubs[registry] = FeedHub(client, _completion, hubs.capacity)
        hub.start()
    cursor, watermark = await _resolve(client, hub, explicit, source, start)
    if request.method == "HEAD":  # the headers a GET would get, and no stream
        return Response(None, headers=_HEADERS, media_type=_EventStream.media_type)
    events = _events(hub, client, cursor, watermark, gateway.config.sse_heartbeat)
    return _EventStream(events, hubs)


def _start(request: Request) -> tuple[int | None, str, str]:
    """The stream's explicit cursor (``Last-Event-ID``, else ``after``), its source, ``start``."""
    header = request.headers.get("last-event-id", "").strip()
    after = request.query_params.get("after")
    start = request.query_params.get("start")
    if start is not None and start not in ("now", "oldest"):
        raise _invalid("start", f"start must be 'now' or 'oldest', got {start[:40]!r}")
    explicit = _seq(after, "after") if after is not None else None
    if header:  # what a reconnecting browser sends: it wins over the page's own ?after
        return _seq(header, "Last-Event-ID"), "Last-Event-ID", start or "now"
    return explicit, "after", start or "now"


def _seq(text: str, name: str) -> int:
    if not _SEQ.fullmatch(text) or int(text) > _MAX_SEQ:
        raise _invalid(name, f"{name} must be a seq (a non-negative integer), got {text[:40]!r}")
    return int(text)


def _invalid(name: str, message: str) -> HttpError:
    return HttpError(422, "InvalidArgument", message, {"name": name})


async def _resolve(
    client: AsyncRegistryClient, hub: FeedHub, explicit: int | None, source: str, start: str
) -> tuple[int, int | None]:
    """Where the stream starts and the registry's watermark (None: not reachable now).

    A cursor ahead of the registry's watermark can never be satisfied (another registry,
    or a store that lost what the client saw): 422. When the registry cannot be reached,
    an explicit cursor still starts (the stream waits for it), as does ``now`` once the
    hub knows the watermark; only then is the answer 503.
    """
    try:
        batch = await client.list_since(explicit or 0, 1)
    except Unavailable:
        if explicit is not None:
            return explicit, None
        if start == "now" and hub.last >= 0:
            return hub.last, None
        raise
    if explicit is not None:
        if explicit > batch.watermark:
            raise _invalid(
                source,
                f"{source} {explicit} is ahead of the registry's watermark {batch.watermark}",
            )
        return explicit, batch.watermark
    if start == "oldest":
        return batch.dropped_through, batch.watermark
    return batch.watermark, batch.watermark


# --- events ---------------------------------------------------------------------------------------


def _completion(entry: CompletionEntry) -> bytes:
    return b"id: %d\nevent: completion\ndata: %s\n\n" % (entry.seq, _json.encode(entry))


def _event(name: str, data: dict[str, Any], seq: int | None) -> bytes:
    head = b"" if seq is None else b"id: %d\n" % seq
    return head + b"event: %s\ndata: %s\n\n" % (name.encode(), _json.encode(data))


async def _events(
    hub: FeedHub,
    client: AsyncRegistryClient,
    cursor: int,
    watermark: int | None,
    heartbeat: float,
) -> AsyncGenerator[bytes, None]:
    """The stream after ``hello``: entries after ``cursor``, gaps, heartbeat comments."""
    hello = {"watermark": watermark, "after": cursor}
    yield b"retry: 1000\n" + _event("hello", hello, cursor)
    beat = time.monotonic() + heartbeat
    while not hub.closed:
        taken = hub.take(cursor, _SLICE)
        if taken is None:
            chunk, cursor = await _page(hub, client, cursor)
        else:
            chunk, cursor = taken
            if not chunk:
                await hub.wait_past(cursor, beat - time.monotonic())
        if chunk:
            yield chunk
        if time.monotonic() >= beat and not hub.closed:
            yield b": heartbeat %d\n\n" % max(hub.last, cursor)
            beat = time.monotonic() + heartbeat


async def _page(hub: FeedHub, client: AsyncRegistryClient, cursor: int) -> tuple[bytes, int]:
    """Entries after ``cursor`` read from the registry (a cursor older than the ring), at
    most ``TAKE_BYTES`` of them past the first (the rest is asked for again next time), so
    a stream that stops reading holds one such chunk, whatever the entries' size. At most
    ``_PAGERS`` streams of a process page at once: a page is up to the server's reply
    limit while it is being read."""
    try:
        async with _pagers():
            batch, _ = await list_since_fitting(client, cursor, PAGE)
    except OpsregError as exc:
        log.info("feed stream waiting for the registry: %s", exc)
        await hub.wait_past(hub.last, _RETRY)  # a pause that ends at once on close
        return b"", cursor
    parts: list[bytes] = []
    if batch.dropped_through > cursor:
        gap = {"from": cursor + 1, "through": batch.dropped_through}
        parts.append(_event("gap", gap, batch.dropped_through))
        cursor = batch.dropped_through
    size = 0
    for entry in batch.entries:
        if entry.seq == cursor + 1:
            parts.append(event := _completion(entry))
            cursor = entry.seq
            size += len(event)
            if size >= TAKE_BYTES:
                break
    if not parts:  # nothing after the cursor yet (the registry is behind it): no busy loop
        await hub.wait_past(hub.last, _RETRY)
    return b"".join(parts), cursor


class _EventStream(Response):
    """A ``text/event-stream`` response that ends when the client goes or the hub closes."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None], hubs: _Hubs) -> None:
        # As StreamingResponse: no ``body``, so no content-length (the body is chunked).
        self.status_code = 200
        self.background = None
        self.init_headers(_HEADERS)
        self.events = events
        self.hubs = hubs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        pump = asyncio.ensure_future(self._pump(send))
        listen = asyncio.ensure_future(_disconnected(receive))
        self.hubs.streams.add(pump)
        try:
            await asyncio.wait((pump, listen), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.hubs.streams.discard(pump)
            for task in (pump, listen):
                task.cancel()
            for task in (pump, listen):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
            await self.events.aclose()

    async def _pump(self, send: Send) -> None:
        async for chunk in self.events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
