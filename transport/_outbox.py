"""A queue that other threads fill and one socket-owning thread drains.

ZeroMQ sockets belong to one thread. Producers (actor threads, caller threads)
append to a deque and, only when the consumer is not already awake, write one
byte to a pipe the consumer's ``zmq.Poller`` watches. Many items cost one wake.
A :class:`Sink` is where a registry actor puts one call's answer for the server.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from typing import Any

from transport import codec


class Outbox:
    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._awake = False
        self.closed = False

    @property
    def fd(self) -> int:
        """The file descriptor to poll for ``POLLIN``."""
        return self._r

    def put(self, item: Any) -> None:
        self._items.append(item)
        if not self._awake:
            self._awake = True
            # A full pipe means the consumer is awake already; a closed one, shutting down.
            with contextlib.suppress(OSError):
                os.write(self._w, b"x")

    def drain(self) -> list[Any]:
        """Consumer side: clear the wake-up, then take everything queued."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 65536)
        self._awake = False
        items = self._items
        out = []
        while items:
            out.append(items.popleft())
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._r)
            os.close(self._w)


class Sink:
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
