"""``FeedSubscriber``: every completion of a registry, in seq order, no gaps, no duplicates.

This is the ZeroMQ guide's Clone pattern. The subscriber connects its SUB
socket first, then reads ``list_since(cursor)`` over the request socket and
drops what it already has. From then on it takes entries from the PUB
stream; whenever the stream cannot be trusted — a seq jumps ahead, a
heartbeat's watermark is ahead of the cursor, or nothing arrives for a while
— it repairs from ``list_since``. PUB drops silently at its high-water mark;
the repair turns that into zero lost entries. Only when the registry no
longer holds the missing entries does it raise :class:`FeedGap`.

A repair reads ``list_since`` page by page (each reply is bounded) until it
reaches the watermark the registry reported. A cursor *ahead* of the
registry's watermark can never be satisfied (the store behind the registry
lost entries this subscriber already had, or it is another registry), so it
raises :class:`FeedCursorAhead` instead of waiting forever. Only
``list_since`` decides that, and only when two answers in a row agree (the
registry publishes an entry after its watermark has moved, so an answer read
after an entry arrived is never behind it); a heartbeat behind the cursor —
normal for a server that has just restarted and has not published yet —
merely asks for that check after ``_BEHIND_BEATS`` heartbeats in a row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import zmq

from actors.model import CompletionEntry
from transport import codec
from transport.client import RegistryClient
from transport.errors import FeedCursorAhead, FeedGap, Unavailable

__all__ = ["FeedSubscriber"]

log = logging.getLogger(__name__)

#: entries one ``list_since`` reply of a repair holds at most
_REPAIR_PAGE: Final = 1024
#: heartbeats in a row with a watermark behind the cursor before ``list_since`` is asked
_BEHIND_BEATS: Final = 3


class FeedSubscriber:
    """Iterate a registry's completion entries from ``after_seq + 1`` on.

    >>> sub = FeedSubscriber("tcp://127.0.0.1:5556", "tcp://127.0.0.1:5555")  # doctest: +SKIP
    >>> for entry in sub:                                                       # doctest: +SKIP
    ...     print(entry.seq, entry.display_name, entry.terminal_outcome)
    """

    def __init__(
        self,
        feed_endpoint: str,
        request_endpoint: str,
        registry: str = "default",
        after_seq: int = 0,
        *,
        rcvhwm: int = 100_000,
        idle_check: float = 2.0,
        timeout: float = 10.0,
        curve_server_key: bytes | None = None,
        curve_keypair: tuple[bytes, bytes] | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        if after_seq < 0:
            raise ValueError("after_seq must be >= 0")
        self.registry = registry
        #: the highest seq received (handed out or queued to be)
        self.cursor = after_seq
        self.idle_check = idle_check
        self.repairs = 0
        self.duplicates = 0
        self._ready: deque[CompletionEntry] = deque()
        self._ctx = context or zmq.Context.instance()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, rcvhwm)
        if curve_server_key is not None:
            public, secret = curve_keypair or zmq.curve_keypair()
            self._sub.curve_publickey = public
            self._sub.curve_secretkey = secret
            self._sub.curve_serverkey = curve_server_key
        self._sub.setsockopt(zmq.SUBSCRIBE, codec.topic(registry))
        self._sub.connect(feed_endpoint)
        self._client = RegistryClient(
            request_endpoint,
            registry=registry,
            timeout=timeout,
            curve_server_key=curve_server_key,
            curve_keypair=curve_keypair,
            context=context,
        )
        self._needs_catch_up = True
        self._behind_beats = 0
        self._last_heard = time.monotonic()
        self._closed = False

    # --- iteration -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[CompletionEntry]:
        return self

    def __next__(self) -> CompletionEntry:
        entry = self.next(timeout=None)
        assert entry is not None
        return entry

    def __aiter__(self) -> AsyncIterator[CompletionEntry]:
        return self

    async def __anext__(self) -> CompletionEntry:
        entry = await asyncio.to_thread(self.next, None)
        assert entry is not None
        return entry

    def next(self, timeout: float | None = None) -> CompletionEntry | None:
        """The next entry in seq order, or None if none arrives within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._needs_catch_up:
                self._repair()
                if self._ready:
                    break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            wait = self.idle_check if remaining is None else min(remaining, self.idle_check)
            if self._sub.poll(int(wait * 1000), zmq.POLLIN):
                self._drain_socket()
            elif time.monotonic() - self._last_heard >= self.idle_check:
                # Silence: maybe the last message (or heartbeat) was dropped.
                self._needs_catch_up = True
        entry = self._ready.popleft()
        return entry

    # --- internals ----------------------------------------------------------------------------------

    def _drain_socket(self) -> None:
        for _ in range(10_000):
            try:
                _topic, frame = self._sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue  # not two frames: not ours
            self._last_heard = time.monotonic()
            try:
                msg = codec.decode_feed(frame)
            except Exception:
                log.warning("ignored an unreadable feed frame")
                continue
            if msg.kind == "heartbeat":
                if msg.watermark > self.cursor:
                    self._needs_catch_up = True
                if msg.watermark < self.cursor:
                    self._behind_beats += 1
                    if self._behind_beats >= _BEHIND_BEATS:
                        self._behind_beats = 0
                        self._needs_catch_up = True  # the repair asks list_since
                else:
                    self._behind_beats = 0
                continue
            for entry in msg.entries:
                self._offer(entry)

    def _offer(self, entry: CompletionEntry) -> None:
        last = self.cursor
        if entry.seq <= last:
            self.duplicates += 1
            return
        if entry.seq != last + 1:
            self._needs_catch_up = True
            self._repair()
            if entry.seq <= self.cursor:
                self.duplicates += 1
                return
            if entry.seq != self.cursor + 1:
                return  # still ahead: the repair will be retried on the next message
        self._push(entry)

    def _push(self, entry: CompletionEntry) -> None:
        self._ready.append(entry)
        self.cursor = entry.seq

    def _repair(self) -> None:
        """Read ``list_since`` page by page up to the watermark it reports."""
        try:
            while True:
                after = self.cursor
                batch = self._client.list_since(after, _REPAIR_PAGE)
                if batch.dropped_through > after:
                    raise FeedGap(after, batch.dropped_through, batch.watermark)
                if batch.watermark < after:
                    # Confirm with a second answer before calling the cursor impossible.
                    again = self._client.list_since(after, 1)
                    if again.watermark < after:
                        raise FeedCursorAhead(after, again.watermark)
                    continue
                for entry in batch.entries:
                    if entry.seq == self.cursor + 1:
                        self._push(entry)
                if self.cursor >= batch.watermark or self.cursor == after:
                    break
        except Unavailable as exc:
            log.info("feed repair deferred: %s", exc)
            return
        self.repairs += 1
        self._needs_catch_up = False

    def close(self) -> None:
        """Close the subscription and its client; iteration ends."""
        if not self._closed:
            self._closed = True
            self._sub.close(linger=0)
            self._client.close()

    def __enter__(self) -> FeedSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
