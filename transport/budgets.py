"""Reply bytes a server holds for its clients, bounded per client and in total.

libzmq counts messages, not bytes, and has no per-peer accounting. The server
sets ``ROUTER_MANDATORY`` and a modest per-peer ``SNDHWM`` (``reply_hwm``
messages): a send to a peer that is not reading then fails with ``EAGAIN``
instead of queueing without end. From then on that client's replies wait in a
backlog of encoded frames, counted in bytes, which the I/O thread retries on
later passes (in order: nothing overtakes the backlog). While a client's
backlog is at its budget, or the server's total is at its budget, the client's
new requests are refused and the replies still to come for it are replaced by
a small ``LimitExceeded``; a client that keeps sending without reading loses
even those once its backlog is a frame beyond its budget. Other clients are not
affected. What libzmq itself holds per peer is bounded by ``reply_hwm`` frames
of at most ``max_reply_frame`` bytes each.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import zmq

from actors.errors import LimitExceeded
from actors.model import CompletionEntry
from transport import codec

__all__ = ["ReplyQueues", "publish"]

_NOBLOCK: Final = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK: Final = int(zmq.SNDMORE | zmq.NOBLOCK)
_SNDMORE: Final = int(zmq.SNDMORE)


class ReplyQueues:
    """Sends replies on a ROUTER socket; keeps what a peer cannot take yet. I/O thread only."""

    def __init__(
        self,
        router: zmq.Socket[bytes],
        client_budget: int,
        server_budget: int,
        max_reply_frame: int,
        refused: Callable[[LimitExceeded], None] = lambda exc: None,
    ) -> None:
        self.router = router
        self.max_reply_frame = max_reply_frame
        self._refused = refused
        self.client_budget = client_budget
        self.server_budget = server_budget
        #: a backlog may pass its budget by one frame (the reply that crossed it)
        self._client_hard = client_budget + max_reply_frame
        self._server_hard = server_budget + max_reply_frame
        self.backlog: dict[bytes, deque[bytes]] = {}
        self.bytes: dict[bytes, int] = {}
        self.total = 0
        self.dropped = 0

    def over(self, identity: bytes) -> bool:
        """Whether ``identity`` is at its budget (or the server at its own) with a backlog."""
        held = self.bytes.get(identity)
        return held is not None and (held >= self.client_budget or self.total >= self.server_budget)

    def refusal(self, identity: bytes) -> LimitExceeded:
        """The error for a client that is over its budget (or the server over its own)."""
        if self.bytes.get(identity, 0) >= self.client_budget:
            return LimitExceeded("queued reply bytes for this client", self.client_budget)
        return LimitExceeded("queued reply bytes for the server", self.server_budget)

    def send_reply(self, identity: bytes, answer: tuple[int, int, Any]) -> None:
        """One ``(req_id, status, payload)`` reply; too large a frame becomes a refusal."""
        frame = codec.encode_reply(*answer)
        if len(frame) > self.max_reply_frame:
            exc = LimitExceeded("reply frame bytes", self.max_reply_frame)
            self._refused(exc)
            frame = codec.encode_reply(answer[0], codec.ERROR, codec.encode_error(exc))
        self.send(identity, frame)

    def send_batch(self, identity: bytes, group: list[tuple[int, int, Any]]) -> None:
        """Replies in batch frames of at most ``MAX_BATCH`` replies and ``max_reply_frame`` bytes."""
        if len(group) == 1:
            self.send_reply(identity, group[0])
            return
        if len(group) > codec.MAX_BATCH:
            for start in range(0, len(group), codec.MAX_BATCH):
                self.send_batch(identity, group[start : start + codec.MAX_BATCH])
            return
        frame = codec.encode_reply_batch(group)
        if len(frame) <= self.max_reply_frame:
            self.send(identity, frame)
            return
        half = len(group) // 2  # rare: halving costs a few encodes, not a size per reply
        self.send_batch(identity, group[:half])
        self.send_batch(identity, group[half:])

    def send(self, identity: bytes, frame: bytes) -> None:
        """Send one reply, or queue it behind the client's backlog; a gone client loses it."""
        queued = self.backlog.get(identity)
        if queued is None:
            try:
                self.router.send(identity, _SNDMORE_NOBLOCK)
            except zmq.Again:
                queued = self.backlog[identity] = deque()
                self.bytes[identity] = 0
            except zmq.ZMQError:
                return  # EHOSTUNREACH: the peer is gone
            else:
                self.router.send(frame, _NOBLOCK)
                return
        size = len(frame)
        held = self.bytes[identity]
        if held + size > self._client_hard or self.total + size > self._server_hard:
            self.dropped += 1
            return
        queued.append(frame)
        self.bytes[identity] = held + size
        self.total += size

    def discard(self, identity: bytes) -> int:
        """Drop what is held for a client the server forgot; returns the bytes let go.

        A peer that stays connected but never reads again would otherwise keep its
        backlog (and the I/O loop's quick retries) for as long as the connection lives.
        """
        queued = self.backlog.pop(identity, None)
        if queued is None:
            return 0
        held = self.bytes.pop(identity)
        self.total -= held
        return held

    def flush(self) -> None:
        """Retry every backlog, oldest frame first, until its peer pushes back again."""
        send = self.router.send
        for identity, queued in list(self.backlog.items()):
            sent = 0
            try:
                while queued:
                    send(identity, _SNDMORE_NOBLOCK)
                    frame = queued.popleft()
                    send(frame, _NOBLOCK)
                    sent += len(frame)
            except zmq.Again:
                pass
            except zmq.ZMQError as exc:
                if exc.errno != errno.EHOSTUNREACH:
                    raise
                sent += sum(len(f) for f in queued)  # the peer is gone: its backlog goes too
                queued.clear()
            self.total -= sent
            if queued:
                self.bytes[identity] -= sent
            else:
                del self.backlog[identity], self.bytes[identity]


def publish(
    pub: zmq.Socket[bytes], topic: bytes, entries: list[CompletionEntry], max_frame: int
) -> None:
    """Publish feed entries in frames of at most ``max_frame`` bytes, so that the PUB
    queue's high-water mark (in messages) bounds its bytes; a single entry larger than
    that is left out, and subscribers repair the gap from ``list_since``."""
    frame = codec.encode_feed("entries", entries[-1].seq, entries)
    if len(frame) <= max_frame:
        pub.send(topic, _SNDMORE)
        pub.send(frame)
    elif len(entries) > 1:
        half = len(entries) // 2
        publish(pub, topic, entries[:half], max_frame)
        publish(pub, topic, entries[half:], max_frame)
