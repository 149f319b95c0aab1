"""Recovery: rebuilding a registry from its store, and settling a commit whose outcome is unknown.

Two moments need the truth from disk rather than from memory:

* **Opening** a registry (``fold_recovered``): the latest snapshot plus the
  journal after it become the registry's state.
* **An indeterminate commit failure** (``fsync`` said ``EIO``; see
  :func:`actors.persistence.classify_failure`): the transaction may or may not
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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from actors.lifecycle import JournalRecord, Lifecycle

if TYPE_CHECKING:
    from actors.persistence import Append, Commit, Recovered, Store

__all__ = ["InDoubt", "fold_recovered", "reopen", "settle"]


def fold_recovered(
    recovered: Recovered, max_completed: int, max_concurrent: int | None
) -> Lifecycle:
    """Snapshot + journal -> the registry's state; non-terminal operations are kept."""
    if recovered.snapshot is None:
        lc = Lifecycle(max_completed=max_completed, max_concurrent=max_concurrent)
    else:
        lc = Lifecycle.from_persisted(
            recovered.snapshot,
            keep_non_terminal=True,
            max_completed=max_completed,
            max_concurrent=max_concurrent,
            override_limits=True,
        )
    for record, seq in recovered.journal:
        lc.apply(record, seq)
    return lc


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
    from actors.persistence import Commit

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
                if isinstance(msg, Commit):
                    seqs[msg.token] = tuple(s for s in taken if s is not None)
            verdict.seqs = seqs
        else:
            verdict.appends = [m for m in msgs if not isinstance(m, Commit)]
    return verdicts
