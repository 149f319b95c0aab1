"""``OpsRegistry``: the thread-safe synchronous facade over one registry actor.

Construction (in memory, on a store, attached to a server's persistence actor),
a clean stop, and one ``Call`` message per method; every rule and side effect
lives behind it, in :mod:`actors.registry` and :mod:`actors.lifecycle`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import pykka

from actors.api import RegistryCalls
from actors.durable import DEFAULT_CALL_TIMEOUT, DurableStore
from actors.durable import attach as attach_registry
from actors.errors import (
    CallTimeout,
    Internal,
    InvalidArgument,
)
from actors.futures import OpsFuture
from actors.lifecycle import DEFAULT_MAX_COMPLETED, Lifecycle
from actors.lifecycle_snapshot import from_persisted, restore_progress_logs
from actors.model import (
    CompletionEntry,
    PersistedOpsSnapshot,
)
from actors.persistence import (
    DEFAULT_COMPACT_EVERY,
    Flush,
    MemoryStore,
    PersistenceActor,
    Store,
)
from actors.registry import Call, RegistryActor, now_ms

__all__ = ["OpsRegistry"]

log = logging.getLogger("actors.registry")


class OpsRegistry(RegistryCalls):
    """Thread-safe synchronous facade over one registry actor.

    Every method sends one message to the actor and waits for its answer;
    refusals raise the ``OpsLifecycleError`` subclass of docs/semantics.md. Methods that
    wait for a condition return an :class:`~actors.futures.OpsFuture` at once.

    >>> from actors import OpsRegistry, OperationId, OperationKind, OperationSpec, OperationResult
    >>> with OpsRegistry.start() as reg:
    ...     op = OperationId.new()
    ...     reg.register_operation(OperationSpec(id=op, kind=OperationKind.BACKGROUND_TOOL_OP,
    ...         owner_session_id="s1", display_name="x", source_label="doc"))
    ...     reg.provisioning_succeeded(op)
    ...     watch = reg.register_watcher(op)
    ...     reg.complete_operation(op, OperationResult(id=op, content="done"))
    ...     watch.get(timeout=5).result.content
    'done'
    """

    def __init__(
        self,
        actor_ref: pykka.ActorRef[RegistryActor],
        persistence_ref: pykka.ActorRef[PersistenceActor] | None = None,
        *,
        name: str = "default",
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        store: Store | None = None,
        journal: pykka.ActorRef[PersistenceActor] | None = None,
    ) -> None:
        """``persistence_ref``: a persistence actor this registry owns (and stops);
        ``journal``: the one its records go to, when it does not own it."""
        self._ref = actor_ref
        self._persistence_ref = persistence_ref
        self._attached_persistence = journal if journal is not None else persistence_ref
        self._store = store
        self.name = name
        self.call_timeout = call_timeout

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        max_completed: int = DEFAULT_MAX_COMPLETED,
        max_concurrent: int | None = None,
        *,
        name: str = "default",
        store: Store | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        on_entries: Callable[[list[CompletionEntry]], None] | None = None,
    ) -> OpsRegistry:
        """An in-memory registry; with ``store``, terminals wait for its acknowledgement.

        ``on_entries`` is called on the actor's thread with each batch of feed
        entries as they become visible (a server publishes them).
        """
        lifecycle = Lifecycle(max_completed=max_completed, max_concurrent=max_concurrent)
        return cls._launch(
            lifecycle, name=name, store=store, call_timeout=call_timeout, on_entries=on_entries
        )

    @classmethod
    def from_recovered(
        cls, snapshot: PersistedOpsSnapshot, *, name: str = "default", store: Store | None = None
    ) -> OpsRegistry:
        """Rebuild from a snapshot, keeping only terminal operations (seed semantics)."""
        if not isinstance(snapshot, PersistedOpsSnapshot):
            raise InvalidArgument("from_recovered needs a PersistedOpsSnapshot")
        lifecycle = restore_progress_logs(from_persisted(snapshot))
        return cls._launch(lifecycle, name=name, store=store)

    @classmethod
    def with_memory_store(
        cls, max_completed: int = DEFAULT_MAX_COMPLETED, **kw: Any
    ) -> OpsRegistry:
        """A registry whose terminals go through an in-memory store (and its fault plan)."""
        return cls.start(max_completed, store=MemoryStore(), **kw)

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        registry: str = "default",
        synchronous: str = "full",
        max_completed: int = DEFAULT_MAX_COMPLETED,
        max_concurrent: int | None = None,
        *,
        compact_every: int = DEFAULT_COMPACT_EVERY,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> OpsRegistry:
        """A durable registry on ``data_dir``, recovering whatever is there (docs/semantics.md).

        Every acknowledged terminal outcome survives a crash; operations that
        were in flight come back as ``Terminated("registry restarted")``.
        Raises :class:`~actors.sqlite_store.StoreError` when the store cannot
        be used (damaged, newer format, held by another live process).
        """
        Lifecycle(max_completed=max_completed, max_concurrent=max_concurrent)  # validate first
        durable = DurableStore.open(data_dir, synchronous, compact_every)
        try:
            return durable.attach(
                registry, max_completed, max_concurrent, owns=True, call_timeout=call_timeout
            )
        except BaseException:
            durable.stop()
            raise

    @classmethod
    def _launch(
        cls,
        lifecycle: Lifecycle,
        *,
        name: str,
        store: Store | None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        on_entries: Callable[[list[CompletionEntry]], None] | None = None,
    ) -> OpsRegistry:
        persistence_ref = PersistenceActor.start(store) if store is not None else None
        ref = RegistryActor.start(lifecycle, name, persistence_ref, now_ms, None, on_entries)
        return cls(ref, persistence_ref, name=name, call_timeout=call_timeout, store=store)

    @classmethod
    def attach(
        cls,
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
        """Start registry ``registry`` on an open persistence actor (a server hosts many).

        The same recovery as :meth:`open` and the server's (:mod:`actors.durable`).
        """
        return attach_registry(
            persistence_ref,
            registry,
            max_completed,
            max_concurrent,
            owns_persistence=owns_persistence,
            store=store,
            call_timeout=call_timeout,
            on_entries=on_entries,
        )

    @property
    def store(self) -> Store | None:
        """The store behind this registry (for its fault plan), if any.

        Only the persistence actor may call its methods; this is for reading
        its ``faults`` plan and counters.
        """
        return self._store

    def sync_journal(self) -> None:
        """Wait until every journal record sent so far has been committed (or failed)."""
        ref = self._attached_persistence
        if ref is not None and ref.is_alive():
            ref.ask(Flush(), timeout=self.call_timeout)

    def stop(self) -> None:
        """Stop cleanly: commits in flight are answered first, then pending futures fail
        with ``Internal("registry stopped")``, then the persistence actor (if this registry
        owns it) writes a compacted snapshot and closes the store."""
        if self._ref.is_alive():
            try:
                self.sync_journal()
            except (pykka.ActorDeadError, pykka.Timeout):
                log.warning("registry %s: journal could not be flushed before stopping", self.name)
            self._ref.stop()
        if self._persistence_ref is not None and self._persistence_ref.is_alive():
            self._persistence_ref.stop()

    def __enter__(self) -> OpsRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- plumbing ----------------------------------------------------------------------------

    def _call(self, method: str, *args: Any) -> Any:
        reply: OpsFuture[Any] = OpsFuture()
        try:
            self._ref.tell(Call(method, args, reply))
        except pykka.ActorDeadError:
            raise Internal("registry is not running") from None
        try:
            return reply.get(timeout=self.call_timeout)
        except pykka.Timeout:
            raise CallTimeout(
                f"registry did not answer {method} within {self.call_timeout}s"
            ) from None

    def tell(self, message: Any) -> None:
        """Hand ``message`` (a ``Call`` or a list of them) to the actor without waiting.

        For servers: each ``Call``'s ``reply`` future is set by the actor. Raises
        ``pykka.ActorDeadError`` when the registry is no longer running.
        """
        self._ref.tell(message)

    def call_async(self, method: str, *args: Any) -> OpsFuture[Any]:
        """Send one call without waiting; the future holds its answer (used by servers)."""
        reply: OpsFuture[Any] = OpsFuture()
        try:
            self._ref.tell(Call(method, args, reply))
        except pykka.ActorDeadError:
            reply.set_exception(Internal("registry is not running"))
        return reply

    # --- docs/semantics.md: the methods come from RegistryCalls --------------------------------------

    def capture_persistence_snapshot(self, epoch_id: str | None = None) -> PersistedOpsSnapshot:
        return self._call("capture_persistence_snapshot", epoch_id)  # type: ignore[no-any-return]
