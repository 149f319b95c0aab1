"""The persistence actor: the only thread that touches the store.

The registry actor sends it two kinds of message:

``Append``
    journal records that need no acknowledgement (registrations, starts,
    collections); they ride along with the next commit.
``Commit``
    terminal records; each ``Commit`` is answered with a ``Durable`` message
    to the registry once the transaction holding it is on disk (or failed).

The one who opened the store (:class:`actors.durable.DurableStore`) asks it
typed requests: ``OpenStore``, ``Recover``, ``Attach``, ``Detach``, ``Flush``
and ``Stats``; anything else is logged and refused.

A failed commit is classified in one place
(:func:`actors.store_faults.classify_failure`):

*definite* — nothing was written (an injected ``CommitFailure``, ``SQLITE_FULL``,
    ``SQLITE_READONLY``, ``SQLITE_BUSY``, …): the commits are refused (the
    registry rolls back; the call may be retried) and the journal's appends are
    retried with capped exponential backoff, each failure class logged once per
    backoff cycle — a full disk costs no CPU while idle.
*indeterminate* — the transaction may be on disk (the ``SQLITE_IOERR`` family,
    an ``OSError``: ``fsync`` said ``EIO``): the commits' outcome is *unknown*;
    the actor takes no more commits, closes and reopens the store (retrying with
    backoff while that fails) and tells each registry what the disk says of the
    in-doubt commits (``InDoubtSettled``); see :mod:`actors.recovery`.
*lost* — the store's file is gone (``StoreLost``): nothing more is written,
    every commit is refused for good.

Group commit falls out of the mailbox: the first record that arrives while
nothing is scheduled enqueues a ``_GroupCommit`` behind itself, so every record
that arrives before the flush runs — and every record that arrives while a
transaction is being written — joins one transaction.

The store decides nothing about lifecycles: it numbers terminal records per
registry (the journal position becomes the completion seq) and keeps bytes.
Replaying them is the job of :class:`actors.lifecycle.Lifecycle`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import pykka

from actors.backoff import Backoff
from actors.journal import JournalRecord, TerminalRecord
from actors.model import PersistedOpsSnapshot, new_incarnation_id
from actors.recovery import StoreFailures
from actors.store_faults import CommitFailure, FaultPlan, StoreLost, classify_failure

__all__ = [
    "DEFAULT_COMPACT_EVERY",
    "FAILED",
    "REFUSED",
    "UNKNOWN",
    "Append",
    "Attach",
    "Commit",
    "CommitFailure",
    "Detach",
    "Durable",
    "FaultPlan",
    "Flush",
    "InDoubtSettled",
    "MemoryStore",
    "Mirror",
    "OpenStore",
    "PersistenceActor",
    "Recover",
    "Recovered",
    "Stats",
    "Store",
    "StoreLost",
    "classify_failure",
]

log = logging.getLogger(__name__)


# --- messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Append:
    registry: str
    records: tuple[JournalRecord, ...]


@dataclass(frozen=True, slots=True)
class Commit:
    registry: str
    token: int
    records: tuple[TerminalRecord, ...]
    reply_to: pykka.ActorRef[Any]


#: ``Durable.failure``: nothing was written; the caller may retry (``Internal``)
FAILED: Final = "failed"
#: nothing was written and the store takes no commits now (``Unavailable``)
REFUSED: Final = "refused"
#: the commit may or may not be on disk; an ``InDoubtSettled`` follows (``OutcomeUnknown``)
UNKNOWN: Final = "unknown"


@dataclass(frozen=True, slots=True)
class Durable:
    """The answer to one or more ``Commit`` messages of one registry.

    ``results`` holds ``(token, seqs, error)``: ``seqs`` are the journal
    positions of the commit's records when it succeeded, ``error`` names the
    cause when it did not, and ``failure`` says what kind of failure it was.
    """

    results: tuple[tuple[int, tuple[int, ...], str | None], ...]
    failure: str = FAILED


@dataclass(frozen=True, slots=True)
class InDoubtSettled:
    """What the reopened store says of commits answered ``UNKNOWN``.

    ``results`` holds ``(token, seqs)``: the journal positions when the commit
    is on disk, None when it is not.
    """

    results: tuple[tuple[int, tuple[int, ...] | None], ...]


# Requests, each asked and answered once every record sent before it is written
# (``OpenStore`` excepted: it comes first).


@dataclass(frozen=True, slots=True)
class OpenStore:
    """Open the store; asked once, before anything else."""


@dataclass(frozen=True, slots=True)
class Recover:
    """Answered with the ``Recovered`` snapshot and journal of ``registry``."""

    registry: str


@dataclass(frozen=True, slots=True)
class Attach:
    """From now on, feed ``registry``'s committed records to ``mirror`` (for compaction)."""

    registry: str
    mirror: Mirror


@dataclass(frozen=True, slots=True)
class Detach:
    """``registry`` was closed: snapshot it if it changed, drop its mirror."""

    registry: str


@dataclass(frozen=True, slots=True)
class Flush:
    """Answered once every record sent so far has been committed (or has failed)."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Answered with the actor's counters (commits, compactions, failures, …)."""


