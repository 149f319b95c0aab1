"""Calls held while a terminal transition they depend on is being committed.

While an operation's terminal record is in flight, its outcome is decided in
memory but not yet durable: the commit may still fail and be rolled back. A
competing call whose answer depends on that operation's status (``cancel`` of
an operation being completed, ``report_progress``, ``terminate_owner`` while
some targets are pending, …) must not learn an outcome that may never exist,
and must not be refused on account of it either. So the rules
(:class:`~actors.lifecycle.Lifecycle`) raise :class:`PendingTerminal` instead
of answering, and the shell parks the call here until every operation it
waits on has settled (committed or rolled back); then it runs the call again,
against what is now durable.

Pure bookkeeping: no threads, no clocks. Released calls come back in the
order they were parked, so two competing calls on one operation are answered
in arrival order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Generic, TypeVar

from actors.model import OperationId

__all__ = ["Parking", "PendingTerminal"]

C = TypeVar("C")


class PendingTerminal(Exception):
    """Not an answer: the call depends on terminal commits still in flight (``ids``).

    Raised by the rules before they change anything; never reaches a caller.
    """

    def __init__(self, ids: Iterable[OperationId]) -> None:
        self.ids = tuple(ids)
        super().__init__(f"waiting for the terminal commit of {len(self.ids)} operation(s)")


class _Parked(Generic[C]):
    __slots__ = ("call", "order", "waiting")

    def __init__(self, call: C, order: int, waiting: set[OperationId]) -> None:
        self.call = call
        self.order = order
        self.waiting = waiting


class Parking(Generic[C]):
    """Calls waiting for operations' pending terminal commits to settle.

    >>> from actors.model import OperationId
    >>> p: Parking[str] = Parking()
    >>> a, b = OperationId.new(), OperationId.new()
    >>> p.park("cancel a", [a]); p.park("terminate", [a, b])
    >>> p.release([a])
    ['cancel a']
    >>> p.release([b])
    ['terminate']
    """

    def __init__(self) -> None:
        self._by_id: dict[OperationId, list[_Parked[C]]] = {}
        self._count = 0
        self._order = itertools.count()

    def __len__(self) -> int:
        return self._count

    def park(self, call: C, ids: Iterable[OperationId]) -> None:
        waiting = set(ids)
        if not waiting:
            raise ValueError("a parked call must wait on at least one operation")
        entry = _Parked(call, next(self._order), waiting)
        for op_id in waiting:
            self._by_id.setdefault(op_id, []).append(entry)
        self._count += 1

    def release(self, settled: Iterable[OperationId]) -> list[C]:
        """The calls no longer waiting on anything once ``settled`` have settled, oldest first."""
        if not self._by_id:
            return []
        ready: list[_Parked[C]] = []
        for op_id in settled:
            for entry in self._by_id.pop(op_id, ()):
                entry.waiting.discard(op_id)
                if not entry.waiting:
                    ready.append(entry)
        self._count -= len(ready)
        ready.sort(key=lambda e: e.order)
        return [e.call for e in ready]

    def drain(self) -> list[C]:
        """Every parked call, oldest first (the registry stops or stops serving from memory)."""
        entries = {id(e): e for es in self._by_id.values() for e in es}
        self._by_id.clear()
        self._count = 0
        return [e.call for e in sorted(entries.values(), key=lambda e: e.order)]
