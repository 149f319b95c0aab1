"""Recovery: rebuilding a registry from its store, and settling a commit whose outcome is unknown.

Two moments need the truth from disk rather than from memory:

* **Opening** a registry (``fold_recovered``): the latest snapshot plus the
  journal after it become the registry's state.
* **An indeterminate commit failure** (``fsync`` said ``EIO``; see
  :func:`actors.store_faults.classify_failure`): the transaction may or may not
  be on disk, and after such a failure even the store's own view of itself is
  suspect (PostgreSQL's stance since 2018: never retry the ``fsync``, reopen
  and recover). The persistence actor closes and reopens the store,
  :func:`probe` checks that the disk now takes a sync, and :func:`settle` reads
  whether the in-doubt transaction is in the recovered journal. Since every
  earlier transaction was acknowledged, memory and disk can differ only in that
  one transaction, so deciding it from disk makes the registry's state the
  disk's — while keeping what is never journaled (progress, peer handles of
  running operations), which replacing the state wholesale would lose.

A transaction is atomic, and it was the last thing written before the
failure; so it is on disk exactly when each registry's journal *ends* with its
records. Records are unique values (a registration, start, collection or
terminal happens once per operation), so the tail cannot match by accident.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pykka

from actors.backoff import Backoff
from actors.journal import JournalRecord
from actors.lifecycle import Lifecycle
from actors.lifecycle_snapshot import from_persisted, restore_progress_logs
from actors.store_faults import (
    INDETERMINATE,
    LOST,
    classify_failure,
    describe_failure,
    failure_kind,
)

if TYPE_CHECKING:
    from actors.persistence import Append, Commit, Recovered, Store

__all__ = ["InDoubt", "StoreFailures", "fold_recovered", "reopen", "settle"]

# The persistence actor's messages and failure classes are its module's; the log
# lines are about the persistence actor, so they go to its logger.
log = logging.getLogger("actors.persistence")


def fold_recovered(
    recovered: Recovered, max_completed: int, max_concurrent: int | None
) -> Lifecycle:
    """Snapshot + journal -> the registry's state; non-terminal operations are kept."""
    if recovered.snapshot is None:
        lc = Lifecycle(max_completed=max_completed, max_concurrent=max_concurrent)
    else:
        lc = from_persisted(
            recovered.snapshot,
            keep_non_terminal=True,
            max_completed=max_completed,
            max_concurrent=max_concurrent,
            override_limits=True,
        )
    for record, seq in recovered.journal:
        lc.apply(record, seq)
    return restore_progress_logs(lc)


def reopen(store: Store) -> None:
    """Close and reopen ``store``, then make it prove it can sync (raises if not)."""
    with contextlib.suppress(Exception):
        store.close()
    store.open()
    probe = getattr(store, "probe", None)
    if probe is not None:
        try:
            probe()
        except BaseException:
            with contextlib.suppress(Exception):
                store.close()
            raise


class InDoubt:
    """What one registry's journal says of the in-doubt transaction."""

    __slots__ = ("appends", "seqs")

    def __init__(self) -> None:
        #: commit token -> journal positions, for a transaction that is on disk
        self.seqs: dict[int, tuple[int, ...]] | None = None
        #: the records to write again, for a transaction that is not
        self.appends: list[Append] = []


def settle(batch: Sequence[Append | Commit], recovered: dict[str, Recovered]) -> dict[str, InDoubt]:
    """For each registry of ``batch``: is its part of the transaction at its journal's end?"""
    by_registry: dict[str, list[Append | Commit]] = {}
    for msg in batch:
        by_registry.setdefault(msg.registry, []).append(msg)
    verdicts: dict[str, InDoubt] = {}
    for name, msgs in by_registry.items():
        verdict = verdicts[name] = InDoubt()
        expected: list[JournalRecord] = [rec for msg in msgs for rec in msg.records]
        journal = recovered[name].journal
        tail = journal[len(journal) - len(expected) :] if len(journal) >= len(expected) else []
        if expected and [rec for rec, _ in tail] == expected:
            positions = iter(seq for _, seq in tail)
            seqs: dict[int, tuple[int, ...]] = {}
            for msg in msgs:
                taken = tuple(next(positions) for _ in msg.records)
                if isinstance(msg, persistence.Commit):
                    seqs[msg.token] = tuple(s for s in taken if s is not None)
            verdict.seqs = seqs
        else:
            verdict.appends = [m for m in msgs if not isinstance(m, persistence.Commit)]
    return verdicts


