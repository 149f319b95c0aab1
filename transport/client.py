"""``RegistryClient``: every registry method over ZeroMQ, with the same names and errors.

One background thread owns a DEALER socket. Callers on any thread (or an
asyncio loop) put requests on an :class:`~transport._outbox.Outbox` and get an
:class:`~actors.futures.OpsFuture` back, so one client pipelines as many
requests as it likes; each reply carries the request id it answers.

Failure rules (docs/protocol.md):

* A call that gets no answer within ``timeout`` raises :class:`Unavailable`.
* The client learns the server's incarnation (*epoch*) from heartbeats and
  stamps it on every request. When the server restarts, calls that change
  state and were still unanswered fail with ``Unavailable`` (they may or may
  not have happened) and are never re-sent; reads are re-sent; watchers,
  ``wait_any`` and ``wait_for_advance`` are re-established on the new server;
  a ``wait_all`` barrier, which lived only in the old server, fails with
  ``Unavailable``.
* The server only executes a state-changing request if it is the incarnation
  the request names, so a request queued for a dead server never runs twice.
* When the server gives up on this client (its heartbeats stopped for longer
  than the server's ``client_timeout``: a stopped or starved process), it
  cancels the client's waits; the client learns it from their ``WaitCancelled``
  replies or from its next pong, re-establishes watchers, ``wait_any`` and
  ``wait_for_advance`` with the same futures, and fails a ``wait_all`` with
  ``WaitCancelled``.
  Its refusal, ``ServerRestarted(epoch)``, is definite (not executed), so the
  client sends that call again, stamped with the epoch the refusal names,
  while its caller is still waiting: a restart between two calls is invisible.
* A state-changing request is never sent before the client knows an epoch:
  it waits (within ``timeout``) for the first heartbeat answer, else raises
  ``Unavailable`` having sent nothing.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from typing import Any, Final, cast

import msgspec
import pykka
import zmq

from actors import calls
from actors.api import RegistryCalls
from actors.errors import InvalidArgument, OpsLifecycleError, WaitCancelled
from actors.futures import OpsFuture
from actors.model import OperationSpec
from transport import codec
from transport._direct import MAX_RESENDS, DirectPath, resendable
from transport._outbox import Outbox
from transport._pending import CLOSE, PING, Close, Pending, Ping
from transport.errors import CallTimeout, ServerRestarted, TooLarge, Unavailable
from transport.pipeline import Pipelining

__all__ = ["RegistryClient"]

_NOBLOCK: Final = int(zmq.NOBLOCK)
_EVENTS: Final = int(zmq.EVENTS)
_POLLIN: Final = int(zmq.POLLIN)

log = logging.getLogger(__name__)

_SWEEP_EVERY: Final = 1.0
#: ``WaitCancelled``'s field when the server gave up on this client while it held a barrier
FORGOTTEN: Final = "the server gave up on this client (silent beyond its client_timeout)"


class RegistryClient(DirectPath, Pipelining, RegistryCalls):
    """A connection to one registry on a ``RegistryServer``; thread-safe.

    >>> cli = RegistryClient("tcp://127.0.0.1:5555", registry="default", timeout=10.0)  # doctest: +SKIP
    >>> cli.register_operation(spec)                                                      # doctest: +SKIP
    >>> watch = cli.register_watcher(spec.id)   # an OpsFuture: .get(timeout) or await  # doctest: +SKIP
    """

    def __init__(
        self,
        endpoint: str,
        registry: str = "default",
        timeout: float = 10.0,
        *,
        heartbeat: float = 1.0,
        max_frame: int = 1 << 20,
        curve_server_key: bytes | None = None,
        curve_keypair: tuple[bytes, bytes] | None = None,
        context: zmq.Context[Any] | None = None,
        direct: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.registry = registry
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.max_frame = max_frame
        self._ctx = context or zmq.Context.instance()
        self._outbox: Outbox[Pending | Ping | Close] = Outbox()
        self._ids = itertools.count(1)
        self._epoch = ""
        self._forgets = 0  # how many times the server said it had forgotten this client
        self._pending: dict[int, Pending] = {}
        #: calls sent again after ``ServerRestarted``, stamped with the new epoch and not yet
        #: answered; kept apart from ``_pending`` so that learning of that same restart from
        #: a heartbeat does not fail them as ambiguous (they were sent to the new server)
        self._resent: dict[int, Pending] = {}
        #: state-changing calls waiting for the first epoch (sent on the first heartbeat answer)
        self._parked: list[Pending] = []
        self._closed = False
        self.direct = direct
        self._curve = None
        if curve_server_key is not None:
            self._curve = (curve_server_key, curve_keypair or zmq.curve_keypair())
        self._sock = self._new_socket()
        self._local = threading.local()
        self._direct_socks: list[zmq.Socket[bytes]] = []
        #: direct sockets inside a call right now: only their own thread may close them
        self._direct_busy: set[zmq.Socket[bytes]] = set()
        self._direct_lock = threading.Lock()
        self.connected = threading.Event()
        self._last_pong = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="opsreg-client-io", daemon=True)
        self._thread.start()

    def _new_socket(self) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, b"c" + os.urandom(15))
        sock.setsockopt(zmq.SNDHWM, 100_000)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        sock.setsockopt(zmq.RECONNECT_IVL, 50)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if self._curve is not None:
            server_key, (public, secret) = self._curve
            sock.curve_publickey = public
            sock.curve_secretkey = secret
            sock.curve_serverkey = server_key
        sock.connect(self.endpoint)
        return sock

    # --- life cycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the I/O thread and close every socket; pending calls fail ``Unavailable``."""
        if self._closed:
            return
        self._closed = True
        self._outbox.put(CLOSE)
        self._thread.join(timeout=10)
        self._outbox.close()
        # A socket belongs to one thread: close the idle ones here (the lock is the memory
        # barrier ZeroMQ asks for when a socket changes threads); one that is inside a
        # call is closed by its own thread when the call returns (``_leave_direct``).
        with self._direct_lock:
            idle = [s for s in self._direct_socks if s not in self._direct_busy]
            self._direct_socks = [s for s in self._direct_socks if s in self._direct_busy]
        for sock in idle:
            sock.close(linger=0)

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server_epoch(self) -> str:
        """The incarnation id of the server last heard from ('' before the first heartbeat)."""
        return self._epoch

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the server answers heartbeats (after a restart: the new one)."""
        return self.connected.wait(self.timeout if timeout is None else timeout)

    # --- plumbing ---------------------------------------------------------------------------------

    def submit(self, method: str, *args: Any) -> OpsFuture[Any]:
        """Send one request without waiting; the future holds its answer.

        For ``register_watcher``, ``wait_all``, ``wait_any`` and
        ``wait_for_advance`` the answer is itself a future. Futures are
        awaitable, so ``await client.submit("watermark")`` works in asyncio.
        """
        if method not in calls.METHODS:
            raise InvalidArgument(f"unknown method {method!r}")
        if self._closed:
            raise Unavailable("client is closed")
        first: OpsFuture[Any] = OpsFuture()
        self._outbox.put(Pending(method, args, first))
        return first

    def _call(self, method: str, *args: Any) -> Any:
        if self.direct and method not in calls.FUTURE:
            return self._direct_call(method, args)
        first = self.submit(method, *args)
        try:
            return first.get(timeout=self.timeout)
        except pykka.Timeout:
            raise self.no_answer(method) from None

    def _await_epoch(self, method: str, deadline: float) -> str:
        """The first epoch, waited for: a state-changing request must name an incarnation."""
        if self.connected.wait(max(0.0, deadline - time.monotonic())) and self._epoch:
            return self._epoch
        raise self._not_sent(method)

    def _request_frame(self, req_id: int, epoch: str, method: str, args: tuple[Any, ...]) -> bytes:
        try:
            frame = codec.encode_request(req_id, epoch, self.registry, method, args)
        except (TypeError, ValueError, NotImplementedError) as exc:
            raise InvalidArgument(f"{method}: cannot encode arguments: {exc}") from None
        if len(frame) > self.max_frame:
            raise TooLarge(len(frame), self.max_frame)
        return frame

    def _ping_soon(self) -> None:
        self._outbox.put(PING)

    def no_answer(self, method: str) -> Unavailable:
        """The error for a ``method`` call that got no answer in ``timeout`` (a ``CallTimeout``:
        an ``Unavailable`` and a ``TimeoutError``; a state-changing call may have happened)."""
        maybe = "; it may or may not have happened" if calls.changes_state(method) else ""
        return CallTimeout(
            f"no answer to {method} from {self.endpoint} within {self.timeout}s{maybe}"
        )

    # --- the I/O thread -----------------------------------------------------------------------------

    def _loop(self) -> None:
        sock = self._sock
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._outbox.fd, zmq.POLLIN)
        next_beat = 0.0
        next_sweep = time.monotonic() + _SWEEP_EVERY
        try:
            while True:
                now = time.monotonic()
                if now >= next_beat:
                    self._send_frame(
                        codec.encode_request(0, self._epoch, self.registry, "ping", ())
                    )
                    next_beat = now + self.heartbeat
                    if now - self._last_pong > 3 * self.heartbeat:
                        self.connected.clear()  # the server went quiet
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + _SWEEP_EVERY
                wait_ms = max(0.0, (min(next_beat, next_sweep) - time.monotonic()) * 1000)
                events = dict(poller.poll(int(wait_ms)))
                if self._outbox.fd in events and not self._take_outbox():
                    return
                if sock in events:
                    self._read_replies()
        except Exception:
            log.exception("client I/O loop failed")
        finally:
            self._fail_all(Unavailable("client is closed"))
            sock.close(linger=0)

    def _take_outbox(self) -> bool:
        batch: list[tuple[int, Pending, bytes]] = []
        size = 0
        for item in self._outbox.drain():
            if isinstance(item, Close):
                self._send_batch(batch)
                return False
            if isinstance(item, Ping):
                self._send_frame(codec.encode_request(0, self._epoch, self.registry, "ping", ()))
                continue
            encoded = self._encode(item)
            if encoded is not None:
                batch, size = self._pack(batch, size, encoded)
        self._send_batch(batch)
        return True

    def _pack(
        self,
        batch: list[tuple[int, Pending, bytes]],
        size: int,
        encoded: tuple[int, Pending, bytes],
    ) -> tuple[list[tuple[int, Pending, bytes]], int]:
        """Add one encoded request to ``batch`` (``size`` bytes so far), sending the batch
        first when the request would not fit; returns the batch and its size."""
        if batch and (len(batch) >= codec.MAX_BATCH or size + len(encoded[2]) > self.max_frame):
            self._send_batch(batch)
            batch, size = [], 0
        batch.append(encoded)
        return batch, size + len(encoded[2])

    def _send(self, p: Pending) -> None:
        encoded = self._encode(p)
        if encoded is not None:
            self._send_batch([encoded])

    def _encode(self, p: Pending, epoch: str | None = None) -> tuple[int, Pending, bytes] | None:
        """The request's frame, or None when it cannot be sent now (parked, or failed)."""
        if epoch is None:
            epoch = self._epoch
            # Parked until the first heartbeat answer names an epoch; once one request is
            # parked, those after it queue behind it so a pipeline keeps its order.
            if self._parked or (not epoch and calls.changes_state(p.method)):
                self._parked.append(p)
                return None
        req_id = next(self._ids)
        try:
            frame = codec.encode_request(req_id, epoch, self.registry, p.method, p.args)
        except (TypeError, ValueError, NotImplementedError) as exc:
            self._settle(p, InvalidArgument(f"{p.method}: cannot encode arguments: {exc}"), True)
            return None
        if len(frame) > self.max_frame:
            self._settle(p, TooLarge(len(frame), self.max_frame), True)
            return None
        p.stamp = epoch
        return req_id, p, frame

    def _send_batch(self, batch: list[tuple[int, Pending, bytes]]) -> None:
        """Send queued requests as one frame: one send and one receive pass on each side."""
        if not batch:
            return
        now = time.monotonic()
        for req_id, p, _ in batch:
            p.sent_at = now
            self._pending[req_id] = p
        frame = batch[0][2] if len(batch) == 1 else codec.join_requests([f for _, _, f in batch])
        if not self._send_frame(frame):
            for req_id, p, _ in batch:
                del self._pending[req_id]
                self._settle(p, Unavailable("client send queue is full"), True)

    def _send_frame(self, frame: bytes) -> bool:
        try:
            self._sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _read_replies(self) -> None:
        sock = self._sock
        recv, get = sock.recv, sock.get
        first = True
        while True:
            # The poller said POLLIN for the first; asking EVENTS before the next is
            # cheaper than raising Again, and the waiting caller gets the GIL sooner.
            if not first and not cast(int, get(_EVENTS)) & _POLLIN:
                return
            first = False
            try:
                frame = recv(_NOBLOCK)
            except zmq.Again:
                return
            try:
                replies = codec.decode_replies(frame)
            except Exception:
                log.warning("ignored an unreadable reply frame (%d bytes)", len(frame))
                continue
            for reply in replies:
                self._on_reply(reply)

    def _on_reply(self, reply: codec.Reply) -> None:
        if reply.status == codec.PONG:
            self._on_pong(reply)
            if self._parked and self._epoch:
                self._send_parked()
            return
        p = self._pending.get(reply.req_id)
        if p is None:
            p = self._resent.pop(reply.req_id, None)
            if p is None:
                return
            # Answered by the incarnation it was re-sent to: an ordinary request from here.
            self._pending[reply.req_id] = p
        if reply.status == codec.ACCEPTED:
            p.accepted = True
            if p.final is None:
                p.final = OpsFuture()
            if p.first is not None and not p.first.done():
                p.first.set(p.final)
            return
        del self._pending[reply.req_id]
        if reply.status == codec.OK:
            try:
                value = codec.decode_value(p.method, reply.payload)
            except Exception as exc:
                self._settle(p, Unavailable(f"unreadable reply to {p.method}: {exc}"), True)
                return
            self._settle(p, value, False)
        else:
            error = codec.decode_error(reply.payload)
            if self._reestablish(p, error):
                return
            if isinstance(error, Unavailable):
                # The server we addressed is gone; learn the new one at once.
                self._send_frame(codec.encode_request(0, self._epoch, self.registry, "ping", ()))
            if isinstance(error, ServerRestarted) and self._resend(p, error):
                return
            self._settle(p, error, True)

    def _resend(self, p: Pending, refusal: ServerRestarted) -> bool:
        """Send ``p`` again to the incarnation that refused it unexecuted, while its caller
        still waits; False when it should fail instead."""
        if (
            p.accepted
            or p.resends >= MAX_RESENDS
            or not resendable(refusal, p.stamp)
            or time.monotonic() - p.born >= self.timeout
        ):
            return False
        encoded = self._encode(p, refusal.epoch)
        if encoded is None:
            return True  # failed with its encoding error
        req_id, _, frame = encoded
        p.resends += 1
        p.sent_at = time.monotonic()
        self._resent[req_id] = p
        if not self._send_frame(frame):
            del self._resent[req_id]
            self._settle(p, Unavailable("client send queue is full"), True)
        return True

    def _send_parked(self) -> None:
        parked, self._parked = self._parked, []
        batch: list[tuple[int, Pending, bytes]] = []
        size = 0
        stale = time.monotonic() - self.timeout
        for p in parked:
            if p.born < stale:  # its caller has given up: it must not run unseen
                self._settle(p, self._not_sent(p.method), True)
                continue
            encoded = self._encode(p)
            if encoded is not None:
                batch, size = self._pack(batch, size, encoded)
        self._send_batch(batch)

    def _settle(self, p: Pending, value: Any, is_error: bool) -> None:
        # A wait re-established after a server restart has no first future: whatever
        # answers it (the value, or e.g. NotFound) goes to the caller's final future.
        target = p.final if p.accepted or p.first is None else p.first
        if target is None or target.done():
            return
        if is_error:
            target.set_exception(value)
        else:
            target.set(value)

    def _on_pong(self, reply: codec.Reply) -> None:
        # The payload is the server's epoch, or ``[epoch, False]`` when the server has
        # forgotten this client (it gave up on its heartbeats) since the last pong.
        epoch = msgspec.msgpack.decode(bytes(reply.payload))
        known = True
        if isinstance(epoch, list) and len(epoch) == 2 and isinstance(epoch[1], bool):
            epoch, known = epoch
        if not isinstance(epoch, str):
            return
        previous, self._epoch = self._epoch, epoch
        self._last_pong = time.monotonic()
        self.connected.set()
        if previous and previous != epoch:
            self._server_restarted()
        elif not known:
            self._server_forgot_me()

    def _server_forgot_me(self) -> None:
        """The server gave up on this client and cancelled its waits (the replies saying
        so may have been lost): establish them again, as after a restart, with the
        caller's futures unchanged; a ``wait_all`` barrier fails with ``WaitCancelled``
        (another caller may have taken the barrier meanwhile)."""
        self._forgets += 1
        for req_id, p in list(self._pending.items()):
            # A wait re-established on its WaitCancelled reply is already live again.
            if p.accepted and p.covers < self._forgets:
                del self._pending[req_id]
                if not self._reestablish(p, WaitCancelled(FORGOTTEN)):
                    self._settle(p, WaitCancelled(FORGOTTEN), True)

    def _reestablish(self, p: Pending, error: OpsLifecycleError) -> bool:
        """Send an accepted wait again after the server cancelled it because it gave up
        on this client; True when it was (``wait_all`` is not: its barrier is gone)."""
        if not (p.accepted and isinstance(error, WaitCancelled) and p.method != "wait_all"):
            return False
        again = Pending(p.method, p.args, None, p.final)
        again.covers = self._forgets + 1  # the pong saying "forgotten" is still to come
        self._send(again)
        return True

    def _server_restarted(self) -> None:
        pending, self._pending = self._pending, {}
        resend: list[Pending] = []
        for p in pending.values():
            if p.accepted:
                if p.method == "wait_all":
                    self._settle(
                        p, Unavailable("the server restarted; its wait_all barrier was lost"), True
                    )
                else:
                    # Re-establish the wait on the new server; the caller's future stays the same.
                    again = Pending(p.method, p.args, None, p.final)
                    resend.append(again)
            elif calls.changes_state(p.method):
                self._settle(
                    p,
                    Unavailable(
                        "the server restarted before answering; it may or may not have happened"
                    ),
                    True,
                )
            else:
                resend.append(p)
        for p in resend:
            self._send(p)

    def _sweep(self, now: float) -> None:
        """Forget requests nobody can still be waiting for (their caller timed out)."""
        horizon = now - 2 * self.timeout
        for table in (self._pending, self._resent):
            for req_id, p in list(table.items()):
                if not p.accepted and p.sent_at < horizon:
                    del table[req_id]
                    self._settle(p, CallTimeout(f"no answer to {p.method}"), True)
        if self._parked:
            waiting = now - self.timeout
            expired = [p for p in self._parked if p.born < waiting]
            self._parked = [p for p in self._parked if p.born >= waiting]
            for p in expired:
                self._settle(p, self._not_sent(p.method), True)

    def _not_sent(self, method: str) -> Unavailable:
        return CallTimeout(
            f"no server answered at {self.endpoint} within {self.timeout}s; {method} was not sent"
        )

    def _fail_all(self, error: OpsLifecycleError) -> None:
        pending, self._pending = self._pending, {}
        resent, self._resent = self._resent, {}
        parked, self._parked = self._parked, []
        for p in [*pending.values(), *resent.values(), *parked]:
            self._settle(p, error, True)
        for item in self._outbox.drain():
            if isinstance(item, Pending):
                self._settle(item, error, True)

    # --- docs/semantics.md: the methods come from RegistryCalls, as for ``OpsRegistry`` -------------

    def register_operation(self, spec: OperationSpec) -> None:
        if not (self.direct and isinstance(spec, OperationSpec) and spec.lease):
            return super().register_operation(spec)
        # A lease follows the liveness of the socket that heartbeats (the I/O thread's),
        # not of this thread's own socket, which never does.
        first = self.submit("register_operation", spec)
        try:
            first.get(timeout=self.timeout)
        except pykka.Timeout:
            raise self.no_answer("register_operation") from None
