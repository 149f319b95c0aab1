"""The authority: every lifecycle rule of docs/semantics.md, as a plain object.

``Lifecycle`` decides and records; it never waits, sends, or reads a clock it
is not given. The registry actor (the shell) asks it whether a call is legal,
hands the resulting journal record to persistence, and tells it when that
record is durable. Everything the outside world can observe — statuses,
counters, the completed FIFO, the feed sequence, the wait-all barrier — is
derived from this object alone, so it can be driven in a test without threads.

A terminal transition has two steps here:

``begin_terminal``
    checks legality and marks the operation *pending*: its visible status
    does not change, and any call whose answer depends on that status raises
    :class:`~actors.parking.PendingTerminal` ("hold me until it settles")
    instead of being answered from an outcome that is not yet durable.
``commit_terminal`` / ``rollback_terminal``
    after persistence answers: make it visible (seq, feed entry, FIFO,
    eviction, barrier) or forget it.

The same object replays a journal (``apply``), which is how recovery and
compaction rebuild state without the persistence layer knowing any rule.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec

from actors.arguments import limits
from actors.errors import (
    AlreadyPeerReady,
    AlreadyRegistered,
    DuplicateWaitOperation,
    Internal,
    InvalidArgument,
    InvalidTransition,
    MaxConcurrentExceeded,
    NotFound,
    OpsLifecycleError,
    PeerNotExpected,
    WaitAlreadyActive,
)
from actors.journal import CollectRecord, JournalRecord, RegisterRecord, StartRecord, TerminalRecord
from actors.model import (
    Completed,
    CompletionBatch,
    CompletionEntry,
    DiagnosticSnapshot,
    OperationId,
    OperationKind,
    OperationLifecycleSnapshot,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationSpec,
    OperationStatus,
    Outcome,
    PersistedOpsSnapshot,
    WaitAllResult,
    WaitAllSatisfied,
)
from actors.paging import OperationQuery
from actors.parking import PendingTerminal
from actors.progress_log import DEFAULT_PROGRESS_BUDGET, ProgressEntry, ProgressLogs

__all__ = [
    "DEFAULT_MAX_COMPLETED",
    "CommitEffects",
    "Lifecycle",
    "feed_capacity",
]

DEFAULT_MAX_COMPLETED: Final = 256

P = OperationStatus.PROVISIONING
R = OperationStatus.RUNNING
RT = OperationStatus.RETIRING

#: docs/semantics.md: the statuses each action is legal from (action label -> statuses).
LEGAL_FROM: Final[Mapping[str, frozenset[OperationStatus]]] = {
    "provisioning_succeeded": frozenset({P}),
    "fail_operation": frozenset({P, R, RT}),
    "peer_ready": frozenset({R, RT}),
    "report_progress": frozenset({R, RT}),
    "complete_operation": frozenset({R, RT}),
    "abort_provisioning": frozenset({P}),
    "cancel_operation": frozenset({P, R, RT}),
    "request_retire": frozenset({R}),
    "mark_retired": frozenset({R, RT}),
    "terminate_owner": frozenset({P, R, RT}),
}


def feed_capacity(max_completed: int) -> int:
    """docs/semantics.md: the feed keeps the last ``max(4 × max_completed, 1024)`` entries."""
    return max(4 * max_completed, 1024)


class CommitEffects(msgspec.Struct, frozen=True):
    """What became visible when a terminal record was committed."""

    entry: CompletionEntry
    evicted: tuple[OperationId, ...]
    #: the barrier this commit satisfied (its request id is in ``satisfied``)
    wait_all: WaitAllResult | None
    #: a barrier that can never be satisfied because a member was evicted
    wait_failed: tuple[str, OpsLifecycleError] | None


class _Op:
    """One operation's mutable record; only ``Lifecycle`` touches it."""

    __slots__ = (
        "completed_at_ms",
        "created_at_ms",
        "last_progress",
        "outcome",
        "peer_handle",
        "peer_ready",
        "pending",
        "pending_at_ms",
        "progress_count",
        "seq",
        "spec",
        "started_at_ms",
        "status",
    )

    def __init__(self, spec: OperationSpec, created_at_ms: int) -> None:
        self.spec = spec
        self.status = P
        self.peer_ready = False
        self.progress_count = 0
        self.last_progress: OperationProgressUpdate | None = None
        self.peer_handle: OperationPeerHandle | None = None
        self.outcome: Outcome | None = None
        self.created_at_ms = created_at_ms
        self.started_at_ms: int | None = None
        self.completed_at_ms: int | None = None
        self.seq: int | None = None
        self.pending: Outcome | None = None
        self.pending_at_ms = 0


