"""Pure bookkeeping of the waits one registry holds, indexed by operation.

A *waiter* is whatever the shell handed to a caller (the registry hands out
futures); this module never sets, awaits or locks one. It only remembers who
waits for what and, when something is decided, says which waiters to settle
with which value. The registry actor settles them. So it can be driven in a
test with plain objects and no threads.

Cost model (why it is shaped this way):

* Every operation has one :class:`_Slot` listing the watchers and ``wait_any``
  waits that name it. Ending an operation pops its slot: the cost is the number
  of waits on *that* operation, never the number of waits or members elsewhere.
* A ``wait_any`` over many operations is settled by marking it dead; the
  entries it left in its other members' slots are removed lazily (skipped when
  a slot is popped, filtered when a slot has doubled in length since its last
  filter), so settling costs O(1) per wait and appending stays O(1) amortised.
  A dead entry drops its waiter at once, so it costs a few dozen bytes, not a
  future.
* ``wait_for_advance`` waits sit in a heap by ``after_seq``: a new watermark
  releases exactly the waits below it.
* Any pending wait can be cancelled by its waiter (a server cancels the waits
  of a client it gave up on), in O(1) each.

The wait-all barrier keeps its waiter *weakly* (a caller that drops its
future cancels the barrier, as in the seed), so it is kept by a getter.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from typing import Any, Final, Generic, TypeVar

from actors.model import OperationId

__all__ = ["Waiters"]

W = TypeVar("W")

#: A slot is filtered of dead entries when it reaches this length, then at twice its
#: live length: each filter is paid for by the appends since the previous one.
_MIN_COMPACT: Final = 16

_WATCH: Final = 0
_ANY: Final = 1
_ADVANCE: Final = 2


class _Wait(Generic[W]):
    __slots__ = ("after", "ids", "kind", "waiter")

    def __init__(
        self, kind: int, waiter: W, ids: tuple[OperationId, ...] = (), after: int = 0
    ) -> None:
        self.kind = kind
        #: None once settled or cancelled (the entry may linger in other slots)
        self.waiter: W | None = waiter
        self.ids = ids
        self.after = after


class _Slot(Generic[W]):
    """The waits naming one operation, in registration order."""

    __slots__ = ("compact_at", "waits", "watchers")

    def __init__(self) -> None:
        self.waits: list[_Wait[W]] = []
        self.watchers = 0  # live watchers (``watcher_count``)
        self.compact_at = _MIN_COMPACT

    def add(self, wait: _Wait[W]) -> None:
        self.waits.append(wait)
        if len(self.waits) >= self.compact_at:
            self.waits = [w for w in self.waits if w.waiter is not None]
            self.compact_at = max(_MIN_COMPACT, 2 * len(self.waits))


class Waiters(Generic[W]):
    """Who waits for what in one registry.

    >>> ws = Waiters()
    >>> op = OperationId.new()
    >>> ws.add_watcher("w1", op)
    >>> ws.add_any("a1", [op])
    >>> ws.watcher_count(op)
    1
    >>> [waiter for waiter, _ in ws.on_terminal(op, "done")]
    ['w1', 'a1']
    >>> ws.pending()
    0
    """

    def __init__(self) -> None:
        self._slots: dict[OperationId, _Slot[W]] = {}
        self._advance: list[tuple[int, int, _Wait[W]]] = []
        self._advance_live = 0
        self._order = itertools.count()
        #: id(waiter) -> its wait; the wait holds the waiter, so the id stays unique
        self._index: dict[int, _Wait[W]] = {}
        self._barrier: tuple[str, Callable[[], W | None]] | None = None

    # --- registering ------------------------------------------------------------------

    def add_watcher(self, waiter: W, op_id: OperationId) -> None:
        wait = _Wait(_WATCH, waiter, (op_id,))
        slot = self._slot(op_id)
        slot.add(wait)
        slot.watchers += 1
        self._index[id(waiter)] = wait

    def add_any(self, waiter: W, ids: Iterable[OperationId]) -> None:
        """``ids`` may repeat; each distinct operation is indexed once."""
        wait = _Wait(_ANY, waiter, tuple(dict.fromkeys(ids)))
        for op_id in wait.ids:
            self._slot(op_id).add(wait)
        self._index[id(waiter)] = wait

    def add_advance(self, waiter: W, after_seq: int) -> None:
        wait = _Wait(_ADVANCE, waiter, after=after_seq)
        heapq.heappush(self._advance, (after_seq, next(self._order), wait))
        self._advance_live += 1
        self._index[id(waiter)] = wait

    def set_barrier(self, wait_request_id: str, get: Callable[[], W | None]) -> None:
        """The active wait-all barrier; ``get`` returns its waiter, or None once dropped."""
        self._barrier = (wait_request_id, get)

    def _slot(self, op_id: OperationId) -> _Slot[W]:
        slot = self._slots.get(op_id)
        if slot is None:
            slot = self._slots[op_id] = _Slot()
        return slot

    # --- deciding ---------------------------------------------------------------------

    def on_terminal(self, op_id: OperationId, outcome: Any) -> list[tuple[W, Any]]:
        """``op_id`` ended with ``outcome``: the waiters to settle, with their values.

        Costs the number of waits that name ``op_id``.
        """
        slot = self._slots.pop(op_id, None)
        if slot is None:
            return []
        settle: list[tuple[W, Any]] = []
        for wait in slot.waits:
            waiter = wait.waiter
            if waiter is None:
                continue  # settled through another member, or cancelled
            self._retire(wait)
            settle.append((waiter, outcome if wait.kind == _WATCH else (op_id, outcome)))
        return settle

    def on_watermark(self, mark: int) -> list[W]:
        """The feed reached ``mark``: the ``wait_for_advance`` waiters to settle with it."""
        released: list[W] = []
        # Re-read the heap each time: retiring may compact it into a new list.
        while self._advance and self._advance[0][0] < mark:
            wait = heapq.heappop(self._advance)[2]
            waiter = wait.waiter
            if waiter is not None:
                self._retire(wait)
                released.append(waiter)
        return released

    def take_barrier(self, wait_request_id: str) -> tuple[bool, W | None]:
        """Clear the barrier if it is ``wait_request_id``: (was it, its waiter if alive)."""
        if self._barrier is None or self._barrier[0] != wait_request_id:
            return False, None
        get = self._barrier[1]
        self._barrier = None
        return True, get()

    # --- cancelling -------------------------------------------------------------------

    def cancel(self, waiters: Iterable[W]) -> tuple[list[W], list[str]]:
        """Forget these waiters: (the pending ones, now removed; barrier ids they held).

        The shell fails the returned waiters and clears the returned barrier
        ids in the lifecycle; settled or unknown waiters are ignored.
        """
        cancelled: list[W] = []
        barriers: list[str] = []
        for waiter in waiters:
            wait = self._index.get(id(waiter))
            if wait is not None and wait.waiter is waiter:
                self._retire(wait)
                cancelled.append(waiter)
            elif self._barrier is not None and self._barrier[1]() is waiter:
                barriers.append(self._barrier[0])
        return cancelled, barriers

    def _retire(self, wait: _Wait[W]) -> None:
        """Settled or cancelled: out of the index now; out of the slots lazily."""
        del self._index[id(wait.waiter)]
        wait.waiter = None
        if wait.kind == _WATCH:
            slot = self._slots.get(wait.ids[0])
            if slot is not None:
                slot.watchers -= 1
        elif wait.kind == _ADVANCE:
            self._advance_live -= 1
            if len(self._advance) > _MIN_COMPACT and self._advance_live * 2 < len(self._advance):
                self._advance = [e for e in self._advance if e[2].waiter is not None]
                heapq.heapify(self._advance)

    def drain(self) -> list[W]:
        """Every pending waiter, forgotten (the registry is stopping); barrier included."""
        pending = [w.waiter for w in self._index.values() if w.waiter is not None]
        self._index.clear()
        self._slots.clear()
        self._advance.clear()
        self._advance_live = 0
        if self._barrier is not None:
            barrier = self._barrier[1]()
            self._barrier = None
            if barrier is not None:
                pending.append(barrier)
        return pending

    # --- reading ----------------------------------------------------------------------

    def watcher_count(self, op_id: OperationId) -> int:
        slot = self._slots.get(op_id)
        return 0 if slot is None else slot.watchers

    def watcher_counts(self) -> dict[OperationId, int]:
        return {i: s.watchers for i, s in self._slots.items() if s.watchers}

    def pending(self) -> int:
        """Pending watchers, ``wait_any`` and ``wait_for_advance`` waits (not the barrier)."""
        return len(self._index)

    def entries(self) -> int:
        """Slot entries, live or dead (for tests of the lazy removal's bound)."""
        return sum(len(s.waits) for s in self._slots.values()) + len(self._advance)
