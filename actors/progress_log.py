"""Every operation's recent progress updates, in bounded memory (docs/semantics.md, "Progress log").

Pure bookkeeping beside :mod:`actors.lifecycle`: no threads, no clocks (the time an
update arrived is given), no I/O. The registry keeps, per operation, the last
``KEEP_PER_OPERATION`` updates it received; all logs of one registry together stay
within a byte budget, each entry counted as its message's UTF-8 bytes plus
``ENTRY_OVERHEAD`` and each log as ``LOG_OVERHEAD``. Past the budget, whole logs of
ended operations go first, the oldest-ended first; then the oldest entries of the
largest live logs (so a chatty operation loses its history before a quiet one).

Logs are memory only: a restarted registry holds an operation's ``last_progress`` as
its one entry (``actors.lifecycle_snapshot.restore_progress_logs``).
"""

from __future__ import annotations

import heapq
from typing import Final

import msgspec

from actors.errors import InvalidArgument
from actors.model import OperationId, OperationProgressUpdate, check_percent
from actors.text import MAX_REASON_BYTES, check_text

__all__ = [
    "DEFAULT_PROGRESS_BUDGET",
    "ENTRY_OVERHEAD",
    "KEEP_PER_OPERATION",
    "LOG_OVERHEAD",
    "ProgressEntry",
    "ProgressLogs",
    "entry_cost",
]

#: updates kept per operation (older ones are counted, not kept: see ``ProgressEntry.number``)
KEEP_PER_OPERATION: Final = 32
#: the bytes all progress logs of one registry may hold together
DEFAULT_PROGRESS_BUDGET: Final = 16 * 1024 * 1024
#: what one entry costs besides its message (the struct, its numbers, its slot)
ENTRY_OVERHEAD: Final = 224
#: what one operation's log costs besides its entries (its record, list and dict slot)
LOG_OVERHEAD: Final = 512

_force = msgspec.structs.force_setattr


def _count(value: object, what: str, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidArgument(f"{what} must be an integer >= {least}, got {value!r}")


class ProgressEntry(msgspec.Struct, frozen=True):
    """One progress update as the registry received it.

    ``at_ms`` is when the registry received it (ms since the epoch); ``number`` is its
    position among the operation's updates, from 1 (the latest is ``progress_count``),
    so ``entries[0].number - 1`` earlier updates were not kept.
    """

    at_ms: int
    message: str
    percent: float | None
    number: int

    def __post_init__(self) -> None:
        _count(self.at_ms, "at_ms", 0)
        check_text(self.message, "message", MAX_REASON_BYTES)
        _force(self, "percent", check_percent(self.percent))
        _count(self.number, "number", 1)


def entry_cost(message: str) -> int:
    """What an entry counts against the budget: its message's UTF-8 bytes + ``ENTRY_OVERHEAD``."""
    return ENTRY_OVERHEAD + (len(message) if message.isascii() else len(message.encode("utf-8")))


#: what a log holds per entry, ``(at_ms, number, update)``: the update is the one the
#: operation's ``last_progress`` holds too, so keeping it copies no text
_Kept = tuple[int, int, OperationProgressUpdate]


class _Log:
    __slots__ = ("bytes", "ended", "entries", "tick")

    def __init__(self) -> None:
        self.entries: list[_Kept] = []
        self.bytes = LOG_OVERHEAD
        self.ended = False
        self.tick = 0  # the heap entry that is current for this log


class ProgressLogs:
    """The progress logs of one registry, within ``keep`` entries each and ``budget`` bytes.

    >>> logs = ProgressLogs(keep=2)
    >>> op = OperationId.new()
    >>> for n in (1, 2, 3):
    ...     logs.record(op, 1000 + n, n, OperationProgressUpdate(f"step {n}"))
    >>> [(e.number, e.message) for e in logs.entries(op)]
    [(2, 'step 2'), (3, 'step 3')]
    """

    def __init__(self, keep: int = KEEP_PER_OPERATION, budget: int = DEFAULT_PROGRESS_BUDGET):
        _count(keep, "keep", 1)
        _count(budget, "budget", 0)
        self.keep = keep
        self.budget = budget
        #: bytes held now, as counted (never above ``budget`` between calls)
        self.used = 0
        self._logs: dict[OperationId, _Log] = {}
        #: logs of ended operations, oldest-ended first (insertion order)
        self._ended: dict[OperationId, None] = {}
        #: live logs by size, largest first: ``(-bytes, tick, id)``; stale rows are skipped
        self._heap: list[tuple[int, int, OperationId]] = []
        self._tick = 0

    def __len__(self) -> int:
        return len(self._logs)

    def entries(self, op_id: OperationId) -> list[ProgressEntry]:
        """The kept updates of ``op_id``, oldest first (empty when none is kept)."""
        log = self._logs.get(op_id)
        if log is None:
            return []
        return [ProgressEntry(at, u.message, u.percent, n) for at, n, u in log.entries]

    def record(
        self, op_id: OperationId, at_ms: int, number: int, update: OperationProgressUpdate
    ) -> None:
        """Log ``update``, the operation's ``number``-th, received at ``at_ms``; hold the budget."""
        log = self._logs.get(op_id)
        if log is None:
            log = self._logs[op_id] = _Log()
            self.used += LOG_OVERHEAD
        log.entries.append((at_ms, number, update))
        cost = entry_cost(update.message)
        log.bytes += cost
        self.used += cost
        if len(log.entries) > self.keep:
            self._drop_oldest(log)
        if not log.ended:
            self._push(op_id, log)
        self._hold_budget()

    def ended(self, op_id: OperationId) -> None:
        """The operation is terminal: its log is now among the first to go past the budget."""
        log = self._logs.get(op_id)
        if log is not None and not log.ended:
            log.ended = True
            self._ended[op_id] = None

    def forget(self, op_id: OperationId) -> None:
        """The operation is gone (evicted or collected): so is its log."""
        log = self._logs.pop(op_id, None)
        if log is not None:
            self.used -= log.bytes
            self._ended.pop(op_id, None)

    # --- the budget --------------------------------------------------------------------

    def _drop_oldest(self, log: _Log) -> None:
        cost = entry_cost(log.entries.pop(0)[2].message)
        log.bytes -= cost
        self.used -= cost

    def _push(self, op_id: OperationId, log: _Log) -> None:
        self._tick += 1
        log.tick = self._tick
        heapq.heappush(self._heap, (-log.bytes, self._tick, op_id))
        if len(self._heap) > 2 * len(self._logs) + 64:  # too many stale rows: rebuild
            self._heap = [(-g.bytes, g.tick, i) for i, g in self._logs.items() if not g.ended]
            heapq.heapify(self._heap)

    def _largest_live(self) -> tuple[OperationId, _Log]:
        while True:
            _, tick, op_id = heapq.heappop(self._heap)
            log = self._logs.get(op_id)
            if log is not None and not log.ended and log.tick == tick:
                return op_id, log

    def _hold_budget(self) -> None:
        # Every byte counted belongs to a log, so while over budget there is a log to cut.
        while self.used > self.budget:
            if self._ended:
                self.forget(next(iter(self._ended)))
                continue
            op_id, log = self._largest_live()
            self._drop_oldest(log)
            if log.entries:
                self._push(op_id, log)
            else:
                self.forget(op_id)
