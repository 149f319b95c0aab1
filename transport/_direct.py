"""One request and its reply on a calling thread's own DEALER (``RegistryClient``'s direct path).

Free functions over a socket the caller owns; they decide nothing about errors,
so the client words every refusal in one place.
"""

from __future__ import annotations

import contextlib
import time
from typing import Final

import zmq

from transport import codec

__all__ = ["await_reply", "send"]

_NOBLOCK: Final = int(zmq.NOBLOCK)
_RCVTIMEO: Final = int(zmq.RCVTIMEO)


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
