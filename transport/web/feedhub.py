"""``FeedHub``: one registry's completion feed, read once by a gateway and shared by its streams.

A hub is one asyncio task on the gateway's loop that follows the registry's feed with
the gateway's shared ``AsyncRegistryClient``: ``list_since(last, 1024)`` while there is
more, else ``wait_for_advance(last)`` (held on the server until the watermark moves,
re-asked every ``poll`` seconds as a safety net). Each entry is encoded to its SSE event
bytes **once** and kept in a bounded ring (``capacity`` entries, default 10,000) indexed
by seq; every stream (``transport/web/sse.py``) holds only a cursor and copies slices out
of the ring, or, when its cursor is older than the ring, pages ``list_since`` itself.

Why this source and not a ``FeedSubscriber``, measured (one registry server process,
20,000 completions from another process, two runs each, 2 shared cores): the hub used
0.74-1.04 s of the gateway's CPU for them against 1.22-1.55 s for a subscriber under
``async for``, and 0.05 % of a core idle against 0.45 % (the subscriber's blocking
ZeroMQ reads run on the loop's executor one 0.2 s slice at a time, a thread busy for as
long as it lives). The subscriber is quicker to see a single completion (2.7-3.0 ms from
the producer's call to the gateway, against 3.5-4.5 ms: the hub's ``wait_for_advance``
answer is followed by a ``list_since`` round trip), which a dashboard does not notice.
The hub also needs no second connection per registry (SUB plus the subscriber's own
request client), follows a server restart through the shared client's reconnection, and
survives falling behind retention, where a subscriber ends with ``FeedGap``.

The ring is contiguous by seq: it holds ``first() .. last``. When the hub itself falls
behind the registry's retention (it cannot, short of a stalled loop), it restarts past
the dropped entries with an empty ring; streams inside the lost range page from the
server and learn of the gap there, so a gap is reported by whoever sees it, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Final

from actors.errors import LimitExceeded, OpsregError
from actors.model import CompletionBatch, CompletionEntry
from transport.aio import AsyncRegistryClient

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_RING_BYTES", "PAGE", "FeedHub", "list_since_fitting"]

log = logging.getLogger(__name__)

#: entries a hub keeps (the ring's size) unless told otherwise
DEFAULT_CAPACITY: Final = 10_000
#: bytes of encoded events a hub's ring keeps at most (its oldest go first past it)
DEFAULT_RING_BYTES: Final = 64 << 20
#: entries one ``list_since`` asks for (the registry's largest page)
PAGE: Final = 1024
#: bytes one ``take`` returns at most (always at least one event)
TAKE_BYTES: Final = 64 << 10
#: seconds a hub waits after a failed call before asking again
_RETRY: Final = 0.25


class FeedHub:
    """One registry's recent completion entries, encoded once, for every stream.

    ``encode`` turns an entry into the bytes a stream sends for it; ``last`` is the
    highest seq the hub holds or has passed (-1 until it first reached the registry).
    ``start()`` begins following the feed; ``await close()`` ends it and wakes every
    waiting stream (``closed`` is then true).
    """

    def __init__(
        self,
        client: AsyncRegistryClient,
        encode: Callable[[CompletionEntry], bytes],
        capacity: int = DEFAULT_CAPACITY,
        poll: float = 5.0,
        max_bytes: int = DEFAULT_RING_BYTES,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.client = client
        self.encode = encode
        self.capacity = capacity
        self.poll = poll
        #: bytes the ring may hold, and holds (entries of up to 128 KiB make the count alone
        #: no bound: 10,000 of them would be over a gigabyte)
        self.max_bytes = max_bytes
        self.bytes = 0
        #: entries the next ``list_since`` asks for (halved while replies are too large)
        self.page = PAGE
        self.last = -1
        self.closed = False
        #: entries received from the registry, and how often the hub restarted past a gap
        self.received = 0
        self.resets = 0
        self._first = 0
        self._slots: list[bytes] = [b""] * capacity
        self._advanced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- what streams read ------------------------------------------------------------------------

    def first(self) -> int:
        """The lowest seq the ring holds (``last + 1`` when it holds none)."""
        return max(self._first, self.last - self.capacity + 1)

    def take(
        self, cursor: int, limit: int, max_bytes: int = TAKE_BYTES
    ) -> tuple[bytes, int] | None:
        """Up to ``limit`` encoded entries after ``cursor`` (and, past the first, at most
        ``max_bytes`` of them) and the seq of the last one.

        ``(b"", cursor)`` when the hub has nothing after ``cursor`` yet; None when
        ``cursor`` is older than the ring (the caller pages the registry itself).
        """
        last = self.last
        if cursor >= last:
            return b"", cursor
        if last < 0 or cursor + 1 < self.first():
            return None
        end = min(last, cursor + limit)
        slots, cap = self._slots, self.capacity
        out: list[bytes] = []
        size = 0
        seq = cursor
        for seq in range(cursor + 1, end + 1):
            data = slots[seq % cap]
            out.append(data)
            size += len(data)
            if size >= max_bytes:
                break
        return b"".join(out), seq

    async def wait_past(self, cursor: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the hub holds an entry after ``cursor``."""
        advanced = self._advanced
        if self.last > cursor or self.closed:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(advanced.wait(), max(timeout, 0.0))
        return self.last > cursor

    # --- following the registry -------------------------------------------------------------------

    def start(self) -> None:
        """Begin following the feed (on the running loop)."""
        if self._task is None and not self.closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop following the feed and wake every waiting stream."""
        self.closed = True
        self._wake()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _wake(self) -> None:
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    def _append(self, entries: Iterable[CompletionEntry]) -> None:
        slots, cap, encode = self._slots, self.capacity, self.encode
        added = 0
        for entry in entries:
            seq = entry.seq
            if seq != self.last + 1:
                break  # not contiguous: the next list_since asks again from here
            if seq - cap >= self.first():  # the entry this slot held leaves the ring
                self.bytes -= len(slots[seq % cap])
            data = encode(entry)
            slots[seq % cap] = data
            self.bytes += len(data)
            self.last = seq
            added += 1
            while self.bytes > self.max_bytes and self.first() < self.last:
                oldest = self.first()  # over the byte budget: the oldest entries go
                self.bytes -= len(slots[oldest % cap])
                slots[oldest % cap] = b""
                self._first = oldest + 1
        if added:
            self.received += added
            self._wake()

    def _restart_at(self, seq: int) -> None:
        self.last = seq
        self._first = seq + 1
        self.bytes = 0
        self._slots = [b""] * self.capacity
        self._wake()

    async def _run(self) -> None:
        client = self.client
        while not self.closed:
            try:
                if self.last < 0:
                    self._restart_at(await client.watermark())
                batch, used = await list_since_fitting(client, self.last, self.page)
                self.page = min(PAGE, used * 2)
                if batch.dropped_through > self.last:
                    log.warning(
                        "feed hub fell behind retention: entries %d..%d are gone",
                        self.last + 1,
                        batch.dropped_through,
                    )
                    self.resets += 1
                    self._restart_at(batch.dropped_through)
                    continue
                self._append(batch.entries)
                if self.last < batch.watermark:
                    continue
                advance = await client.wait_for_advance(self.last)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(advance, self.poll)
            except asyncio.CancelledError:
                raise
            except OpsregError as exc:
                log.info("feed hub waiting for the registry: %s", exc)
                await asyncio.sleep(_RETRY)
            except Exception:
                log.exception("feed hub error; retrying")
                await asyncio.sleep(_RETRY)


async def list_since_fitting(
    client: AsyncRegistryClient, after: int, size: int
) -> tuple[CompletionBatch, int]:
    """``list_since(after, size)``, halving ``size`` while the reply would be larger than
    the server sends (``LimitExceeded``: entries carry up to 128 KiB of result each);
    returns the batch and the size that fitted. One entry too large for a reply is the
    server's refusal, raised as it is."""
    while True:
        try:
            return await client.list_since(after, size), size
        except LimitExceeded:
            if size == 1:
                raise
            size = max(1, size // 2)
