"""``actors.waiters``: the wait bookkeeping, driven with plain objects and no threads."""

from __future__ import annotations

import pytest

from actors.model import OperationId
from actors.waiters import Waiters


class Waiter:
    """A stand-in for a future: only its identity matters to the bookkeeping."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def ids(n: int) -> list[OperationId]:
    return [OperationId.new() for _ in range(n)]


pytestmark = pytest.mark.timeout(30)


def test_watchers_settle_with_the_outcome_once_and_are_counted_while_pending() -> None:
    ws: Waiters[Waiter] = Waiters()
    a, b = ids(2)
    w1, w2, w3 = Waiter("w1"), Waiter("w2"), Waiter("w3")
    ws.add_watcher(w1, a)
    ws.add_watcher(w2, a)
    ws.add_watcher(w3, b)
    assert ws.watcher_count(a) == 2
    assert ws.watcher_counts() == {a: 2, b: 1}
    assert ws.on_terminal(a, "done") == [(w1, "done"), (w2, "done")]
    assert ws.on_terminal(a, "again") == []
    assert ws.watcher_count(a) == 0
    assert ws.pending() == 1


def test_wait_any_settles_once_through_its_first_member_and_never_again() -> None:
    ws: Waiters[Waiter] = Waiters()
    a, b, c = ids(3)
    w = Waiter("any")
    ws.add_any(w, [a, b, b, c])
    assert ws.watcher_count(a) == 0  # wait_any is not a watcher
    assert ws.on_terminal(b, "B") == [(w, (b, "B"))]
    assert ws.on_terminal(a, "A") == []
    assert ws.on_terminal(c, "C") == []
    assert ws.pending() == 0


def test_ending_a_shared_member_visits_only_its_own_slot() -> None:
    """Many wait_any over the same members: settling them leaves their other entries to
    be skipped later (lazy removal), instead of searching every other member's list."""
    ws: Waiters[Waiter] = Waiters()
    members = ids(50)
    waiters = [Waiter(f"w{i}") for i in range(40)]
    for w in waiters:
        ws.add_any(w, members)
    assert ws.entries() == 50 * 40
    settled = ws.on_terminal(members[0], "x")
    assert [w for w, _ in settled] == waiters
    assert ws.pending() == 0
    # Untouched: the 49 other slots still hold their (now dead) entries...
    assert ws.entries() == 49 * 40
    # ...which settle nothing when their member ends, and go with the slot.
    assert ws.on_terminal(members[1], "y") == []
    assert ws.entries() == 48 * 40


def test_a_long_lived_member_does_not_accumulate_dead_entries() -> None:
    """wait_any([forever, short_i]) where each short_i ends: forever's slot is filtered
    whenever it doubles, so it stays within twice its live size (plus a small floor)."""
    ws: Waiters[Waiter] = Waiters()
    forever = OperationId.new()
    keep = Waiter("keeps waiting")
    ws.add_any(keep, [forever])
    for i in range(10_000):
        short = OperationId.new()
        ws.add_any(Waiter(f"w{i}"), [forever, short])
        assert len(ws.on_terminal(short, i)) == 1
        assert ws.entries() <= 2 * ws.pending() + 16
    assert ws.on_terminal(forever, "end") == [(keep, (forever, "end"))]
    assert ws.entries() == 0


def test_cancel_removes_each_kind_and_ignores_settled_or_unknown_waiters() -> None:
    ws: Waiters[Waiter] = Waiters()
    a, b = ids(2)
    watch, any_, adv, other = Waiter("watch"), Waiter("any"), Waiter("adv"), Waiter("other")
    ws.add_watcher(watch, a)
    ws.add_any(any_, [a, b])
    ws.add_advance(adv, 3)
    ws.add_watcher(other, b)
    cancelled, barriers = ws.cancel([watch, any_, adv, Waiter("stranger")])
    assert cancelled == [watch, any_, adv] and barriers == []
    assert ws.watcher_count(a) == 0 and ws.watcher_count(b) == 1
    assert ws.cancel([watch, any_, adv]) == ([], [])  # twice: nothing
    assert ws.on_terminal(a, "A") == []
    assert ws.on_watermark(10) == []
    assert ws.on_terminal(b, "B") == [(other, "B")]
    assert ws.pending() == 0


def test_cancel_names_the_barrier_its_waiter_holds() -> None:
    ws: Waiters[Waiter] = Waiters()
    barrier = Waiter("barrier")
    ws.set_barrier("req-1", lambda: barrier)
    assert ws.cancel([Waiter("someone else")]) == ([], [])
    assert ws.cancel([barrier]) == ([], ["req-1"])
    assert ws.take_barrier("req-2") == (False, None)
    assert ws.take_barrier("req-1") == (True, barrier)
    assert ws.take_barrier("req-1") == (False, None)


def test_a_dropped_barrier_waiter_is_reported_as_gone() -> None:
    ws: Waiters[Waiter] = Waiters()
    ws.set_barrier("req", lambda: None)
    assert ws.take_barrier("req") == (True, None)


def test_advance_releases_exactly_the_waits_below_the_new_watermark() -> None:
    ws: Waiters[Waiter] = Waiters()
    by_after = {after: Waiter(f"after{after}") for after in (5, 0, 3, 3, 9)}
    for after, w in by_after.items():
        ws.add_advance(w, after)
    assert ws.on_watermark(3) == [by_after[0]]
    assert set(ws.on_watermark(6)) == {by_after[3], by_after[5]}
    assert ws.on_watermark(9) == []
    assert ws.on_watermark(10) == [by_after[9]]


def test_cancelled_advance_waits_do_not_pile_up_in_the_heap() -> None:
    ws: Waiters[Waiter] = Waiters()
    for i in range(1_000):
        w = Waiter(f"a{i}")
        ws.add_advance(w, 100)
        ws.cancel([w])
        assert ws.entries() <= 2 * ws.pending() + 16
    assert ws.on_watermark(1_000) == []


def test_drain_returns_every_pending_waiter_once() -> None:
    ws: Waiters[Waiter] = Waiters()
    a, b = ids(2)
    watch, any_, adv, barrier = Waiter("watch"), Waiter("any"), Waiter("adv"), Waiter("bar")
    ws.add_watcher(watch, a)
    ws.add_any(any_, [a, b])
    ws.add_advance(adv, 0)
    ws.set_barrier("req", lambda: barrier)
    assert sorted(ws.drain(), key=repr) == sorted([watch, any_, adv, barrier], key=repr)
    assert ws.pending() == 0 and ws.entries() == 0
    assert ws.drain() == []
