"""``DurableStore``: a SQLite store, its persistence actor, and the registries recovered from it.

The one place that opens a store and brings registries up from it:
``OpsRegistry.open`` (one registry owning its store) and ``RegistryServer`` (many
registries sharing one store, one journal namespace each) both go through it.

Attaching a registry is its recovery (docs/semantics.md): the store's latest
snapshot plus the journal after it become the registry's state
(:func:`actors.recovery.fold_recovered`); the persistence actor gets a replica of
that state to compact from; the registry actor starts with the incarnation id
the snapshot recorded; and every operation that was in flight when the store was
last written ends as ``Terminated(RESTART_REASON)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

import pykka

from actors.arguments import text
from actors.lifecycle import DEFAULT_MAX_COMPLETED, Lifecycle
from actors.lifecycle_snapshot import from_persisted
from actors.model import CompletionEntry
from actors.persistence import (
    DEFAULT_COMPACT_EVERY,
    Attach,
    Detach,
    Flush,
    OpenStore,
    PersistenceActor,
    Recover,
    Recovered,
    Store,
)
from actors.recovery import fold_recovered
from actors.registry import RESTART_REASON, RegistryActor, now_ms
from actors.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from actors.ops_registry import OpsRegistry

__all__ = ["DEFAULT_CALL_TIMEOUT", "DurableStore", "attach"]

#: how long a registry's facade waits for an answer of its actor
DEFAULT_CALL_TIMEOUT: Final = 60.0
#: how long a closing registry's snapshot may take
DETACH_TIMEOUT: Final = 60.0


class DurableStore:
    """A SQLite store on ``data_dir`` and the persistence actor that alone touches it."""

    def __init__(self, store: SqliteStore, ref: pykka.ActorRef[PersistenceActor]) -> None:
        self.store = store
        self.ref = ref

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        synchronous: str = "full",
        compact_every: int = DEFAULT_COMPACT_EVERY,
        on_commit: Callable[[float, int], None] | None = None,
    ) -> DurableStore:
        """Open the store (its checks, lock and migration) in a new persistence actor.

        Raises :class:`~actors.sqlite_store.StoreError` when the store cannot be
        used (damaged, newer format, held by another live process).
        """
        store = SqliteStore(data_dir, synchronous)
        ref = PersistenceActor.start(store, compact_every, on_commit)
        try:
            ref.ask(OpenStore())
        except BaseException:
            ref.stop()
            raise
        return cls(store, ref)

    def attach(
        self,
        registry: str = "default",
        max_completed: int = DEFAULT_MAX_COMPLETED,
        max_concurrent: int | None = None,
        *,
        owns: bool = False,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        on_entries: Callable[[list[CompletionEntry]], None] | None = None,
    ) -> OpsRegistry:
        """Recover registry ``registry`` and start it; with ``owns``, stopping it stops the store."""
        return attach(
            self.ref,
            registry,
            max_completed,
            max_concurrent,
            owns_persistence=owns,
            store=self.store if owns else None,
            call_timeout=call_timeout,
            on_entries=on_entries,
        )

    def detach(self, registry: str, timeout: float = DETACH_TIMEOUT) -> None:
        """Registry ``registry`` was closed: snapshot it if it changed, stop mirroring it."""
        self.ref.ask(Detach(registry), timeout=timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every journal record sent so far has been committed (or failed)."""
        self.ref.ask(Flush(), timeout=timeout)

    def stop(self) -> None:
        """Write what is pending and a compacted snapshot of each changed registry, then close."""
        if self.ref.is_alive():
            self.ref.stop()


def attach(
    persistence_ref: pykka.ActorRef[PersistenceActor],
    registry: str = "default",
    max_completed: int = DEFAULT_MAX_COMPLETED,
    max_concurrent: int | None = None,
    *,
    owns_persistence: bool = False,
    store: Store | None = None,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
    on_entries: Callable[[list[CompletionEntry]], None] | None = None,
) -> OpsRegistry:
    """Recover registry ``registry`` from an open persistence actor and start it."""
    from actors.ops_registry import OpsRegistry

    text(registry, "registry")
    recovered = cast(Recovered, persistence_ref.ask(Recover(registry)))
    live = fold_recovered(recovered, max_completed, max_concurrent)
    # The persistence actor's replica starts from the same state; copying it costs
    # O(retained), replaying the journal a second time would cost O(journal).
    mirror: Lifecycle = from_persisted(
        live.to_persisted(""),
        keep_non_terminal=True,
        max_completed=max_completed,
        max_concurrent=max_concurrent,
        override_limits=True,
    )
    persistence_ref.ask(Attach(registry, mirror))
    epoch = recovered.snapshot.epoch_id if recovered.snapshot is not None else None
    ref = RegistryActor.start(live, registry, persistence_ref, now_ms, epoch, on_entries)
    reg = OpsRegistry(
        ref,
        persistence_ref if owns_persistence else None,
        name=registry,
        call_timeout=call_timeout,
        store=store,
        journal=persistence_ref,
    )
    try:
        reg.terminate_owner(RESTART_REASON)
    except BaseException:
        reg.stop()
        raise
    return reg
