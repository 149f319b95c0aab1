"""A queue that other threads fill and one socket-owning thread drains; the server's messages on it.

ZeroMQ sockets belong to one thread. Producers (actor threads, caller threads)
append to a deque and, only when the consumer is not already awake, write one
byte to a pipe the consumer's ``zmq.Poller`` watches. Many items cost one wake.

The server's I/O thread drains an ``Outbox[ServerItem]``; each item is a
small typed message, dispatched on its type:

* :class:`Sink`: one call's answer, put by the registry actor that answered it;
* :class:`Settled`: a future a call was answered ``ACCEPTED`` with has settled;
* :class:`Publish`: feed entries a registry made durable, in order;
* :class:`Opened`, :class:`Closed`: the opener thread's news (``transport.registries``).

They are ``__slots__`` classes, not dataclasses: one is built per call on the hot path.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from transport import codec

if TYPE_CHECKING:
    from actors import OpsRegistry
    from actors.futures import OpsFuture
    from actors.model import CompletionEntry

__all__ = ["Closed", "Opened", "Outbox", "Publish", "ServerItem", "Settled", "Sink"]

T = TypeVar("T")


class Outbox(Generic[T]):
    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._awake = False
        self.closed = False

    @property
    def fd(self) -> int:
        """The file descriptor to poll for ``POLLIN``."""
        return self._r

    def put(self, item: T) -> None:
        self._items.append(item)
        self.wake()

    def wake(self) -> None:
        """Make the consumer's poll return (with nothing new to drain, if nothing was put)."""
        if not self._awake:
            self._awake = True
            # A full pipe means the consumer is awake already; a closed one, shutting down.
            with contextlib.suppress(OSError):
                os.write(self._w, b"x")

    def drain(self) -> list[T]:
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
    """Where an actor puts one call's answer; duck-types the reply future the actor expects.

    Once answered, the sink itself goes on the outbox: it carries the answer
    (``status``, ``value``) with everything the I/O thread needs to send it.
    """

    __slots__ = (
        "_done",
        "batched",
        "identity",
        "method",
        "outbox",
        "registry",
        "req_id",
        "status",
        "value",
    )

    def __init__(
        self,
        outbox: Outbox[ServerItem],
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
        self.batched = batched
        self.status = codec.OK
        self.value: Any = None
        self._done = False

    def done(self) -> bool:
        return self._done

    def set(self, value: Any = None) -> None:
        if self._done:  # the first answer is the answer, as with a future
            return
        self._done = True
        self.value = value
        self.outbox.put(self)

    def set_exception(self, exc: Any = None) -> None:
        if self._done:
            return
        self._done = True
        self.status = codec.ERROR
        self.value = exc[1] if isinstance(exc, tuple) else exc
        self.outbox.put(self)


class Settled:
    """A future a call was answered ``ACCEPTED`` with has settled: send its final reply."""

    __slots__ = ("future", "identity", "method", "req_id")

    def __init__(self, identity: bytes, req_id: int, method: str, future: OpsFuture[Any]) -> None:
        self.identity = identity
        self.req_id = req_id
        self.method = method
        self.future = future


class Publish:
    """Feed entries registry ``name`` made durable, to publish in this order."""

    __slots__ = ("entries", "name")

    def __init__(self, name: str, entries: list[CompletionEntry]) -> None:
        self.name = name
        self.entries = entries


class Opened:
    """The opener thread opened registry ``name`` (``registry``), or failed to (``error``)."""

    __slots__ = ("error", "name", "registry")

    def __init__(
        self, name: str, registry: OpsRegistry | None, error: BaseException | None
    ) -> None:
        self.name = name
        self.registry = registry
        self.error = error


class Closed:
    """The opener thread closed idle registry ``name``, or ``kept`` it (it held state)."""

    __slots__ = ("kept", "name")

    def __init__(self, name: str, kept: bool) -> None:
        self.name = name
        self.kept = kept


#: What the server's outbox carries.
ServerItem = Sink | Settled | Publish | Opened | Closed