Control = OpenStore | Recover | Attach | Detach | Flush | Stats


@dataclass(frozen=True, slots=True)
class _GroupCommit:
    """Write the buffered records now (enqueued behind the first of them)."""


_GROUP_COMMIT = _GroupCommit()


@dataclass(frozen=True, slots=True)
class _Retry:
    pass


_RETRY = _Retry()


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a store holds for one registry: the last snapshot and the journal after it."""

    snapshot: PersistedOpsSnapshot | None
    journal: list[tuple[JournalRecord, int | None]]


class Store(Protocol):
    faults: FaultPlan

    def write(self, batch: Sequence[Append | Commit]) -> dict[int, tuple[int, ...]]:
        """Write every record of the batch in one transaction; return seqs per commit token.

        Raises on failure, having written nothing.
        """

    def open(self) -> None: ...

    def recover(self, registry: str) -> Recovered: ...

    def save_snapshot(self, registry: str, snapshot: PersistedOpsSnapshot) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """A store that keeps the journal in memory: same protocol, no disk.

    It numbers terminal records like the durable store, honours a
    ``FaultPlan``, and can replay what it holds, so the registry's
    durable-before-visible order is testable without SQLite.
    """

    def __init__(self) -> None:
        self.faults = FaultPlan()
        self._journal: dict[str, list[tuple[JournalRecord, int | None]]] = {}
        self._snapshots: dict[str, PersistedOpsSnapshot] = {}
        self._last_seq: dict[str, int] = {}
        self.commits = 0

    def write(self, batch: Sequence[Append | Commit]) -> dict[int, tuple[int, ...]]:
        staged: dict[str, list[tuple[JournalRecord, int | None]]] = {}
        last = dict(self._last_seq)
        seqs: dict[int, tuple[int, ...]] = {}
        for msg in batch:
            rows = staged.setdefault(msg.registry, [])
            if isinstance(msg, Commit):
                assigned = []
                for rec in msg.records:
                    seq = last.get(msg.registry, 0) + 1
                    last[msg.registry] = seq
                    rows.append((rec, seq))
                    assigned.append(seq)
                seqs[msg.token] = tuple(assigned)
            else:
                rows.extend((rec, None) for rec in msg.records)
        self.faults.before_commit(bool(seqs))
        for name, rows in staged.items():
            self._journal.setdefault(name, []).extend(rows)
        self._last_seq = last
        self.commits += 1
        self.faults.after_commit(bool(seqs))
        return seqs

    def open(self) -> None:
        pass

    def probe(self) -> None:
        self.faults.before_probe()

    def recover(self, registry: str) -> Recovered:
        return Recovered(self._snapshots.get(registry), list(self._journal.get(registry, [])))

    def save_snapshot(self, registry: str, snapshot: PersistedOpsSnapshot) -> None:
        self._snapshots[registry] = snapshot
        self._journal[registry] = []

    def close(self) -> None:
        pass


class Mirror(Protocol):
    """A replica of one registry's state, fed with committed records (a ``Lifecycle``)."""

    def apply(self, record: JournalRecord, seq: int | None = None) -> None: ...

    def to_persisted(self, epoch_id: str) -> PersistedOpsSnapshot: ...

    @property
    def retained_size(self) -> int: ...


DEFAULT_COMPACT_EVERY = 8192


