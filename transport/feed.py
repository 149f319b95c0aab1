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
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final, Literal

import zmq

from actors.model import CompletionEntry
from transport import codec
from transport.client import RegistryClient
from transport.errors import FeedCursorAhead, FeedGap, Unavailable

__all__ = ["FeedSubscriber", "Start"]

log = logging.getLogger(__name__)

#: entries one ``list_since`` reply of a repair holds at most
_REPAIR_PAGE: Final = 1024
#: heartbeats in a row with a watermark behind the cursor before ``list_since`` is asked
_BEHIND_BEATS: Final = 3
#: seconds one executor slice of ``async for`` waits at most (bounds ``aclose``)
_ASYNC_SLICE: Final = 0.2

#: where a subscriber without ``after_seq`` starts: ``"now"`` (entries completed after it
#: connects, like ``tail -f``) or ``"oldest"`` (the oldest entry the registry still holds)
Start = Literal["now", "oldest"]


class FeedSubscriber:
    """Iterate a registry's completion entries in seq order: no gaps, no duplicates.

    Where it starts is one of three positions:

    * ``start="now"`` (the default, like ``tail -f``): entries completed after the
      subscriber connects (the registry's watermark is read in the constructor; if the
      registry cannot be reached then, "now" is when it is first reached);
    * ``after_seq=N`` (resume from a saved ``cursor``): entries with ``seq > N``;
      :class:`FeedGap` if the registry no longer holds ``N + 1``;
    * ``start="oldest"``: from the oldest entry the registry still holds (never a gap at
      the start).

    ``cursor`` is the seq of the last entry handed out (or queued): save it to resume.
    ``endpoint`` is the server's request endpoint (as for ``RegistryClient``: the
    subscriber repairs and resolves its start with ``list_since`` over it),
    ``feed_endpoint`` its PUB endpoint; ``registry`` names the registry; ``timeout``
    bounds each request; ``idle_check`` is how long silence lasts before a repair;
    ``rcvhwm`` is the SUB socket's queue (what it drops is repaired); the CURVE keys
    are those of ``RegistryClient``.

    >>> with FeedSubscriber("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556") as feed:  # doctest: +SKIP
    ...     for entry in feed:
    ...         print(entry.seq, entry.display_name, entry.terminal_outcome)

    ``async with`` / ``async for`` work too; the blocking reads then run on the event
    loop's default executor, one slice at a time.
    """

    def __init__(
        self,
        endpoint: str,
        feed_endpoint: str,
        registry: str = "default",
        *,
        start: Start | None = None,
        after_seq: int | None = None,
        rcvhwm: int = 100_000,
        idle_check: float = 2.0,
        timeout: float = 10.0,
        curve_server_key: bytes | None = None,
        curve_keypair: tuple[bytes, bytes] | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        if after_seq is not None and start is not None:
            raise ValueError("give start or after_seq, not both")
        if after_seq is not None and (
            isinstance(after_seq, bool) or not isinstance(after_seq, int)
        ):
            raise TypeError(f"after_seq must be an int, not {type(after_seq).__name__}")
        if after_seq is not None and after_seq < 0:
            raise ValueError("after_seq must be >= 0")
        if start is not None and start not in ("now", "oldest"):
            raise ValueError(f"start must be 'now' or 'oldest', not {start!r}")
        self.registry = registry
        #: the highest seq received (handed out or queued to be)
        self.cursor = after_seq or 0
        #: the start position still to be resolved against the registry ("now", "oldest")
        self._start: Start | None = None if after_seq is not None else (start or "now")
        self.idle_check = idle_check
        self.repairs = 0
        self.duplicates = 0
        self._ready: deque[CompletionEntry] = deque()
        self._filling: asyncio.Future[bool] | None = None
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
            endpoint,
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
        if self._start == "now":
            # The SUB socket is connected first: anything completed after this read
            # arrives on it or is repaired from list_since.
            try:
                self.cursor = self._client.watermark()
                self._start = None
            except Unavailable as exc:
                log.info("feed start deferred: %s", exc)
            except BaseException:
                self.close()
                raise

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
        # The blocking reads run in the executor a short slice at a time; an entry stays
        # queued until it is handed out here, so a cancelled ``await`` loses nothing.
        while not self._ready:
            if self._filling is None:
                self._filling = asyncio.ensure_future(asyncio.to_thread(self._fill, _ASYNC_SLICE))
            filling = self._filling
            try:
                await asyncio.shield(filling)
            finally:
                if filling.done():
                    self._filling = None
        return self._ready.popleft()

    def next(self, timeout: float | None = None) -> CompletionEntry | None:
        """The next entry in seq order, or None if none arrives within ``timeout``."""
        if not self._ready and not self._fill(timeout):
            return None
        return self._ready.popleft()

    def _fill(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` until an entry is queued; whether one is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._needs_catch_up:
                self._repair()
                if self._ready:
                    break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            wait = self.idle_check if remaining is None else min(remaining, self.idle_check)
            if self._sub.poll(int(wait * 1000), zmq.POLLIN):
                self._drain_socket()
            elif time.monotonic() - self._last_heard >= self.idle_check:
                # Silence: maybe the last message (or heartbeat) was dropped.
                self._needs_catch_up = True
        return True

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
        if self._start is not None:
            self._needs_catch_up = True  # the start is not known yet: list_since decides
            return
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
                if self._start == "now":
                    self.cursor = self._client.watermark()
                    self._start = None
                    continue
                batch = self._client.list_since(after, _REPAIR_PAGE)
                if self._start == "oldest":
                    if batch.dropped_through > after:
                        self.cursor = batch.dropped_through  # the oldest held is next
                        continue
                    self._start = None
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
        """Close both sockets; under ``async for`` use ``aclose`` (or ``async with``)."""
        if not self._closed:
            self._closed = True
            self._sub.close(linger=0)
            self._client.close()

    def __enter__(self) -> FeedSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def aclose(self) -> None:
        """Wait for a read still running in the executor (at most a slice), then close."""
        filling, self._filling = self._filling, None
        if filling is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(filling)
        self.close()

    async def __aenter__(self) -> FeedSubscriber:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
