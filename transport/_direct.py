"""``RegistryClient``'s direct path: one request and its reply on the calling thread's own DEALER.

A synchronous call that returns no future skips the I/O thread (``transport.client``):
``DirectPath`` gives each calling thread a socket of its own, sends one frame and
waits for the reply with that request id. The free functions below work on a socket
the caller owns and decide nothing about errors, so the client words every refusal
in one place (its ``no_answer``, ``_not_sent``, ``_request_frame``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Final

import zmq

from actors import calls
from transport import codec
from transport.errors import CallTimeout, ServerRestarted, Unavailable

__all__ = ["MAX_RESENDS", "DirectPath", "await_reply", "resendable", "send"]

_NOBLOCK: Final = int(zmq.NOBLOCK)
_RCVTIMEO: Final = int(zmq.RCVTIMEO)
#: times one call is sent again after a ``ServerRestarted`` refusal (restarts in a row)
MAX_RESENDS: Final = 3


def send(sock: zmq.Socket[bytes], frame: bytes, timeout: float) -> bool:
    """Queue ``frame``; False when no peer appeared to queue it for within ``timeout``."""
    try:
        sock.send(frame, _NOBLOCK)
    except zmq.Again:
        # No connected peer to queue for (e.g. a refused CURVE handshake): wait for one.
        if not sock.poll(max(1, int(timeout * 1000)), zmq.POLLOUT):
            return False
        sock.send(frame, _NOBLOCK)
    return True


def await_reply(sock: zmq.Socket[bytes], req_id: int, deadline: float) -> codec.Reply | None:
    """The reply to ``req_id``, or None at ``deadline`` (monotonic clock)."""
    while True:
        # A blocking recv bounded by RCVTIMEO: one call into libzmq per reply,
        # where poll-then-recv builds a Poller each time.
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.set(_RCVTIMEO, max(1, int(remaining * 1000)))
        try:
            data = sock.recv()
        except zmq.Again:  # RCVTIMEO expired
            return None
        with contextlib.suppress(Exception):  # unreadable: keep waiting for ours
            reply = codec.decode_reply(data)
            if reply.req_id == req_id:
                return reply
        # else: the answer to an earlier call that gave up waiting


def resendable(refusal: ServerRestarted, sent_with: str) -> bool:
    """A refusal naming another incarnation than the one the request named: re-send there."""
    return bool(refusal.epoch) and refusal.epoch != sent_with


class DirectPath:
    """A mixin of ``RegistryClient``: its calls on the calling thread's own socket."""

    # Provided by RegistryClient.
    endpoint: str
    timeout: float
    _closed: bool
    _epoch: str
    _ids: Any
    _local: threading.local
    _direct_lock: threading.Lock
    _direct_socks: list[zmq.Socket[bytes]]
    _direct_busy: set[zmq.Socket[bytes]]

    def _new_socket(self) -> zmq.Socket[bytes]:
        raise NotImplementedError

    def _await_epoch(self, method: str, deadline: float) -> str:
        raise NotImplementedError

    def _request_frame(self, req_id: int, epoch: str, method: str, args: tuple[Any, ...]) -> bytes:
        raise NotImplementedError

    def no_answer(self, method: str) -> Unavailable:
        """The error for a ``method`` call that got no answer in time (the client's)."""
        raise NotImplementedError

    def _ping_soon(self) -> None:
        raise NotImplementedError

    def _direct_call(self, method: str, args: tuple[Any, ...]) -> Any:
        """A plain call on this thread's own socket: no hand-off to the I/O thread.

        Each calling thread gets a DEALER of its own (sockets are never shared
        between threads), so a synchronous call costs one send and one receive
        here. Replies are matched by request id; a late reply to an earlier call
        that timed out is discarded.
        """
        sock = self._enter_direct()
        try:
            return self._exchange(sock, method, args)
        finally:
            self._leave_direct(sock)

    def _enter_direct(self) -> zmq.Socket[bytes]:
        """This thread's socket, marked busy so ``close`` leaves it to this thread."""
        with self._direct_lock:
            if self._closed:
                raise Unavailable("client is closed")
            sock: zmq.Socket[bytes] | None = getattr(self._local, "sock", None)
            if sock is None:
                sock = self._new_socket()
                self._direct_socks.append(sock)
                self._local.sock = sock
            self._direct_busy.add(sock)
        return sock

    def _leave_direct(self, sock: zmq.Socket[bytes]) -> None:
        with self._direct_lock:
            self._direct_busy.discard(sock)
            if not self._closed:
                return
            if sock in self._direct_socks:
                self._direct_socks.remove(sock)
        sock.close(linger=0)  # the client was closed during this call

    def _exchange(self, sock: zmq.Socket[bytes], method: str, args: tuple[Any, ...]) -> Any:
        deadline = time.monotonic() + self.timeout
        epoch = self._epoch
        if not epoch and calls.changes_state(method):
            epoch = self._await_epoch(method, deadline)
        resends = 0
        while True:
            req_id = next(self._ids)
            frame = self._request_frame(req_id, epoch, method, args)
            if not send(sock, frame, self.timeout):
                raise CallTimeout(f"cannot reach {self.endpoint} to send {method}")
            reply = await_reply(sock, req_id, deadline)
            if reply is None:
                raise self.no_answer(method)
            if reply.status == codec.OK:
                return codec.decode_value(method, reply.payload)
            error = codec.decode_error(reply.payload)
            if isinstance(error, Unavailable):
                self._ping_soon()  # learn the new server's epoch at once
            if (
                isinstance(error, ServerRestarted)
                and resendable(error, epoch)
                and resends < MAX_RESENDS
                and time.monotonic() < deadline
            ):
                # Refused unexecuted by the incarnation it names: send it there again.
                epoch = error.epoch
                resends += 1
                continue
            raise error
