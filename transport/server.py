"""``RegistryServer``: a ROUTER socket for requests, a PUB socket for the feed.

One I/O thread owns both sockets. It decodes each request (never unpickling
anything), checks the per-client limits, and hands the calls it read in one
pass to each registry actor as a single batch message. Actors answer into
per-call sinks that queue the reply on an :class:`~transport._outbox.Outbox`;
the I/O thread encodes and sends them, publishes feed entries in the order
the registries made them durable, heartbeats every registry's watermark on
the PUB socket, and cancels the waits of clients that went silent.

The server holds no lifecycle state: each named registry is an
:class:`~actors.OpsRegistry` attached to one shared persistence actor (one
journal namespace per registry), opened on first use by the opener thread of
:mod:`transport.registries` (never by the I/O thread, which waits on nothing).
What the server holds for slow readers is budgeted in :mod:`transport.budgets`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

import pykka
import zmq
import zmq.auth

from actors import OpsLifecycleError, OpsRegistry, calls
from actors.durable import DurableStore
from actors.errors import Internal, InvalidArgument, PermissionDenied
from actors.futures import OpsFuture
from actors.model import CompletionEntry, new_incarnation_id
from actors.persistence import PersistenceActor
from actors.registry import Call
from actors.sqlite_store import SqliteStore
from transport import codec
from transport._outbox import Opened, Outbox, Publish, ServerItem, Settled, Sink
from transport.admission import (
    ADMIN_METHODS,
    ZAP_DOMAIN,
    Admission,
    default_max_clients,
    load_admin_keys,
    may_administer,
    raise_fd_limit,
)
from transport.budgets import ReplyQueues, publish
from transport.config import ServerConfig
from transport.errors import Busy, ServerRestarted, TooLarge
from transport.liveness import DROP_WAIT, Client, Liveness, cancel_waits, dropped_id
from transport.logsetup import RefusalLog
from transport.metrics import ServerMetrics
from transport.registries import Registries

__all__ = ["RegistryServer", "ServerConfig"]

log = logging.getLogger(__name__)

_RECV_BATCH: Final = 512
# Plain ints: pyzmq's sugar (recv_multipart, send_multipart, enum flags) costs
# several microseconds per call in the one thread every request goes through.
_NOBLOCK: Final = int(zmq.NOBLOCK)
_POLLIN: Final = int(zmq.POLLIN)
_EVENTS: Final = int(zmq.EVENTS)
_SNDMORE: Final = int(zmq.SNDMORE)


def _prepare_endpoint(endpoint: str) -> str:
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        return endpoint[:-2] + ":*"
    if endpoint.startswith("ipc://"):
        path = Path(endpoint[len("ipc://") :])
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = path.parent.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.chmod(path.parent, 0o700)  # only the owner may reach the socket
    return endpoint


class RegistryServer:
    """Serve named registries over ZeroMQ.

    >>> import tempfile
    >>> with RegistryServer(ServerConfig(endpoint="tcp://127.0.0.1:0",
    ...                     feed_endpoint="tcp://127.0.0.1:0",
    ...                     data_dir=tempfile.mkdtemp())) as server:
    ...     server.endpoint.startswith("tcp://127.0.0.1:")
    True
    """

    #: what the actors, the opener thread and the futures hand the I/O thread
    outbox: Outbox[ServerItem]

    def __init__(self, config: ServerConfig | None = None, **overrides: Any) -> None:
        cfg = config or ServerConfig()
        for key, value in overrides.items():
            if not hasattr(cfg, key):
                raise TypeError(f"unknown server option {key!r}")
            setattr(cfg, key, value)
        self.config = cfg
        self.epoch = new_incarnation_id()
        self.outbox = Outbox()
        #: the open registries by name (a view kept by ``self._names``)
        self.registries: dict[str, OpsRegistry] = {}
        self._names: Registries | None = None
        self._replies: ReplyQueues | None = None
        self._refusals = RefusalLog(log)
        self.clients: dict[bytes, Client] = {}
        self.liveness = Liveness(
            cfg.heartbeat_interval, cfg.client_timeout, cfg.max_waits_per_client
        )
        self.watermarks: dict[str, int] = {}
        self.endpoint = ""
        self.feed_endpoint = ""
        self.stats = {"requests": 0, "rejected_busy": 0, "rejected_large": 0, "malformed": 0}
        self.store: SqliteStore | None = None
        self._ctx = zmq.Context()
        self._auth: Admission | None = None
        #: z85 keys that may call ADMIN_METHODS; None: everyone who gets in
        self._admins: frozenset[str] | None = None
        #: the request frame being accepted (its ``User-Id`` names a CURVE sender)
        self._frame: zmq.Frame | None = None
        self.fd_limit = 0
        self.max_clients = 0
        self._persistence: pykka.ActorRef[PersistenceActor] | None = None
        self._durable: DurableStore | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopped = False
        self._ready = threading.Event()
        self._router: zmq.Socket[bytes] | None = None
        self._pub: zmq.Socket[bytes] | None = None
        self._registry_lock = threading.Lock()
        self.metrics: ServerMetrics | None = None
        self.metrics_address = ""

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> RegistryServer:
        """Open the stores, bind the sockets and start serving; returns ``self``."""
        cfg = self.config
        try:
            on_commit = None
            if cfg.metrics is not None:
                self.metrics = ServerMetrics(self._operation_counts)
                self.metrics.clients.set_function(lambda: len(self.clients))
                on_commit = self.metrics.observe_commit
            if cfg.data_dir is not None:
                durable = DurableStore.open(
                    cfg.data_dir, cfg.synchronous, cfg.compact_every, on_commit
                )
                self._durable, self._persistence, self.store = durable, durable.ref, durable.store
                durable.store.faults.failure_rate = cfg.inject_commit_failures
            self._bind()
            persistence = self._persistence
            self._names = Registries(
                self._open_registry,
                self.outbox.put,
                durable=persistence is not None,
                max_registries=cfg.max_registries,
                allow=None if cfg.registries is None else frozenset(cfg.registries),
                max_pending=cfg.max_inflight,
                idle_after=cfg.registry_idle,
                detach=None if persistence is None else self._detach,
            )
            self.registries = self._names.open
            if self.metrics is not None and cfg.metrics is not None:
                self.metrics_address = self.metrics.serve(cfg.metrics)
        except BaseException:
            self._teardown()
            raise
        self._thread = threading.Thread(target=self._loop, name="opsreg-server-io", daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def _bind(self) -> None:
        cfg = self.config
        router = self._ctx.socket(zmq.ROUTER)
        pub = self._ctx.socket(zmq.PUB)
        self._router, self._pub = router, pub
        for sock in (router, pub):
            sock.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting client keeps its identity
        router.setsockopt(zmq.MAXMSGSIZE, cfg.max_frame * 4 + 4096)
        router.setsockopt(zmq.RCVHWM, 100_000)
        # A peer that stops reading makes sends EAGAIN instead of growing libzmq's queue.
        router.setsockopt(zmq.SNDHWM, cfg.reply_hwm)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._replies = ReplyQueues(
            router,
            cfg.client_reply_bytes,
            cfg.server_reply_bytes,
            cfg.max_reply_frame,
            self._refusals.refused,
        )
        hwm = cfg.feed_hwm or max(1, cfg.feed_hwm_bytes // cfg.max_feed_frame)
        pub.setsockopt(zmq.SNDHWM, hwm)
        self.fd_limit = raise_fd_limit()
        self.max_clients = (
            default_max_clients(self.fd_limit) if cfg.max_clients is None else cfg.max_clients
        )
        if self.max_clients < 1:
            raise ValueError(f"max_clients must be at least 1, got {cfg.max_clients}")
        self._auth = Admission(self._ctx, self.max_clients)
        for sock in (router, pub):
            self._auth.watch(sock)  # before bind: every connection is counted
        if cfg.curve_secret_file is None and cfg.curve_admin_dir is not None:
            raise ValueError("curve_admin_dir needs curve_secret_file and curve_allow_dir")
        if cfg.curve_secret_file is not None:
            if cfg.curve_allow_dir is None:
                raise ValueError("curve_allow_dir is required with curve_secret_file")
            self._auth.configure_curve(domain=ZAP_DOMAIN, location=cfg.curve_allow_dir)
            if cfg.curve_admin_dir is not None:
                self._admins = load_admin_keys(cfg.curve_admin_dir, cfg.curve_allow_dir)
            public, secret = zmq.auth.load_certificate(cfg.curve_secret_file)
            if secret is None:
                raise ValueError(f"{cfg.curve_secret_file} holds no secret key")
            for sock in (router, pub):
                sock.curve_secretkey = secret
                sock.curve_publickey = public
                sock.curve_server = True
        self._auth.start()
        router.bind(_prepare_endpoint(cfg.endpoint))
        pub.bind(_prepare_endpoint(cfg.feed_endpoint))
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.feed_endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)

    def stop(self) -> None:
        """Stop serving: end the I/O thread, its registries and their stores (once: a
        second call does nothing)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self.outbox.wake()
            self._thread.join(timeout=30)
            self._thread = None
        self._teardown()

    def _operation_counts(self) -> dict[str, dict[tuple[str, str], int]]:
        futures = {
            name: reg.call_async("operation_counts") for name, reg in list(self.registries.items())
        }
        return {name: f.get(timeout=10) for name, f in futures.items()}

    def _teardown(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self._names is not None:
            self._names.stop()  # stops every registry it opened
        for item in self.outbox.drain():  # opened after the I/O thread stopped looking
            if isinstance(item, Opened) and item.registry is not None:
                with contextlib.suppress(Exception):
                    item.registry.stop()
        if self._persistence is not None:
            with contextlib.suppress(Exception):
                self._persistence.stop()
            self._persistence = None
        for sock in (self._router, self._pub):
            if sock is not None:
                sock.close(linger=0)
        self._router = self._pub = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._ctx.term()
        self.outbox.close()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- registries ------------------------------------------------------------------------------

    def _detach(self, name: str) -> None:
        assert self._durable is not None
        self._durable.detach(name)

    def registry(self, name: str) -> OpsRegistry | None:
        """The registry called ``name`` if it is open (the I/O thread opens them on demand)."""
        return self.registries.get(name)

    def _open_registry(self, name: str) -> OpsRegistry:
        cfg = self.config
        publish = self._publisher(name)
        if self._durable is None:
            return OpsRegistry.start(
                cfg.max_completed, cfg.max_concurrent, name=name, on_entries=publish
            )
        return self._durable.attach(name, cfg.max_completed, cfg.max_concurrent, on_entries=publish)

    def _publisher(self, name: str) -> Callable[[list[CompletionEntry]], None]:
        outbox = self.outbox

        def publish(entries: list[CompletionEntry]) -> None:
            outbox.put(Publish(name, entries))

        return publish

    # --- the I/O loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        router, pub, replies = self._router, self._pub, self._replies
        assert router is not None and pub is not None and replies is not None
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self.outbox.fd, zmq.POLLIN)
        interval = self.config.heartbeat_interval
        next_beat = time.monotonic()
        self._ready.set()
        try:
            while not self._stop.is_set():
                timeout_ms = max(0.0, (next_beat - time.monotonic()) * 1000)
                if replies.backlog:  # libzmq cannot say when a peer drains: retry soon
                    timeout_ms = min(timeout_ms, 2.0)
                events = dict(poller.poll(int(timeout_ms)))
                if router in events:
                    self._read_requests(router)
                if self.outbox.fd in events:
                    self._send_outbox(router, pub)
                if replies.backlog:
                    replies.flush()
                now = time.monotonic()
                if now >= next_beat:
                    self._heartbeat(pub, now)
                    assert self._names is not None
                    self._names.sweep(now)
                    self._refusals.tick()
                    next_beat = now + interval
            self._send_outbox(router, pub)
        except Exception:
            log.exception("server I/O loop failed")
            raise

    def _read_requests(self, router: zmq.Socket[bytes]) -> None:
        batches: dict[str, list[Call]] = {}
        now = time.monotonic()
        recv, get = router.recv, router.get
        for i in range(_RECV_BATCH):
            # The poller said POLLIN for the first; after that, asking EVENTS is cheaper
            # than letting recv raise Again. Socket.get builds an enum per call, a
            # Frame's ``more`` does not, hence RCVMORE is read from the frame.
            if i and not cast(int, get(_EVENTS)) & _POLLIN:
                break
            try:
                identity = recv(_NOBLOCK)  # a ROUTER always prefixes the sender's identity
            except zmq.Again:
                break
            part = recv(_NOBLOCK, copy=False)
            self._frame = part
            frame = part.bytes
            if part.more:
                while part.more:  # drain the rest of a multi-frame message
                    part = recv(_NOBLOCK, copy=False)
                self.stats["malformed"] += 1
                self._reply_error(router, identity, 0, InvalidArgument("expected one frame"))
                continue
            client = self.clients.get(identity)
            if client is None:
                client = self.clients[identity] = self.liveness.new_client(identity, now)
            client.last_seen = now
            self._accept(router, identity, client, frame, batches)
        assert self._names is not None
        self._names.hand(batches, now)

    def _accept(
        self,
        router: zmq.Socket[bytes],
        identity: bytes,
        client: Client,
        frame: bytes,
        batches: dict[str, list[Call]],
    ) -> None:
        try:
            reqs = codec.decode_requests(frame)
        except InvalidArgument as exc:
            self.stats["requests"] += 1
            self.stats["malformed"] += 1
            self._reply_error(router, identity, 0, exc)
            return
        batched = codec.is_batch(frame)
        too_large = len(frame) > self.config.max_frame
        for req in reqs:
            self._accept_one(
                router, identity, client, req, len(frame) if too_large else 0, batched, batches
            )

    def _accept_one(
        self,
        router: zmq.Socket[bytes],
        identity: bytes,
        client: Client,
        req: codec.Request,
        too_large: int,
        batched: bool,
        batches: dict[str, list[Call]],
    ) -> None:
        self.stats["requests"] += 1
        if too_large:
            self.stats["rejected_large"] += 1
            self._reply_error(
                router, identity, req.req_id, TooLarge(too_large, self.config.max_frame)
            )
            return
        if req.method == "ping":
            self._send(
                router,
                identity,
                codec.encode_reply(req.req_id, codec.PONG, self.liveness.pong(client, self.epoch)),
            )
            return
        if req.method == DROP_WAIT:  # a client no longer wants one of its waits: no reply
            held = client.held.get(dropped_id(req.args))
            if held is not None:
                cancel_waits(self.registries.get(held[0]), [held[1]])
            return
        if req.method in calls.CHANGES_STATE and req.server_epoch != self.epoch:
            self._reply_error(router, identity, req.req_id, ServerRestarted(self.epoch))
            return
        if req.method in ADMIN_METHODS and not may_administer(self._admins, self._frame):
            self._reply_error(router, identity, req.req_id, PermissionDenied(req.method))
            return
        if client.inflight >= self.config.max_inflight:
            self.stats["rejected_busy"] += 1
            self._reply_error(router, identity, req.req_id, Busy(self.config.max_inflight))
            return
        replies = self._replies
        assert replies is not None
        if replies.backlog and replies.over(identity):
            self._reply_error(router, identity, req.req_id, replies.refusal(identity))
            return
        try:
            args = codec.decode_args(req.method, req.args)
        except OpsLifecycleError as exc:
            self._reply_error(router, identity, req.req_id, exc)
            return
        refusal = self.liveness.admit_wait(client, req.method)
        if refusal is not None:
            self._reply_error(router, identity, req.req_id, refusal)
            return
        name = req.registry
        sink = Sink(self.outbox, identity, req.req_id, req.method, name, batched)
        call = self.liveness.leased(identity, client, name, Call(req.method, args, sink))  # type: ignore[arg-type]
        if name in self.registries:
            batches.setdefault(name, []).append(call)
        else:  # not open: it waits while the opener thread opens the registry
            assert self._names is not None
            try:
                self._names.park(name, call, time.monotonic())
            except OpsLifecycleError as exc:
                if req.method in calls.FUTURE:
                    client.asked_waits -= 1  # admitted above, but it never reached a registry
                self._reply_error(router, identity, req.req_id, exc)
                return
        client.inflight += 1

    def _reply_error(
        self, router: zmq.Socket[bytes], identity: bytes, req_id: int, exc: OpsLifecycleError
    ) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(type(exc).__name__).inc()
        self._refusals.refused(exc)
        frame = codec.encode_reply(req_id, codec.ERROR, codec.encode_error(exc))
        self._send(router, identity, frame)

    def _send(self, router: zmq.Socket[bytes], identity: bytes, frame: bytes) -> None:
        """Send one reply; a client that is not reading gets it later, within its budget."""
        assert self._replies is not None
        self._replies.send(identity, frame)

    def _send_outbox(self, router: zmq.Socket[bytes], pub: zmq.Socket[bytes]) -> None:
        grouped: dict[bytes, list[tuple[int, int, Any]]] = {}
        names, replies = self._names, self._replies
        assert names is not None and replies is not None
        for item in self.outbox.drain():
            if isinstance(item, Sink):
                identity, status, value = item.identity, item.status, item.value
                names.replied(item.registry, value)
                if replies.backlog and replies.over(identity):
                    # Not reading: a small refusal instead of a reply that may be large.
                    status, value = codec.ERROR, replies.refusal(identity)
                answer = self._answer(
                    identity, item.req_id, item.method, status, value, item.registry
                )
                if item.batched:
                    grouped.setdefault(identity, []).append(answer)
                else:
                    replies.send_reply(identity, answer)
            elif isinstance(item, Settled):
                # Never ahead of its ACCEPTED: a future's done-callback is added while its
                # ACCEPTED is answered, so its Settled lands in a later pass than that.
                self._send_final(router, item)
            elif isinstance(item, Publish):
                name, entries = item.name, item.entries
                mark = entries[-1].seq
                self.watermarks[name] = mark
                if self.metrics is not None:
                    self.metrics.watermark.labels(name).set(mark)
                publish(pub, codec.topic(name), entries, self.config.max_feed_frame)
            else:  # Opened or Closed
                names.answered(item)
                if item.name not in self.registries:
                    self.watermarks.pop(item.name, None)
        for identity, group in grouped.items():
            replies.send_batch(identity, group)

    def _answer(
        self,
        identity: bytes,
        req_id: int,
        method: str,
        status: int,
        value: Any,
        registry: str,
    ) -> tuple[int, int, Any]:
        """The reply to one request, as ``(req_id, status, payload)``; a future is held."""
        client = self.clients.get(identity)
        if client is not None:
            client.inflight -= 1
            if method in calls.FUTURE and client.asked_waits:
                client.asked_waits -= 1
        metrics = self.metrics
        if metrics is not None:
            if status == codec.OK:
                metrics.transitions.labels(registry, method).inc()
            else:
                metrics.rejected.labels(type(value).__name__).inc()
        if status == codec.OK and isinstance(value, OpsFuture):
            if not value.done():
                if client is not None:
                    client.held[req_id] = (registry, value)
                else:
                    # Forgotten while the registry was answering: nobody would ever
                    # cancel it, so cancel it now (its final reply still goes out).
                    cancel_waits(self.registries.get(registry), [value])
            outbox = self.outbox

            def settled(f: OpsFuture[Any]) -> None:
                outbox.put(Settled(identity, req_id, method, f))

            value.add_done_callback(settled)
            return req_id, codec.ACCEPTED, None
        if status == codec.OK:
            return req_id, codec.OK, value
        if not isinstance(value, OpsLifecycleError):
            value = Internal(repr(value))
        self._refusals.refused(value)
        return req_id, codec.ERROR, codec.encode_error(value)

    def _send_final(self, router: zmq.Socket[bytes], settled: Settled) -> None:
        identity, req_id = settled.identity, settled.req_id
        client = self.clients.get(identity)
        if client is not None:
            client.held.pop(req_id, None)
        try:
            frame = codec.encode_reply(req_id, codec.OK, settled.future.get(timeout=0))
        except OpsLifecycleError as exc:
            frame = codec.encode_reply(req_id, codec.ERROR, codec.encode_error(exc))
        except Exception as exc:
            frame = codec.encode_reply(req_id, codec.ERROR, codec.encode_error(Internal(repr(exc))))
        self._send(router, identity, frame)

    def _heartbeat(self, pub: zmq.Socket[bytes], now: float) -> None:
        for name in list(self.registries):
            frame = codec.encode_feed("heartbeat", self.watermarks.get(name, 0), [])
            pub.send_multipart([codec.topic(name), frame])
        now_stalled = self.liveness.stalled_for(now)
        expired = self.liveness.expired(self.clients, now)
        if now_stalled > self.liveness.stall:
            log.warning("server loop stalled for %.1fs; clients get a grace period", now_stalled)
        for identity, client in expired:
            if self._replies is not None:
                self._replies.discard(identity)  # nothing held for a client it forgot
            self.liveness.forget(identity, client, self.clients, self.registries)
