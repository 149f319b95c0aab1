"""Checks of the completion feed: topic framing, heartbeats, order, and gap repair."""

from __future__ import annotations

from typing import Any

from transport.conformance._session import Session
from transport.conformance._wire import FeedWire, Skip, expect

__all__ = ["FEED_CHECKS"]


def _feed(s: Session) -> FeedWire:
    if s.feed is None:
        raise Skip("no --feed-endpoint given")
    return s.feed


def subscribe(s: Session) -> str:
    if s.feed_endpoint is None:
        raise Skip("no --feed-endpoint given")
    s.feed = FeedWire(s.ctx, s.feed_endpoint, s.registry, s.timeout)
    mark = s.ok("watermark")
    beat = s.feed.heartbeat(max(s.timeout, 5.0))
    expect(not beat.entries, "a heartbeat carries entries")
    expect(beat.watermark == mark, f"heartbeat watermark {beat.watermark}, watermark() {mark}")
    return f"heartbeat at watermark {mark}"


def repair(s: Session) -> str:
    """A subscriber that joined late holds nothing: it repairs from list_since to the mark."""
    _feed(s)
    mark = s.ok("watermark")
    got: list[Any] = []
    cursor = 0
    while cursor < mark:
        batch = s.ok("list_since", cursor, 3)
        expect(batch.entries, f"list_since({cursor}) is empty below the watermark {mark}")
        if cursor == 0:
            cursor = batch.dropped_through
        seqs = [e.seq for e in batch.entries]
        expect(seqs == list(range(cursor + 1, cursor + 1 + len(seqs))), f"gap in {seqs}")
        got += batch.entries
        cursor = seqs[-1]
    return f"repaired 1..{mark} in pages of 3"


def live_entries(s: Session) -> str:
    feed = _feed(s)
    mark = s.ok("watermark")
    ops = [s.running() for _ in range(3)]
    for op in ops:
        s.ok("complete_operation", op, s.result(op))
    entries: list[Any] = []
    while len(entries) < 3:
        msg = feed.next()
        if msg.kind == "heartbeat":
            continue
        expect(msg.kind == "entries", f"unknown feed kind {msg.kind!r}")
        expect(msg.watermark >= msg.entries[-1].seq, "an entries frame's watermark is behind it")
        entries += msg.entries
    seqs = [e.seq for e in entries]
    expect(seqs == [mark + 1, mark + 2, mark + 3], f"feed seqs {seqs}, expected after {mark}")
    expect([e.operation_id for e in entries] == ops, "feed order is not completion order")
    stored = s.ok("list_since", mark, 3).entries
    expect(list(stored) == entries, "feed entries differ from list_since's")
    beat = feed.heartbeat(max(s.timeout, 5.0))
    expect(beat.watermark == mark + 3, f"next heartbeat says {beat.watermark}, not {mark + 3}")
    for op, entry in zip(ops, entries, strict=True):
        s.ended[op] = entry.terminal_outcome
    return f"seq {mark + 1}..{mark + 3}"


FEED_CHECKS = [
    ("feed: subscribed to registry + NUL, the heartbeat carries the watermark", subscribe),
    ("feed: a late subscriber repairs the gap from list_since", repair),
    ("feed: entries in seq order after completions; heartbeat catches up", live_entries),
]