class PersistenceActor(StoreFailures, pykka.ThreadingActor):
    """Owns one store; acknowledges each terminal record once it is committed.

    For each attached registry it keeps a *mirror* — a replica fed with the
    records it has committed, in commit order — so a compacted snapshot is
    simply the mirror's state: it costs O(retained state), never a replay of
    history, and it is exactly the journal's state at the moment it is taken.
    """

    def __init__(
        self,
        store: Store,
        compact_every: int = DEFAULT_COMPACT_EVERY,
        on_commit: Callable[[float, int], None] | None = None,
        backoff: tuple[float, float] = (0.005, 1.0),
    ) -> None:
        super().__init__()
        self.store = store
        self.on_commit = on_commit
        self.compact_every = compact_every
        self.epoch_id = new_incarnation_id()
        self._buffer: list[Append | Commit] = []
        self._flush_scheduled = False
        self._mirrors: dict[str, Mirror] = {}
        self._rows_since_snapshot: dict[str, int] = {}
        self.compactions = 0
        #: failed writes (definite) and failed reopens share one backoff: one cycle at a time
        self._backoff = Backoff(*backoff)
        self._timer: threading.Timer | None = None
        #: the transaction whose outcome is unknown, while the store is being reopened
        self._in_doubt: list[Append | Commit] | None = None
        #: why the store is gone for good (``StoreLost``)
        self._lost: str | None = None

    @staticmethod
    def _create_actor_inbox() -> Any:
        return queue.SimpleQueue()  # what pykka needs (put/get/empty), without Queue's locks

    def on_receive(self, message: Any) -> Any:
        if message is _GROUP_COMMIT:
            self._flush_scheduled = False
            self._flush()
            return None
        if message is _RETRY:
            self._timer = None
            if self._in_doubt is not None:
                self._reopen()
            else:
                self._flush()
            return None
        if isinstance(message, list):
            self._buffer.extend(message)  # one registry message's records, in order
            urgent = any(isinstance(m, Commit) for m in message)
        elif isinstance(message, Append | Commit):
            self._buffer.append(message)
            urgent = isinstance(message, Commit)
        else:
            return self._control(message)
        # While writes back off, appends wait for the retry; a commit has a caller
        # waiting for its answer, so it is tried (or refused) at once.
        if urgent or self._timer is None:
            self._schedule_flush()
        return None

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.actor_ref.tell(_GROUP_COMMIT)

    def _control(self, message: Any) -> Any:
        """Requests asked synchronously; pending records are written first."""
        if not isinstance(message, Control):
            log.warning("persistence actor refused an unknown message: %r", message)
            raise ValueError(f"unknown persistence request {message!r}")
        if isinstance(message, OpenStore):
            self.store.open()
            return None
        self._flush()
        match message:
            case Recover(registry):
                return self.store.recover(registry)
            case Attach(registry, mirror):
                self._mirrors[registry] = mirror
                self._rows_since_snapshot.setdefault(registry, 0)
            case Detach(registry):
                if self._rows_since_snapshot.get(registry):
                    self._compact(registry)
                self._mirrors.pop(registry, None)
                self._rows_since_snapshot.pop(registry, None)
            case Stats():
                return {
                    "commits": getattr(self.store, "commits", 0),
                    "compactions": self.compactions,
                    "rows_since_snapshot": dict(self._rows_since_snapshot),
                    "failed_attempts": self._backoff.attempts,
                    "recovering": self._in_doubt is not None,
                    "lost": self._lost,
                }
        return None  # Flush

    def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        if self._lost is not None or self._in_doubt is not None:
            self._refuse(batch)
            return
        started = time.perf_counter()
        try:
            seqs = self.store.write(batch)
        except Exception as exc:
            self._failed(batch, exc)
            return
        if self._backoff.failing:
            log.warning("journal writes succeed again after %d failure(s)", self._backoff.attempts)
            self._backoff.reset()
        self._answer(batch, seqs, None)
        if self.on_commit is not None:
            self.on_commit(time.perf_counter() - started, sum(len(m.records) for m in batch))
        self._feed_mirrors(batch, seqs)

    def _feed_mirrors(
        self, batch: Sequence[Append | Commit], seqs: dict[int, tuple[int, ...]]
    ) -> None:
        due = []
        for msg in batch:
            name = msg.registry
            mirror = self._mirrors.get(name)
            if mirror is None:
                continue
            try:
                if isinstance(msg, Commit):
                    for terminal, seq in zip(msg.records, seqs[msg.token], strict=True):
                        mirror.apply(terminal, seq)
                else:
                    for record in msg.records:
                        mirror.apply(record)
            except Exception:
                log.exception("mirror of registry %s diverged; compaction disabled for it", name)
                del self._mirrors[name]
                continue
            count = self._rows_since_snapshot[name] = self._rows_since_snapshot.get(name, 0) + len(
                msg.records
            )
            # A snapshot costs O(retained state); taking one every max(compact_every,
            # 2 x retained) records keeps its cost per record constant however much is
            # retained, and the journal tail (recovery time) proportional to retained state.
            if count >= max(self.compact_every, 2 * mirror.retained_size):
                due.append(name)
        for name in dict.fromkeys(due):
            self._compact(name)

    def _compact(self, name: str) -> None:
        mirror = self._mirrors.get(name)
        if mirror is None:
            return
        try:
            self.store.save_snapshot(name, mirror.to_persisted(self.epoch_id))
        except Exception:
            log.exception("compaction of registry %s failed; the journal keeps growing", name)
            return
        self._rows_since_snapshot[name] = 0
        self.compactions += 1
        fields = {"event": "compacted", "registry": name}
        log.info("registry %s compacted (%d retained)", name, mirror.retained_size, extra=fields)

    @staticmethod
    def _answer(
        batch: Sequence[Append | Commit],
        seqs: dict[int, tuple[int, ...]] | None,
        cause: str | None,
        failure: str = FAILED,
    ) -> None:
        by_registry: dict[int, tuple[pykka.ActorRef[Any], list[Any]]] = {}
        for msg in batch:
            if isinstance(msg, Commit):
                key = id(msg.reply_to)
                entry = by_registry.setdefault(key, (msg.reply_to, []))
                positions = () if seqs is None else seqs[msg.token]
                entry[1].append((msg.token, positions, cause))
        for ref, results in by_registry.values():
            try:
                ref.tell(Durable(tuple(results), failure))
            except pykka.ActorDeadError:
                log.info("registry stopped before its commit was acknowledged")

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._flush()
            if self._lost is None and self._in_doubt is None:
                for name, rows in self._rows_since_snapshot.items():
                    if rows:
                        self._compact(name)
        finally:
            self.store.close()

    def on_failure(self, *exc: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.store.close()
