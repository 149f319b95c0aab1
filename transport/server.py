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
journal namespace per registry), created on first use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import pykka
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from actors import OpsLifecycleError, OpsRegistry
from actors.errors import Internal, InvalidArgument
from actors.futures import OpsFuture
from actors.lifecycle import DEFAULT_MAX_COMPLETED
from actors.model import CompletionEntry, new_wait_request_id
from actors.persistence import DEFAULT_COMPACT_EVERY, PersistenceActor
from actors.registry import Call
from actors.sqlite_store import SqliteStore
from transport import codec
from transport._outbox import Outbox
from transport.errors import Busy, ServerRestarted, TooLarge
from transport.metrics import ServerMetrics

__all__ = ["RegistryServer", "ServerConfig"]

log = logging.getLogger(__name__)

_REGISTRY_NAME: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_RECV_BATCH: Final = 512
# Plain ints: pyzmq's sugar (recv_multipart, send_multipart, enum flags) costs
# several microseconds per call in the one thread every request goes through.
_NOBLOCK: Final = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK: Final = int(zmq.SNDMORE | zmq.NOBLOCK)
_POLLIN: Final = int(zmq.POLLIN)
_EVENTS: Final = int(zmq.EVENTS)
_SNDMORE: Final = int(zmq.SNDMORE)


@dataclass
class ServerConfig:
    """Everything ``RegistryServer`` can be told; the defaults are the embedded ones."""

    endpoint: str = "tcp://127.0.0.1:5555"
    feed_endpoint: str = "tcp://127.0.0.1:5556"
    data_dir: str | None = "./var"
    synchronous: str = "full"
    max_completed: int = DEFAULT_MAX_COMPLETED
    max_concurrent: int | None = None
    compact_every: int = DEFAULT_COMPACT_EVERY
    max_frame: int = 1 << 20
    max_inflight: int = 4096
    #: messages the PUB socket queues per subscriber before it drops (subscribers repair)
    feed_hwm: int = 10_000
    heartbeat_interval: float = 1.0
    client_timeout: float = 5.0
    #: path of the server's secret certificate (``zmq.auth.create_certificates``)
    curve_secret_file: str | None = None
    #: directory of allowed client public certificates
    curve_allow_dir: str | None = None
    #: ``HOST:PORT`` for a Prometheus ``/metrics`` endpoint (None: no metrics)
    metrics: str | None = None
    #: chaos testing only: the share of journal commits that fail on purpose
    inject_commit_failures: float = 0.0


@dataclass
class _Client:
    last_seen: float
    inflight: int = 0
    #: req_id -> future, for the waits the server holds on this client's behalf
    held: dict[int, OpsFuture[Any]] = field(default_factory=dict)


