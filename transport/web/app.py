"""The gateway: an ASGI app (Starlette) that is a client of a registry server.

Routes (docs/http.md): ``POST /v1/registries/{registry}/{method}`` for every entry of the
method table; GET reads (operations paged, one operation, stats, registries); the SSE feed
(transport/web/sse.py); ``/openapi.json`` and ``/docs`` (transport/web/openapi.py); the
dashboard's static files at ``/``. The gateway holds one ``AsyncRegistryClient`` per
registry it is asked about (at most ``max_registries``); it keeps no state that matters,
so several can run against one server and any can be restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from actors.calls import METHODS
from actors.errors import InvalidArgument, OpsLifecycleError
from actors.model import OperationKind, OperationStatus
from actors.paging import MAX_PAGE
from transport.aio import AsyncRegistryClient
from transport.web import guard, jsonio, openapi, sse
from transport.web.config import GatewayConfig
from transport.web.errors import HttpError, body_of, status_of

__all__ = ["Gateway", "create_app"]

log = logging.getLogger("opsreg.web")

STATIC = Path(__file__).with_name("static")
#: rows of a GET operations page when the caller names no limit
DEFAULT_ROWS = 100
_DIGITS = re.compile(r"[0-9]{1,9}")  # str.isdigit() is true for "²", which int() refuses


class Gateway:
    """What the routes share: the configuration and one client per registry."""

    def __init__(self, config: GatewayConfig) -> None:
        config.check()
        self.config = config
        self._clients: dict[str, AsyncRegistryClient] = {}
        #: held futures by caller address (docs/http.md §1, "Futures are held")
        self.held: dict[str, int] = {}
        self.held_total = 0
        self._lock = asyncio.Lock()
        #: set when the gateway stops: long-lived responses (the SSE feed) end on it
        self.closing = asyncio.Event()

    def offered(self) -> list[str]:
        """The registries the selector lists: the configured ones, or those in use."""
        if self.config.registries is not None:
            return list(self.config.registries)
        return sorted(set(self._clients) | {"default"})

    async def client(self, registry: str) -> AsyncRegistryClient:
        """The shared client of ``registry`` (404 for a registry this gateway does not offer)."""
        found = self._clients.get(registry)
        if found is not None:
            return found
        if not self.config.offers(registry):
            raise HttpError(
                404, "UnknownRegistry", f"registry {registry[:128]!r} is not offered here"
            )
        async with self._lock:
            found = self._clients.get(registry)
            if found is None:
                if len(self._clients) >= self.config.max_registries:
                    raise HttpError(
                        429,
                        "LimitExceeded",
                        f"this gateway serves at most {self.config.max_registries} registries",
                    )
                found = AsyncRegistryClient(
                    self.config.endpoint,
                    registry,
                    timeout=self.config.call_timeout,
                    curve_server_key=self.config.curve_server_key,
                    curve_keypair=self.config.curve_keypair,
                )
                self._clients[registry] = found
        return found

    def authorize(self, request: Request, *, write: bool) -> None:
        """401 unless the request may do this (docs/http.md §4)."""
        token = self.config.token
        if token is None or not (write or self.config.reads_need_token):
            return
        given = ""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            given = value.strip()
        elif not header and request.method in ("GET", "HEAD"):
            # EventSource cannot set headers; a token in a URL ends up in logs, so only
            # reads may carry it there.
            given = request.query_params.get("access_token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            what = "changing state" if write else "reading"
            raise HttpError(401, "Unauthorized", f"{what} needs the bearer token")

    async def aclose(self) -> None:
        """Close every client (their I/O threads are joined off the loop)."""
        self.closing.set()
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.aclose()


def _json(value: Any, status: int = 200) -> Response:
    # A newline at the end: `curl` output stays one answer per line.
    return Response(jsonio.encode_json(value) + b"\n", status, media_type="application/json")


def _error(exc: BaseException) -> Response:
    status = status_of(exc)
    if status >= 500 and not isinstance(exc, OpsLifecycleError | HttpError):
        log.exception("gateway error", exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body_of(exc), status, headers=headers)


def _handled(
    fn: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except (HttpError, OpsLifecycleError) as exc:
            return _error(exc)
        except ClientDisconnect:  # gone while sending its body: nobody to answer
            return Response(status_code=499)

    handler.__name__ = fn.__name__
    return handler


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def _body(request: Request, limit: int) -> dict[str, Any]:
    # The ASGI messages read directly: request.stream() is an async generator, which
    # asyncio registers in a WeakSet per request (a measurable share of a call's CPU).
    size = 0
    chunks = []
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "TooLarge", f"the body is over {limit} bytes", {"limit": limit})
        chunks.append(chunk)
        more = message.get("more_body", False)
    try:
        return jsonio.parse_body(b"".join(chunks))
    except InvalidArgument as exc:
        raise HttpError(400, "BadRequest", exc.detail) from None
    except RecursionError:
        raise HttpError(400, "BadRequest", "the body nests too deeply") from None


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _hold(request: Request, gw: Gateway, waiting: asyncio.Future[Any], timeout: float) -> Any:
    """The future's value; 408 when ``timeout`` passes first, 503 when the gateway stops.
    Either way, or when the caller goes away, an unsettled future is cancelled, which
    drops the wait on the server."""
    gone = asyncio.ensure_future(_disconnected(request))
    closing = asyncio.ensure_future(gw.closing.wait())
    try:
        done, _ = await asyncio.wait(
            {waiting, gone, closing}, timeout=timeout, return_when="FIRST_COMPLETED"
        )
        if waiting in done:
            return waiting.result()
        if gone in done:
            raise HttpError(499, "ClientClosed", "the caller went away")
        if closing in done:
            raise HttpError(503, "Unavailable", "the gateway is stopping; retry")
        raise HttpError(
            408, "WaitTimeout", f"not settled within {timeout:g} s", {"timeout": timeout}
        )
    finally:
        gone.cancel()
        closing.cancel()
        if not waiting.done():
            waiting.cancel()


def _timeout(gw: Gateway, body: dict[str, Any]) -> float:
    value = body.get(jsonio.TIMEOUT_FIELD, gw.config.default_wait_timeout)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgument(f"timeout must be a positive number of seconds, got {value!r}")
    if value > gw.config.max_wait_timeout:
        raise InvalidArgument(f"timeout may be at most {gw.config.max_wait_timeout:g} seconds")
    return float(value)


def _admit_hold(gw: Gateway, request: Request) -> str:
    """Count one more held request for its caller, or 429 when a bound is reached."""
    caller = request.client.host if request.client else "?"
    cfg = gw.config
    if gw.held.get(caller, 0) >= cfg.max_held_per_caller:
        raise HttpError(
            429,
            "LimitExceeded",
            f"held requests from {caller} (limit: {cfg.max_held_per_caller})",
            {"what": "held requests per caller", "limit": cfg.max_held_per_caller},
        )
    if gw.held_total >= cfg.max_held:
        raise HttpError(
            429,
            "LimitExceeded",
            f"held requests at this gateway (limit: {cfg.max_held})",
            {"what": "held requests", "limit": cfg.max_held},
        )
    gw.held[caller] = gw.held.get(caller, 0) + 1
    gw.held_total += 1
    return caller


def _release_hold(gw: Gateway, caller: str) -> None:
    gw.held_total -= 1
    left = gw.held[caller] - 1
    if left:
        gw.held[caller] = left
    else:
        del gw.held[caller]


@_handled
async def call_method(request: Request) -> Response:
    gw = _gateway(request)
    name = request.path_params["method"]
    method = METHODS.get(name)
    if method is None:
        raise HttpError(
            404, "UnknownMethod", f"no method {name[:64]!r} (GET /openapi.json lists them)"
        )
    gw.authorize(request, write=method.changes_state)
    body = await _body(request, gw.config.max_body)
    args = jsonio.decode_args(method, body)
    timeout = _timeout(gw, body) if method.future else 0.0
    client = await gw.client(request.path_params["registry"])
    call = getattr(client, name)
    if method.future:
        caller = _admit_hold(gw, request)
        try:
            waiting = await call(*args)
            return _json(await _hold(request, gw, waiting, timeout))
        finally:
            _release_hold(gw, caller)
    value = await call(*args)
    if name == "register_operation":
        return _json({"id": args[0].id})
    return _json(value)


def _enum(kind: Any, text: str | None, what: str) -> Any:
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidArgument(f"{what} must be one of {allowed}; got {text[:64]!r}") from None


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_ROWS
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_PAGE:
        raise InvalidArgument(f"limit must be an integer in [1, {MAX_PAGE}], got {text[:32]!r}")
    return int(text)


@_handled
async def list_operations(request: Request) -> Response:
    gw = _gateway(request)
    gw.authorize(request, write=False)
    q = request.query_params
    status = _enum(OperationStatus, q.get("status"), "status")
    kind = _enum(OperationKind, q.get("kind"), "kind")
    owner = q.get("owner") or None
    prefix = q.get("name") or None
    order = q.get("order") or None
    limit = _limit(q.get("limit"))
    after = jsonio.decode_cursor(q["after"]) if q.get("after") else None
    client = await gw.client(request.path_params["registry"])
    items, watermark = await asyncio.gather(
        client.list_operations(owner, status, kind, limit, after, prefix, order),
        client.watermark(),
    )
    last = items[-1] if len(items) == limit else None
    cursor = None if last is None else jsonio.encode_cursor(last.display_name, last.id)
    return _json({"items": items, "next": cursor, "watermark": watermark})


@_handled
async def get_operation(request: Request) -> Response:
    gw = _gateway(request)
    gw.authorize(request, write=False)
    op_id = jsonio.decode_args(METHODS["snapshot"], {"op_id": request.path_params["op_id"]})[0]
    client = await gw.client(request.path_params["registry"])
    snap = await client.snapshot(op_id)
    if snap is None:
        raise HttpError(404, "NotFound", f"operation not found: {op_id}", {"id": str(op_id)})
    return _json(snap)


@_handled
async def stats(request: Request) -> Response:
    gw = _gateway(request)
    gw.authorize(request, write=False)
    client = await gw.client(request.path_params["registry"])
    watermark = await client.watermark()
    batch = await client.list_since(watermark, 1)
    return _json({"watermark": batch.watermark, "dropped_through": batch.dropped_through})


@_handled
async def registries(request: Request) -> Response:
    gw = _gateway(request)
    gw.authorize(request, write=False)
    return _json({"registries": gw.offered()})


async def healthz(request: Request) -> Response:
    """Open to all (load balancers send no token); the watermark only to readers."""
    gw = _gateway(request)
    name = gw.offered()[0]
    try:
        client = await gw.client(name)
        watermark = await asyncio.wait_for(client.watermark(), gw.config.call_timeout)
    except (HttpError, OpsLifecycleError, TimeoutError) as exc:
        return JSONResponse({"ok": False, "registry": name, "error": str(exc)}, 503)
    answer: dict[str, Any] = {"ok": True, "registry": name}
    try:
        gw.authorize(request, write=False)
        answer["watermark"] = watermark
    except HttpError:
        pass
    return JSONResponse(answer)


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    cls = {404: "UnknownPath", 405: "MethodNotAllowed"}.get(status, "HttpError")
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return JSONResponse({"error": {"class": cls, "message": str(detail), "fields": {}}}, status)


class _Guard:
    """Refuses what ``transport.web.guard`` refuses (403), before any route."""

    def __init__(self, app: ASGIApp, has_token: bool) -> None:
        self.app = app
        self.has_token = has_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            why = guard.refusal(scope["method"], headers, self.has_token)
            if why is not None:
                body = {"error": {"class": "Forbidden", "message": why, "fields": {}}}
                await JSONResponse(body, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(config: GatewayConfig) -> Starlette:
    """The gateway's ASGI app; ``app.state.gateway`` is its :class:`Gateway`."""
    gateway = Gateway(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sse.attach(gateway)
        try:
            yield
        finally:
            gateway.closing.set()
            await sse.detach(gateway)
            await gateway.aclose()

    base = "/v1/registries/{registry}"
    routes = [
        # First: the router tries routes in order (~2 µs a regex each), and this one
        # carries nearly every call. A GET of the routes below only partially matches it
        # (POST only), so they are still found; a POST to one of their paths is an
        # UnknownMethod either way.
        Route(base + "/{method}", call_method, methods=["POST"]),
        Route("/", index),
        Route("/healthz", healthz),
        Route("/openapi.json", openapi.openapi_json),
        Route("/docs", openapi.docs_page),
        Route("/v1/registries", registries),
        Route(f"{base}/operations", list_operations),
        Route(base + "/operations/{op_id}", get_operation),
        Route(f"{base}/stats", stats),
        Route(f"{base}/feed", sse.feed),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _not_found},
        middleware=[Middleware(_Guard, has_token=config.token is not None)],
    )
    app.state.gateway = gateway
    return app
