"""The registry actor (the shell); ``actors.ops_registry.OpsRegistry`` is its facade.

The actor's mailbox serialises every lifecycle message of one registry. Its
only jobs are to ask :class:`~actors.lifecycle.Lifecycle` what is legal,
stamp times, hold the futures it has handed out (watchers, wait-all,
wait-any, feed advance), pass journal records to the persistence actor, and
— when a terminal record is acknowledged — make the outcome visible in the
order of docs/semantics.md: watchers, seq and feed, FIFO and eviction, the barrier,
and finally the caller's reply. It never blocks on the disk: a terminal call
is parked until its ``Durable`` message arrives, and the mailbox keeps
moving meanwhile. A competing call that depends on that operation's status
is parked too (:mod:`actors.parking`) and runs once the commit has settled.
After a commit whose outcome is unknown, the registry refuses every call with
``Unavailable`` until the persistence actor has read the truth from disk
(``InDoubtSettled``) and this registry has made that truth visible.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final

import pykka

from actors import arguments, calls
from actors.commit_path import RECOVERING, CommitPath
from actors.errors import (
    Internal,
    InvalidArgument,
    OpsLifecycleError,
    Unavailable,
    WaitCancelled,
)
from actors.futures import OpsFuture, resolved
from actors.journal import CollectRecord
from actors.leases import Leases
from actors.lifecycle import CommitEffects, Lifecycle
from actors.model import (
    CompletionBatch,
    CompletionEntry,
    DiagnosticSnapshot,
    OperationId,
    OperationLifecycleSnapshot,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    Outcome,
    PersistedOpsSnapshot,
    WaitAllResult,
    new_incarnation_id,
    new_wait_request_id,
)
from actors.paging import OperationQuery, page_limit
from actors.parking import Parking, PendingTerminal
from actors.persistence import (
    Append,
    Commit,
    Durable,
    InDoubtSettled,
)
from actors.progress_log import ProgressEntry
from actors.recovery import fold_recovered
from actors.waiters import Waiters

__all__ = ["RESTART_REASON", "RegistryActor", "fold_recovered"]

#: The outcome given to operations that were in flight when their registry last stopped.
RESTART_REASON: Final = "registry restarted"

log = logging.getLogger(__name__)

_DEFER: Final = object()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Call:
    """One request to the registry actor; ``reply`` is set by the actor, now or later."""

    __slots__ = ("args", "method", "reply")

    def __init__(self, method: str, args: tuple[Any, ...], reply: OpsFuture[Any] | None) -> None:
        self.method = method
        self.args = args
        self.reply = reply


def handlers(actor: object) -> dict[str, Callable[..., Any]]:
    """``actors.calls.METHODS`` and ``INTERNAL`` mapped to ``actor._do_<name>``.

    A table entry without its handler fails here, when the registry starts, not
    when the first caller asks for it.
    """
    out: dict[str, Callable[..., Any]] = {}
    for name in (*calls.METHODS, *sorted(calls.INTERNAL)):
        handler = getattr(actor, "_do_" + name, None)
        if handler is None:
            raise TypeError(f"{type(actor).__name__} has no handler _do_{name} for {name}")
        out[name] = handler
    return out


class RegistryActor(CommitPath, pykka.ThreadingActor):
    """One registry. Create it through :class:`OpsRegistry`; talk to it with ``Call`` messages."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        name: str = "default",
        persistence: pykka.ActorRef[Any] | None = None,
        clock: Callable[[], int] = now_ms,
        epoch_id: str | None = None,
        on_entries: Callable[[list[CompletionEntry]], None] | None = None,
    ) -> None:
        super().__init__()
        self.lc = lifecycle
        self.name = name
        self.persistence = persistence
        self.clock = clock
        self.epoch_id = epoch_id or new_incarnation_id()
        self.on_entries = on_entries
        #: every future handed out that waits for something (actors/waiters.py)
        self.waits: Waiters[OpsFuture[Any]] = Waiters()
        #: leased operations by the client (an opaque token from a server) that holds them
        self.leases = Leases()
        self.inflight: dict[int, tuple[list[OperationId], OpsFuture[Any] | None]] = {}
        self.parked: Parking[Call] = Parking()
        #: commits answered "outcome unknown", by token; while any, every call is refused
        self.in_doubt: dict[int, list[OperationId]] = {}
        #: journal messages produced while handling the current mailbox message
        self.outgoing: list[Append | Commit] = []
        self.next_token = 0
        #: the method table's entries and the server-only messages, each to its ``_do_`` handler
        self.handlers: dict[str, Callable[..., Any]] = handlers(self)

    @staticmethod
    def _create_actor_inbox() -> Any:
        # pykka needs put/get/empty; SimpleQueue is a C queue without Queue's
        # Condition, so every hand-off to the actor costs less under load.
        return queue.SimpleQueue()

    # --- mailbox ---------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Call):
            self._dispatch(message)
        elif isinstance(message, list):
            # A batch handed over by a server's I/O thread: one mailbox hop for many calls.
            for call in message:
                self._dispatch(call)
        elif isinstance(message, Durable):
            self._on_durable(message)
        elif isinstance(message, InDoubtSettled):
            self._on_settled(message)
        else:
            log.warning("registry %s ignored unknown message %r", self.name, type(message))
        while self.outgoing:  # a failed hand-off can release parked calls that journal more
            self._ship()

    def _ship(self) -> None:
        """Hand everything this message produced for the journal to persistence, in one hop."""
        outgoing, self.outgoing = self.outgoing, []
        assert self.persistence is not None
        try:
            self.persistence.tell(outgoing if len(outgoing) > 1 else outgoing[0])
        except pykka.ActorDeadError:
            failure = Internal("persistence actor is not running")
            for msg in outgoing:
                if isinstance(msg, Commit):
                    ids, reply = self.inflight.pop(msg.token)
                    for op_id in ids:
                        self.lc.rollback_terminal(op_id)
                    if reply is not None and not reply.done():
                        reply.set_exception(failure)
                    self._run_parked(ids)

    def _dispatch(self, call: Call) -> None:
        reply = call.reply
        if self.in_doubt and reply is not None and call.method != "cancel_wait_all":
            reply.set_exception(Unavailable(RECOVERING))  # memory may disagree with the disk
            return
        try:
            handler = self.handlers[call.method]
        except KeyError:
            if reply is not None:
                reply.set_exception(InvalidArgument(f"unknown registry method {call.method!r}"))
            return
        try:
            value = handler(reply, *call.args)
        except PendingTerminal as pending:
            self.parked.park(call, pending.ids)
            return
        except OpsLifecycleError as exc:
            if reply is not None:
                reply.set_exception(exc)
            return
        except TypeError as exc:
            if reply is not None:
                reply.set_exception(InvalidArgument(f"{call.method}: {exc}"))
            return
        except Exception as exc:  # a bug: answer it, keep the registry alive
            log.exception("registry %s failed on %s", self.name, call.method)
            if reply is not None:
                reply.set_exception(Internal(f"{call.method} failed: {exc!r}"))
            return
        if value is not _DEFER and reply is not None:
            reply.set(value)

    def on_stop(self) -> None:
        stopped = Internal("registry stopped")
        pending = self.waits.drain()
        pending += [reply for _, reply in self.inflight.values() if reply is not None]
        pending += [c.reply for c in self.parked.drain() if c.reply is not None]
        for f in pending:
            if not f.done():
                f.set_exception(stopped)

    # --- helpers -----------------------------------------------------------------------

    def _journal(self, record: Any) -> None:
        if self.persistence is not None:
            self.outgoing.append(Append(self.name, (record,)))

    def _watcher_counts(self) -> dict[OperationId, int]:
        return self.waits.watcher_counts()

    def _terminal(
        self, reply: OpsFuture[Any] | None, items: Sequence[tuple[OperationId, str, Outcome]]
    ) -> Any:
        """Begin each terminal transition; make it visible now, or once it is durable."""
        now = self.clock()
        records = [
            self.lc.begin_terminal(op_id, action, outcome, now) for op_id, action, outcome in items
        ]
        ids = [op_id for op_id, _, _ in items]
        if self.persistence is None:
            self._make_visible([(op_id, None) for op_id in ids])
            return None
        if not records:
            return None
        token = self.next_token = self.next_token + 1
        self.inflight[token] = (ids, reply)
        self.outgoing.append(Commit(self.name, token, tuple(records), self.actor_ref))
        return _DEFER

    def _make_visible(self, committed: list[tuple[OperationId, int | None]]) -> None:
        entries = []
        for op_id, seq in committed:
            effects = self.lc.commit_terminal(op_id, seq)
            self._resolve(effects)
            entries.append(effects.entry)
        if entries:
            if self.on_entries is not None:
                self.on_entries(entries)
            self._advance()

    def _resolve(self, effects: CommitEffects) -> None:
        entry = effects.entry
        op_id = entry.operation_id
        self.leases.ended(op_id)
        for f, value in self.waits.on_terminal(op_id, entry.terminal_outcome):
            if not f.done():
                f.set(value)
        if effects.wait_all is not None:
            self._settle_barrier(effects.wait_all.satisfied.wait_request_id, effects.wait_all, None)
        if effects.wait_failed is not None:
            self._settle_barrier(effects.wait_failed[0], None, effects.wait_failed[1])

    def _settle_barrier(
        self, wait_request_id: str, result: WaitAllResult | None, error: BaseException | None
    ) -> None:
        _, future = self.waits.take_barrier(wait_request_id)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set(result)

    def _advance(self) -> None:
        mark = self.lc.watermark
        for f in self.waits.on_watermark(mark):
            if not f.done():
                f.set(mark)

    def _barrier_dropped(self, wait_request_id: str) -> None:
        """The caller let go of its ``wait_all`` future: clear the barrier (seed behaviour)."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(Call("cancel_wait_all", (wait_request_id,), None))

    # --- lifecycle methods (docs/semantics.md) ---------------------------------------------------------

    def _do_register_operation(self, reply: Any, spec: OperationSpec) -> None:
        self._journal(self.lc.register(spec, self.clock()))

    def _do_provisioning_succeeded(self, reply: Any, op_id: Any) -> None:
        self._journal(self.lc.start(OperationId(op_id), self.clock()))

    def _do_provisioning_failed(self, reply: Any, op_id: Any, error: Any) -> Any:
        return self._terminal(reply, [arguments.terminal("provisioning_failed", op_id, error)])

    def _do_fail_operation(self, reply: Any, op_id: Any, error: Any) -> Any:
        return self._terminal(reply, [arguments.terminal("fail_operation", op_id, error)])

    def _do_peer_ready(self, reply: Any, op_id: Any, handle: OperationPeerHandle) -> None:
        self.lc.peer_ready(OperationId(op_id), handle)

    def _do_report_progress(self, reply: Any, op_id: Any, update: OperationProgressUpdate) -> None:
        self.lc.progress(OperationId(op_id), update, self.clock())

    def _do_complete_operation(self, reply: Any, op_id: Any, result: OperationResult) -> Any:
        return self._terminal(reply, [arguments.terminal("complete_operation", op_id, result)])

    def _do_abort_provisioning(self, reply: Any, op_id: Any, reason: Any = None) -> Any:
        return self._terminal(reply, [arguments.terminal("abort_provisioning", op_id, reason)])

    def _do_cancel_operation(self, reply: Any, op_id: Any, reason: Any = None) -> Any:
        return self._terminal(reply, [arguments.terminal("cancel_operation", op_id, reason)])

    def _do_request_retire(self, reply: Any, op_id: Any) -> None:
        self.lc.request_retire(OperationId(op_id))

    def _do_mark_retired(self, reply: Any, op_id: Any) -> Any:
        return self._terminal(reply, [arguments.terminal("mark_retired", op_id)])

    def _do_terminate_owner(self, reply: Any, reason: Any) -> Any:
        action, outcome = arguments.terminated(reason)
        targets = self.lc.terminate_targets()
        return self._terminal(reply, [(op_id, action, outcome) for op_id in targets])

    def _do_collect_completed(self, reply: Any) -> list[tuple[OperationId, Outcome]]:
        drained, failed = self.lc.collect_completed()
        if drained:
            self._journal(CollectRecord(ids=tuple(op_id for op_id, _ in drained)))
        if failed is not None:
            self._settle_barrier(failed[0], None, failed[1])
        return drained

    # --- reads ----------------------------------------------------------------------------------

    def _do_snapshot(self, reply: Any, op_id: Any) -> OperationLifecycleSnapshot | None:
        op_id = OperationId(op_id)
        return self.lc.snapshot(op_id, self.waits.watcher_count(op_id))

    def _do_progress_log(self, reply: Any, op_id: Any) -> list[ProgressEntry]:
        return self.lc.progress_log(OperationId(op_id))

    def _do_list_operations(self, reply: Any, *query: Any) -> list[OperationLifecycleSnapshot]:
        # Always a bounded page (actors/paging.py); RegistryCalls pages for its callers.
        return self.lc.list_operations(self._watcher_counts(), OperationQuery(*query))

    def _do_diagnostic_snapshot(self, reply: Any) -> DiagnosticSnapshot:
        return self.lc.diagnostic(self._watcher_counts())

    def _do_capture_persistence_snapshot(
        self, reply: Any, epoch_id: str | None = None
    ) -> PersistedOpsSnapshot:
        return self.lc.to_persisted(epoch_id or self.epoch_id, self._watcher_counts())

    def _do_list_since(self, reply: Any, after_seq: int, limit: Any = None) -> CompletionBatch:
        return self.lc.list_since(after_seq, page_limit(limit))

    def _do_watermark(self, reply: Any) -> int:
        return self.lc.watermark

    def _do_operation_counts(self, reply: Any) -> dict[tuple[str, str], int]:
        return self.lc.counts()

    # --- futures ----------------------------------------------------------------------------------

    def _do_register_watcher(self, reply: Any, op_id: Any) -> OpsFuture[Outcome]:
        op_id = OperationId(op_id)
        outcome = self.lc.watch(op_id)
        if outcome is not None:
            return resolved(outcome)
        f: OpsFuture[Outcome] = OpsFuture()
        self.waits.add_watcher(f, op_id)
        return f

    def _do_wait_any(self, reply: Any, ids: Any) -> OpsFuture[tuple[OperationId, Outcome]]:
        members = arguments.ids(ids, "wait_any ids")
        found = self.lc.wait_any(members)
        if found is not None:
            return resolved(found)
        f: OpsFuture[tuple[OperationId, Outcome]] = OpsFuture()
        self.waits.add_any(f, members)
        return f

    def _do_wait_all(self, reply: Any, run_id: Any, ids: Any) -> OpsFuture[WaitAllResult]:
        arguments.run_id(run_id)
        members = arguments.ids(ids, "wait_all ids")
        wait_request_id = new_wait_request_id()
        result = self.lc.begin_wait_all(wait_request_id, members, run_id)
        if result is not None:
            return resolved(result)
        f: OpsFuture[WaitAllResult] = OpsFuture()
        f.wait_request_id = wait_request_id

        # Held weakly: a caller that drops its future cancels the barrier, as in the seed.
        def dropped(_: object, w: str = wait_request_id) -> None:
            self._barrier_dropped(w)

        self.waits.set_barrier(wait_request_id, weakref.ref(f, dropped))
        return f

    def _do_cancel_wait_all(self, reply: Any, wait_request_id: str | None = None) -> bool:
        cleared = self.lc.cancel_wait_all(wait_request_id)
        if cleared is None:
            return False
        self._settle_barrier(cleared, None, WaitCancelled(cleared))
        return True

    def _do_wait_for_advance(self, reply: Any, after_seq: int) -> OpsFuture[int]:
        arguments.after_seq(after_seq)
        mark = self.lc.watermark
        if mark > after_seq:
            return resolved(mark)
        f: OpsFuture[int] = OpsFuture()
        self.waits.add_advance(f, after_seq)
        return f

    # --- on behalf of a server: waits and leases of a client it gave up on ---------------------

    def _do_cancel_waits(self, reply: Any, futures: list[OpsFuture[Any]], why: str) -> int:
        """Remove these pending waits (a barrier among them too); each fails ``WaitCancelled``."""
        cancelled, barriers = self.waits.cancel(futures)
        for f in cancelled:
            if not f.done():
                f.set_exception(WaitCancelled(why))
        for wait_request_id in barriers:
            self._do_cancel_wait_all(None, wait_request_id)
        return len(cancelled) + len(barriers)

    def _do_register_leased(self, reply: Any, spec: OperationSpec, owner: bytes) -> None:
        """``register_operation``, remembering which client's liveness the operation rides on."""
        self._do_register_operation(reply, spec)
        if spec.lease:
            self.leases.add(owner, spec.id)

    def _do_release_leases(self, reply: Any, owner: bytes, reason: str) -> Any:
        """The owner went silent: end its leased operations that are still running."""
        return self._do_terminate_operations(reply, self.leases.release(owner), reason)

    def _do_terminate_operations(self, reply: Any, ids: Any, reason: Any) -> Any:
        """``Terminated(reason)`` for each of ``ids`` still running; ended or unknown are skipped."""
        action, outcome = arguments.terminated(reason)
        wanted = set(arguments.ids(ids, "ids"))
        targets = [op_id for op_id in self.lc.terminate_targets() if op_id in wanted]
        return self._terminal(reply, [(op_id, action, outcome) for op_id in targets])