class _Sink:
    """Where an actor puts one call's answer; duck-types the reply future the actor expects."""

    __slots__ = ("_done", "identity", "kind", "method", "outbox", "registry", "req_id")

    def __init__(
        self,
        outbox: Outbox,
        identity: bytes,
        req_id: int,
        method: str,
        registry: str,
        batched: bool = False,
    ) -> None:
        self.outbox = outbox
        self.identity = identity
        self.req_id = req_id
        self.method = method
        self.registry = registry
        #: requests that came in a batch are answered in batches
        self.kind = "breply" if batched else "reply"
        self._done = False

    def done(self) -> bool:
        return self._done

    def set(self, value: Any = None) -> None:
        self._done = True
        self.outbox.put(
            (self.kind, self.identity, self.req_id, self.method, codec.OK, value, self.registry)
        )

    def set_exception(self, exc: Any = None) -> None:
        self._done = True
        error = exc[1] if isinstance(exc, tuple) else exc
        self.outbox.put(
            (self.kind, self.identity, self.req_id, self.method, codec.ERROR, error, self.registry)
        )


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

    def __init__(self, config: ServerConfig | None = None, **overrides: Any) -> None:
        cfg = config or ServerConfig()
        for key, value in overrides.items():
            if not hasattr(cfg, key):
                raise TypeError(f"unknown server option {key!r}")
            setattr(cfg, key, value)
        self.config = cfg
        self.epoch = new_wait_request_id()
        self.outbox = Outbox()
        self.registries: dict[str, OpsRegistry] = {}
        self.clients: dict[bytes, _Client] = {}
        self.watermarks: dict[str, int] = {}
        self.endpoint = ""
        self.feed_endpoint = ""
        self.stats = {"requests": 0, "rejected_busy": 0, "rejected_large": 0, "malformed": 0}
        self._ctx = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._persistence: pykka.ActorRef[PersistenceActor] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._router: zmq.Socket[bytes] | None = None
        self._pub: zmq.Socket[bytes] | None = None
        self._registry_lock = threading.Lock()
        self.metrics: ServerMetrics | None = None
        self.metrics_address = ""

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> RegistryServer:
        cfg = self.config
        try:
            on_commit = None
            if cfg.metrics is not None:
                self.metrics = ServerMetrics(self._operation_counts)
                self.metrics.clients.set_function(lambda: len(self.clients))
                on_commit = self.metrics.observe_commit
            if cfg.data_dir is not None:
                store = SqliteStore(cfg.data_dir, cfg.synchronous)
                store.faults.failure_rate = cfg.inject_commit_failures
                self._persistence = PersistenceActor.start(store, cfg.compact_every, on_commit)
                self._persistence.ask(("open",))
            self._bind()
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
        router.setsockopt(zmq.SNDHWM, 100_000)
        pub.setsockopt(zmq.SNDHWM, cfg.feed_hwm)
        if cfg.curve_secret_file is not None:
            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            if cfg.curve_allow_dir is None:
                raise ValueError("curve_allow_dir is required with curve_secret_file")
            self._auth.configure_curve(domain="*", location=cfg.curve_allow_dir)
            public, secret = zmq.auth.load_certificate(cfg.curve_secret_file)
            if secret is None:
                raise ValueError(f"{cfg.curve_secret_file} holds no secret key")
            for sock in (router, pub):
                sock.curve_secretkey = secret
                sock.curve_publickey = public
                sock.curve_server = True
        router.bind(_prepare_endpoint(cfg.endpoint))
        pub.bind(_prepare_endpoint(cfg.feed_endpoint))
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.feed_endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self.outbox.put(("wake",))
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
        for reg in list(self.registries.values()):
            with contextlib.suppress(Exception):
                reg.stop()
        self.registries.clear()
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

    def close(self) -> None:
        """Same as :meth:`stop` (for ``contextlib.closing``)."""
        self.stop()

    # --- registries ------------------------------------------------------------------------------

    def registry(self, name: str) -> OpsRegistry:
        """The registry called ``name``, created (and recovered) on first use."""
        reg = self.registries.get(name)
        if reg is not None:
            return reg
        if not _REGISTRY_NAME.match(name):
            raise InvalidArgument(
                f"registry name must be 1-128 characters of A-Z a-z 0-9 _ . : -, got {name[:64]!r}"
            )
        with self._registry_lock:
            reg = self.registries.get(name)
            if reg is None:
                reg = self._open_registry(name)
                self.registries[name] = reg
        return reg

    def _open_registry(self, name: str) -> OpsRegistry:
        cfg = self.config
        publish = self._publisher(name)
        if self._persistence is None:
            return OpsRegistry.start(
                cfg.max_completed, cfg.max_concurrent, name=name, on_entries=publish
            )
        return OpsRegistry.attach(
            self._persistence, name, cfg.max_completed, cfg.max_concurrent, on_entries=publish
        )

    def _publisher(self, name: str) -> Callable[[list[CompletionEntry]], None]:
        outbox = self.outbox

        def publish(entries: list[CompletionEntry]) -> None:
            outbox.put(("pub", name, entries))

        return publish

    # --- the I/O loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        router, pub = self._router, self._pub
        assert router is not None and pub is not None
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self.outbox.fd, zmq.POLLIN)
        interval = self.config.heartbeat_interval
        next_beat = time.monotonic()
        self._ready.set()
        try:
            while not self._stop.is_set():
                timeout_ms = max(0.0, (next_beat - time.monotonic()) * 1000)
                events = dict(poller.poll(int(timeout_ms)))
                if router in events:
                    self._read_requests(router)
                if self.outbox.fd in events:
                    self._send_outbox(router, pub)
                now = time.monotonic()
                if now >= next_beat:
                    self._heartbeat(pub, now)
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
            frame = part.bytes
            if part.more:
                while part.more:  # drain the rest of a multi-frame message
                    part = recv(_NOBLOCK, copy=False)
                self.stats["malformed"] += 1
                self._reply_error(router, identity, 0, InvalidArgument("expected one frame"))
                continue
            client = self.clients.get(identity)
            if client is None:
                client = self.clients[identity] = _Client(last_seen=now)
            client.last_seen = now
            self._accept(router, identity, client, frame, batches)
        for name, calls in batches.items():
            reg = self.registries[name]
            try:
                reg._ref.tell(calls)
            except pykka.ActorDeadError:
                for call in calls:
                    assert call.reply is not None
                    call.reply.set_exception(Internal("registry is not running"))

    def _accept(
        self,
        router: zmq.Socket[bytes],
        identity: bytes,
        client: _Client,
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
        batched = frame[0] == codec.BATCH
        too_large = len(frame) > self.config.max_frame
        for req in reqs:
            self._accept_one(
                router, identity, client, req, len(frame) if too_large else 0, batched, batches
            )

    def _accept_one(
        self,
        router: zmq.Socket[bytes],
        identity: bytes,
        client: _Client,
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
            self._send(router, identity, codec.encode_reply(req.req_id, codec.PONG, self.epoch))
            return
        if req.method in codec.MUTATING and req.server_epoch != self.epoch:
            self._reply_error(router, identity, req.req_id, ServerRestarted(self.epoch))
            return
        if client.inflight >= self.config.max_inflight:
            self.stats["rejected_busy"] += 1
            self._reply_error(router, identity, req.req_id, Busy(self.config.max_inflight))
            return
        try:
            args = codec.decode_args(req.method, req.args)
            reg = self.registry(req.registry)
        except OpsLifecycleError as exc:
            self._reply_error(router, identity, req.req_id, exc)
            return
        except Exception as exc:  # e.g. the store failed while recovering this registry
            log.exception("cannot open registry %s", req.registry)
            self._reply_error(
                router, identity, req.req_id, Internal(f"cannot open registry: {exc}")
            )
            return
        client.inflight += 1
        sink = _Sink(self.outbox, identity, req.req_id, req.method, reg.name, batched)
        batches.setdefault(reg.name, []).append(Call(req.method, args, sink))  # type: ignore[arg-type]

    def _reply_error(
        self, router: zmq.Socket[bytes], identity: bytes, req_id: int, exc: OpsLifecycleError
    ) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(type(exc).__name__).inc()
        frame = codec.encode_reply(req_id, codec.ERROR, codec.encode_error(exc))
        self._send(router, identity, frame)

    @staticmethod
    def _send(router: zmq.Socket[bytes], identity: bytes, frame: bytes) -> None:
        """Send one reply; a client that is gone or not reading loses it (ROUTER semantics)."""
        try:
            router.send(identity, _SNDMORE_NOBLOCK)
            router.send(frame, _NOBLOCK)
        except zmq.ZMQError:
            pass

    def _send_outbox(self, router: zmq.Socket[bytes], pub: zmq.Socket[bytes]) -> None:
        grouped: dict[bytes, list[tuple[int, int, Any]]] = {}
        for item in self.outbox.drain():
            kind = item[0]
            if kind == "breply":
                grouped.setdefault(item[1], []).append(self._answer(*item[1:]))
            elif kind == "reply":
                self._send(router, item[1], codec.encode_reply(*self._answer(*item[1:])))
            elif kind == "final":
                # Never ahead of its ACCEPTED: a future's done-callback is added while its
                # ACCEPTED is answered, so its "final" lands in a later pass than that.
                self._send_final(router, *item[1:])
            elif kind == "pub":
                name, entries = item[1], item[2]
                mark = entries[-1].seq
                self.watermarks[name] = mark
                if self.metrics is not None:
                    self.metrics.watermark.labels(name).set(mark)
                frame = codec.encode_feed("entries", mark, 0, entries)
                pub.send(codec.topic(name), _SNDMORE)
                pub.send(frame)
        for identity, group in grouped.items():
            self._send_batch(router, identity, group)

    def _send_batch(
        self, router: zmq.Socket[bytes], identity: bytes, group: list[tuple[int, int, Any]]
    ) -> None:
        if len(group) == 1:
            self._send(router, identity, codec.encode_reply(*group[0]))
            return
        for start in range(0, len(group), codec.MAX_BATCH):
            self._send(
                router, identity, codec.encode_reply_batch(group[start : start + codec.MAX_BATCH])
            )

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
        metrics = self.metrics
        if metrics is not None:
            if status == codec.OK:
                metrics.transitions.labels(registry, method).inc()
            else:
                metrics.rejected.labels(type(value).__name__).inc()
        if status == codec.OK and isinstance(value, OpsFuture):
            if client is not None and not value.done():
                client.held[req_id] = value
            outbox = self.outbox

            def settled(f: OpsFuture[Any]) -> None:
                outbox.put(("final", identity, req_id, method, f))

            value.add_done_callback(settled)
            return req_id, codec.ACCEPTED, None
        if status == codec.OK:
            return req_id, codec.OK, value
        if not isinstance(value, OpsLifecycleError):
            value = Internal(repr(value))
        return req_id, codec.ERROR, codec.encode_error(value)

    def _send_final(
        self,
        router: zmq.Socket[bytes],
        identity: bytes,
        req_id: int,
        method: str,
        f: OpsFuture[Any],
    ) -> None:
        client = self.clients.get(identity)
        if client is not None:
            client.held.pop(req_id, None)
        try:
            frame = codec.encode_reply(req_id, codec.OK, f.get(timeout=0))
        except OpsLifecycleError as exc:
            frame = codec.encode_reply(req_id, codec.ERROR, codec.encode_error(exc))
        except Exception as exc:
            frame = codec.encode_reply(req_id, codec.ERROR, codec.encode_error(Internal(repr(exc))))
        self._send(router, identity, frame)

    def _heartbeat(self, pub: zmq.Socket[bytes], now: float) -> None:
        for name in list(self.registries):
            frame = codec.encode_feed("heartbeat", self.watermarks.get(name, 0), 0, [])
            pub.send_multipart([codec.topic(name), frame])
        deadline = now - self.config.client_timeout
        for identity, client in list(self.clients.items()):
            if client.last_seen < deadline:
                self._forget(identity, client)

    def _forget(self, identity: bytes, client: _Client) -> None:
        """A client went silent: cancel the barriers it holds so they cannot block the registry."""
        del self.clients[identity]
        for future in client.held.values():
            wait_request_id = future.wait_request_id
            if wait_request_id is None or future.done():
                continue
            for reg in self.registries.values():
                reg.call_async("cancel_wait_all", wait_request_id)
        if client.held:
            log.info(
                "client %s went silent; cancelled its %d wait(s)", identity.hex(), len(client.held)
            )