class StoreFailures:
    """The persistence actor's failure paths (a mixin of :class:`PersistenceActor`).

    Kept apart from the happy path: classify the failure, then refuse, back off,
    or reopen the store and settle the in-doubt transaction from disk.
    """

    store: Store
    actor_ref: pykka.ActorRef[Any]
    _buffer: list[Append | Commit]
    _backoff: Backoff
    _timer: threading.Timer | None
    _in_doubt: list[Append | Commit] | None
    _lost: str | None
    _answer: Callable[..., None]
    _feed_mirrors: Callable[..., None]
    _schedule_flush: Callable[[], None]

    def _schedule_retry(self) -> float:
        delay = self._backoff.next()
        if self._timer is None:
            ref = self.actor_ref

            def retry() -> None:
                with contextlib.suppress(pykka.ActorDeadError):
                    ref.tell(persistence._RETRY)

            self._timer = threading.Timer(delay, retry)
            self._timer.daemon = True
            self._timer.start()
        return delay

    def _failed(self, batch: list[Append | Commit], exc: Exception) -> None:
        cause = describe_failure(exc)
        verdict = classify_failure(exc)
        if verdict == LOST:
            self._lost = cause
            log.error("store lost, no more commits will be acknowledged: %s", cause)
            self._refuse(batch)
        elif verdict == INDETERMINATE:
            log.error(
                "journal commit of %d message(s) may or may not be on disk (%s); "
                "reopening the store to find out",
                len(batch),
                cause,
            )
            self._in_doubt = batch
            self._answer(batch, None, cause, persistence.UNKNOWN)
            self._reopen()
        else:
            # Appends carry no caller; keep them for the next transaction so the
            # journal does not lose a registration because a terminal failed.
            self._buffer[:0] = [m for m in batch if not isinstance(m, persistence.Commit)]
            self._answer(batch, None, cause)
            delay = self._schedule_retry() if self._buffer else 0.0
            if self._backoff.first_of(failure_kind(exc)):
                log.warning(
                    "journal commit of %d message(s) failed: %s; retrying with backoff "
                    "(%.3fs, doubling up to %.1fs; logged once until it succeeds)",
                    len(batch),
                    cause,
                    delay,
                    self._backoff.cap,
                )

    def _refuse(self, batch: list[Append | Commit]) -> None:
        """The store takes no commits now: refuse them; keep appends unless the store is lost."""
        if self._lost is not None:
            why = f"the store is lost ({self._lost}); nothing more is written"
        else:
            why = "the store is being reopened after an I/O error; nothing was written"
            self._buffer[:0] = [m for m in batch if not isinstance(m, persistence.Commit)]
        self._answer(batch, None, why, persistence.REFUSED)

    def _reopen(self) -> None:
        """Close and reopen the store, then settle the in-doubt transaction from disk."""
        batch = self._in_doubt
        assert batch is not None
        names = list(dict.fromkeys(m.registry for m in batch))
        attempt = self._backoff.attempts + 1
        try:
            reopen(self.store)
            recovered = {name: self.store.recover(name) for name in names}
        except Exception as exc:
            delay = self._schedule_retry()
            log.error(
                "reopening the store failed (attempt %d): %s; next attempt in %.3fs",
                attempt,
                describe_failure(exc),
                delay,
            )
            return
        self._backoff.reset()
        self._in_doubt = None
        verdicts = settle(batch, recovered)
        landed = {name for name, v in verdicts.items() if v.seqs is not None}
        log.warning(
            "store reopened (attempt %d); the in-doubt transaction is %s",
            attempt,
            "on disk" if landed else "not on disk",
        )
        seqs: dict[int, tuple[int, ...]] = {}
        for v in verdicts.values():
            seqs.update(v.seqs or {})
            self._buffer[:0] = v.appends
        self._feed_mirrors([m for m in batch if m.registry in landed], seqs)
        self._tell_settled(batch, seqs)
        if self._buffer:
            self._schedule_flush()

    @staticmethod
    def _tell_settled(batch: Sequence[Append | Commit], seqs: dict[int, tuple[int, ...]]) -> None:
        by_registry: dict[int, tuple[pykka.ActorRef[Any], list[Any]]] = {}
        for msg in batch:
            if isinstance(msg, persistence.Commit):
                entry = by_registry.setdefault(id(msg.reply_to), (msg.reply_to, []))
                entry[1].append((msg.token, seqs.get(msg.token)))
        for ref, results in by_registry.values():
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(persistence.InDoubtSettled(tuple(results)))


import actors.persistence as persistence  # noqa: E402  (a cycle: it inherits StoreFailures)