class _Barrier:
    __slots__ = ("ids", "run_id", "wait_request_id")

    def __init__(self, wait_request_id: str, ids: tuple[OperationId, ...], run_id: str) -> None:
        self.wait_request_id = wait_request_id
        self.ids = ids
        self.run_id = run_id


class Lifecycle:
    """The pure rules of one registry.

    >>> from actors import OperationId, OperationKind, OperationSpec, Failed
    >>> lc = Lifecycle(max_completed=2)
    >>> op = OperationId.new()
    >>> lc.register(OperationSpec(id=op, kind=OperationKind.BACKGROUND_TOOL_OP,
    ...     owner_session_id="s", display_name="x", source_label="t"), now_ms=1)
    >>> _ = lc.begin_terminal(op, "fail_operation", Failed("boom"), now_ms=2)
    >>> lc.commit_terminal(op).entry.seq
    1
    """

    def __init__(
        self,
        max_completed: int = DEFAULT_MAX_COMPLETED,
        max_concurrent: int | None = None,
        progress_budget: int = DEFAULT_PROGRESS_BUDGET,
    ):
        self.max_completed, self.max_concurrent = limits(max_completed, max_concurrent)
        #: every operation's recent progress updates, within ``progress_budget`` bytes
        self.progress_logs = ProgressLogs(budget=progress_budget)
        self._ops: dict[OperationId, _Op] = {}
        self._completed: deque[OperationId] = deque()
        self._active = 0
        self._seq = 0
        self._pending = 0
        self._feed: deque[CompletionEntry] = deque(maxlen=feed_capacity(max_completed))
        self._dropped_through = 0
        self._barrier: _Barrier | None = None

    # --- reads ------------------------------------------------------------------

    @property
    def active_count(self) -> int:
        """Operations not (visibly) terminal, pending commits included."""
        return self._active

    @property
    def operation_count(self) -> int:
        return len(self._ops)

    @property
    def retained_size(self) -> int:
        """Operations plus feed entries held: what a snapshot has to write."""
        return len(self._ops) + len(self._feed)

    @property
    def watermark(self) -> int:
        """Highest completion seq made visible."""
        return self._seq

    def snapshot(
        self, op_id: OperationId, watcher_count: int = 0
    ) -> OperationLifecycleSnapshot | None:
        op = self._ops.get(op_id)
        return None if op is None else self._view(op, watcher_count)

    def list_operations(
        self,
        watcher_counts: Mapping[OperationId, int] | None = None,
        query: OperationQuery | None = None,
    ) -> list[OperationLifecycleSnapshot]:
        counts = watcher_counts or {}
        if query is not None:
            return [
                self._view(op, counts.get(op.spec.id, 0)) for op in query.select(self._ops.values())
            ]
        views = [self._view(op, counts.get(op_id, 0)) for op_id, op in self._ops.items()]
        views.sort(key=lambda v: (v.display_name, v.id))
        return views

    def diagnostic(
        self, watcher_counts: Mapping[OperationId, int] | None = None
    ) -> DiagnosticSnapshot:
        b = self._barrier
        return DiagnosticSnapshot(
            operation_count=len(self._ops),
            active_count=self._active,
            wait_active=b is not None,
            wait_request_id=None if b is None else b.wait_request_id,
            wait_operation_ids=() if b is None else b.ids,
            operations=tuple(self.list_operations(watcher_counts)),
            pending_commit_count=self._pending,
            wait_run_id=None if b is None else b.run_id,
        )

    def counts(self) -> dict[tuple[str, str], int]:
        """Retained operations by (status, kind), for metrics."""
        out: dict[tuple[str, str], int] = {}
        for op in self._ops.values():
            key = (op.status.value, op.spec.kind.value)
            out[key] = out.get(key, 0) + 1
        return out

    def list_since(self, after_seq: int, limit: int | None = None) -> CompletionBatch:
        if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
            raise InvalidArgument(f"after_seq must be a non-negative integer, got {after_seq!r}")
        feed = self._feed
        if after_seq >= self._seq or not feed:
            entries: tuple[CompletionEntry, ...] = ()
        else:
            # Entries are contiguous by seq, so the start index is arithmetic.
            start = max(0, after_seq - feed[0].seq + 1)
            end = len(feed) if limit is None else min(len(feed), start + limit)
            entries = tuple(feed[i] for i in range(start, end))
        return CompletionBatch(
            entries=entries, watermark=self._seq, dropped_through=self._dropped_through
        )

    def _view(self, op: _Op, watcher_count: int) -> OperationLifecycleSnapshot:
        spec = op.spec
        done = op.completed_at_ms
        return OperationLifecycleSnapshot(
            id=spec.id,
            kind=spec.kind,
            display_name=spec.display_name,
            status=op.status,
            peer_ready=op.peer_ready,
            progress_count=op.progress_count,
            watcher_count=watcher_count,
            terminal_outcome=op.outcome,
            child_session_id=spec.child_session_id,
            peer_handle=op.peer_handle,
            created_at_ms=op.created_at_ms,
            started_at_ms=op.started_at_ms,
            completed_at_ms=done,
            elapsed_ms=None if done is None else max(0, done - op.created_at_ms),
            owner_session_id=spec.owner_session_id,
            last_progress=op.last_progress,
        )

    # --- legality -------------------------------------------------------------------

    def _get(self, op_id: OperationId) -> _Op:
        op = self._ops.get(op_id)
        if op is None:
            raise NotFound(op_id)
        return op

    def _require(self, op_id: OperationId, action: str) -> _Op:
        """NotFound first; a pending terminal holds the call (its answer is not durable yet)."""
        op = self._get(op_id)
        if op.pending is not None:
            raise PendingTerminal((op_id,))
        if op.status not in LEGAL_FROM[action]:
            raise InvalidTransition(op_id, op.status, action)
        return op

    # --- non-terminal transitions ---------------------------------------------------------

    def register(self, spec: OperationSpec, now_ms: int) -> RegisterRecord:
        if not isinstance(spec, OperationSpec):
            raise InvalidArgument(
                f"register_operation needs an OperationSpec, got {type(spec).__name__}"
            )
        if spec.id in self._ops:
            raise AlreadyRegistered(spec.id)
        limit = self.max_concurrent
        if limit is not None and self._active >= limit:
            raise MaxConcurrentExceeded(limit, self._active)
        self._ops[spec.id] = _Op(spec, now_ms)
        self._active += 1
        return RegisterRecord(spec=spec, created_at_ms=now_ms)

    def start(self, op_id: OperationId, now_ms: int) -> StartRecord:
        op = self._require(op_id, "provisioning_succeeded")
        op.status = R
        op.started_at_ms = now_ms
        return StartRecord(id=op_id, started_at_ms=now_ms)

    def peer_ready(self, op_id: OperationId, handle: OperationPeerHandle) -> None:
        if not isinstance(handle, OperationPeerHandle):
            raise InvalidArgument(
                f"peer_ready needs an OperationPeerHandle, got {type(handle).__name__}"
            )
        op = self._get(op_id)
        if op.spec.kind is not OperationKind.MOB_MEMBER_CHILD:
            raise PeerNotExpected(op_id)
        if op.peer_ready:
            raise AlreadyPeerReady(op_id)
        self._require(op_id, "peer_ready")
        op.peer_ready = True
        op.peer_handle = handle

    def progress(self, op_id: OperationId, update: OperationProgressUpdate, now_ms: int) -> None:
        if not isinstance(update, OperationProgressUpdate):
            raise InvalidArgument(
                f"report_progress needs an OperationProgressUpdate, got {type(update).__name__}"
            )
        op = self._require(op_id, "report_progress")
        op.progress_count += 1
        op.last_progress = update
        self.progress_logs.record(op_id, now_ms, op.progress_count, update)

    def progress_log(self, op_id: OperationId) -> list[ProgressEntry]:
        """The kept progress updates of ``op_id``, oldest first (NotFound if unknown)."""
        self._get(op_id)
        return self.progress_logs.entries(op_id)

    def request_retire(self, op_id: OperationId) -> None:
        op = self._require(op_id, "request_retire")
        op.status = RT

    # --- terminal transitions -------------------------------------------------------------

    def begin_terminal(
        self, op_id: OperationId, action: str, outcome: Outcome, now_ms: int
    ) -> TerminalRecord:
        """Check legality and mark the operation pending; nothing becomes visible yet."""
        if isinstance(outcome, Completed) and outcome.result.id != op_id:
            raise InvalidArgument(f"the result's id {outcome.result.id} is not the operation's")
        op = self._require(op_id, action)
        op.pending = outcome
        op.pending_at_ms = now_ms
        self._pending += 1
        return TerminalRecord(
            spec=op.spec,
            outcome=outcome,
            created_at_ms=op.created_at_ms,
            started_at_ms=op.started_at_ms,
            completed_at_ms=now_ms,
            peer_ready=op.peer_ready,
            progress_count=op.progress_count,
            peer_handle=op.peer_handle,
            last_progress=op.last_progress,
        )

    def terminate_targets(self) -> list[OperationId]:
        """What ``terminate_owner`` ends, in registration order; held while any is pending."""
        if self._pending:  # a rollback would leave a target running after terminate_owner
            raise PendingTerminal(i for i, op in self._ops.items() if op.pending is not None)
        return [i for i, op in self._ops.items() if not op.status.is_terminal]

    def rollback_terminal(self, op_id: OperationId) -> None:
        op = self._ops.get(op_id)
        if op is not None and op.pending is not None:
            op.pending = None
            self._pending -= 1

    def commit_terminal(self, op_id: OperationId, seq: int | None = None) -> CommitEffects:
        """The record is durable: assign the next seq and make the outcome visible.

        ``seq``, when given, is the position the journal recorded; it must be
        the next one, or the store and the registry disagree (``Internal``).
        """
        op = self._ops.get(op_id)
        if op is None or op.pending is None:
            raise Internal(f"commit for {op_id} which has no pending terminal transition")
        if seq is not None and seq != self._seq + 1:
            raise Internal(f"journal assigned seq {seq} but the registry expected {self._seq + 1}")
        outcome = op.pending
        op.pending = None
        self._pending -= 1
        return self._finish(op, outcome, op.pending_at_ms)

    def _finish(self, op: _Op, outcome: Outcome, completed_at_ms: int) -> CommitEffects:
        op.status = outcome.status
        op.outcome = outcome
        op.completed_at_ms = completed_at_ms
        self._active -= 1
        self._seq += 1
        op.seq = self._seq
        spec = op.spec
        entry = CompletionEntry(
            seq=self._seq,
            operation_id=spec.id,
            kind=spec.kind,
            display_name=spec.display_name,
            terminal_outcome=outcome,
            completed_at_ms=completed_at_ms,
        )
        feed = self._feed
        if len(feed) == feed.maxlen:
            self._dropped_through = feed[0].seq
        feed.append(entry)
        self._completed.append(spec.id)
        self.progress_logs.ended(spec.id)

        # The barrier is checked before eviction so that a member pushed out by
        # this very commit still reports its outcome (all were terminal at once).
        satisfied = self._satisfy_barrier()
        evicted: list[OperationId] = []
        failed: tuple[str, OpsLifecycleError] | None = None
        while len(self._completed) > self.max_completed:
            gone = self._completed.popleft()
            del self._ops[gone]
            self.progress_logs.forget(gone)
            evicted.append(gone)
        if evicted:
            failed = self._fail_barrier_if_member(evicted)
        return CommitEffects(
            entry=entry, evicted=tuple(evicted), wait_all=satisfied, wait_failed=failed
        )

    def collect_completed(
        self,
    ) -> tuple[list[tuple[OperationId, Outcome]], tuple[str, OpsLifecycleError] | None]:
        """Drain every visible terminal operation in FIFO order."""
        drained: list[tuple[OperationId, Outcome]] = []
        ids = list(self._completed)
        self._completed.clear()
        for op_id in ids:
            op = self._ops.pop(op_id)
            self.progress_logs.forget(op_id)
            assert op.outcome is not None
            drained.append((op_id, op.outcome))
        return drained, self._fail_barrier_if_member(ids)

    # --- watchers and barriers ------------------------------------------------------------

    def watch(self, op_id: OperationId) -> Outcome | None:
        """The outcome if already (visibly) terminal; None when a watcher must wait."""
        return self._get(op_id).outcome

    def wait_any(self, ids: Sequence[OperationId]) -> tuple[OperationId, Outcome] | None:
        if not ids:
            raise InvalidArgument("wait_any needs at least one operation id")
        found: tuple[OperationId, Outcome] | None = None
        for op_id in ids:
            op = self._get(op_id)
            if found is None and op.outcome is not None:
                found = (op_id, op.outcome)
        return found

    def begin_wait_all(
        self, wait_request_id: str, ids: Sequence[OperationId], run_id: str = ""
    ) -> WaitAllResult | None:
        """docs/semantics.md order: duplicate, already active, unknown. None: the barrier is now active."""
        seen: set[OperationId] = set()
        for op_id in ids:
            if op_id in seen:
                raise DuplicateWaitOperation(op_id)
            seen.add(op_id)
        if self._barrier is not None:
            raise WaitAlreadyActive()
        for op_id in ids:
            self._get(op_id)
        members = tuple(ids)
        if all(self._ops[i].outcome is not None for i in members):
            return self._wait_result(wait_request_id, members)
        self._barrier = _Barrier(wait_request_id, members, run_id)
        return None

    def cancel_wait_all(self, wait_request_id: str | None = None) -> str | None:
        """Clear the barrier (only if it is ``wait_request_id``, when given); return its id."""
        b = self._barrier
        if b is None or (wait_request_id is not None and b.wait_request_id != wait_request_id):
            return None
        self._barrier = None
        return b.wait_request_id

    def _wait_result(self, wait_request_id: str, ids: tuple[OperationId, ...]) -> WaitAllResult:
        outcomes = []
        for i in ids:
            outcome = self._ops[i].outcome
            assert outcome is not None
            outcomes.append((i, outcome))
        return WaitAllResult(
            outcomes=tuple(outcomes),
            satisfied=WaitAllSatisfied(wait_request_id=wait_request_id, operation_ids=ids),
        )

    def _satisfy_barrier(self) -> WaitAllResult | None:
        b = self._barrier
        if b is None:
            return None
        ops = self._ops
        if any(ops[i].outcome is None for i in b.ids):
            return None
        self._barrier = None
        return self._wait_result(b.wait_request_id, b.ids)

    def _fail_barrier_if_member(
        self, removed: Iterable[OperationId]
    ) -> tuple[str, OpsLifecycleError] | None:
        b = self._barrier
        if b is None:
            return None
        gone = set(removed)
        for member in b.ids:
            if member in gone:
                self._barrier = None
                return (b.wait_request_id, NotFound(member))
        return None

    # --- persistence: snapshots and journal replay ---------------------------------------

    def to_persisted(
        self,
        epoch_id: str,
        watcher_counts: Mapping[OperationId, int] | None = None,
        cursors: Mapping[str, int] | None = None,
    ) -> PersistedOpsSnapshot:
        """The visible state (pending commits excluded) in the seed's snapshot shape;
        ``actors.lifecycle_snapshot.from_persisted`` is the way back."""
        from actors.lifecycle_snapshot import to_persisted

        return to_persisted(self, epoch_id, watcher_counts, cursors)

    def _evict_over_bound(self) -> None:
        while len(self._completed) > self.max_completed:
            gone = self._completed.popleft()
            del self._ops[gone]
            self.progress_logs.forget(gone)

    def apply(self, record: JournalRecord, seq: int | None = None) -> None:
        """Replay one committed journal record (recovery and compaction)."""
        if isinstance(record, RegisterRecord):
            if record.spec.id not in self._ops:
                self._ops[record.spec.id] = _Op(record.spec, record.created_at_ms)
                self._active += 1
        elif isinstance(record, StartRecord):
            op = self._ops.get(record.id)
            if op is not None and op.status is P:
                op.status = R
                op.started_at_ms = record.started_at_ms
        elif isinstance(record, TerminalRecord):
            if seq is not None and seq != self._seq + 1:
                raise Internal(f"journal has seq {seq} where {self._seq + 1} was expected")
            op_id = record.spec.id
            op = self._ops.get(op_id)
            if op is None:
                op = self._ops[op_id] = _Op(record.spec, record.created_at_ms)
                self._active += 1
            elif op.status.is_terminal:
                raise Internal(f"journal ends {op_id} twice")
            op.started_at_ms = record.started_at_ms
            op.peer_ready = record.peer_ready
            op.progress_count = record.progress_count
            op.peer_handle = record.peer_handle
            op.last_progress = record.last_progress
            self._finish(op, record.outcome, record.completed_at_ms)
        elif isinstance(record, CollectRecord):
            gone = set(record.ids)
            for op_id in record.ids:
                self._ops.pop(op_id, None)
                self.progress_logs.forget(op_id)
            self._completed = deque(i for i in self._completed if i not in gone)
