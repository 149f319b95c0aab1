"""``Lifecycle`` to and from the seed's persisted snapshot shape.

A friend of :mod:`actors.lifecycle`: it reads and rebuilds the rules' private
records, and decides nothing itself. Snapshots carry visible state only (pending
commits excluded), and restoring one restores no wait-all barrier.
"""

from __future__ import annotations

from collections.abc import Mapping

from actors.lifecycle import Lifecycle, _Op
from actors.model import (
    OperationCanonicalState,
    OperationId,
    OperationSpec,
    PersistedOpsSnapshot,
    RegistryCanonicalState,
)

__all__ = ["from_persisted", "restore_progress_logs", "to_persisted"]


def to_persisted(
    self: Lifecycle,
    epoch_id: str,
    watcher_counts: Mapping[OperationId, int] | None = None,
    cursors: Mapping[str, int] | None = None,
) -> PersistedOpsSnapshot:
    """The visible state (pending commits excluded) in the seed's snapshot shape."""
    counts = watcher_counts or {}
    operations: dict[OperationId, OperationCanonicalState] = {}
    specs: dict[OperationId, OperationSpec] = {}
    for op_id, op in self._ops.items():
        specs[op_id] = op.spec
        operations[op_id] = OperationCanonicalState(
            status=op.status,
            kind=op.spec.kind,
            peer_ready=op.peer_ready,
            progress_count=op.progress_count,
            watcher_count=counts.get(op_id, 0),
            terminal_outcome=op.outcome,
            terminal_buffered=op.outcome is not None,
            created_at_ms=op.created_at_ms,
            started_at_ms=op.started_at_ms,
            completed_at_ms=op.completed_at_ms,
            peer_handle=op.peer_handle,
            last_progress=op.last_progress,
            completion_seq=op.seq,
        )
    b = self._barrier
    state = RegistryCanonicalState(
        operations=operations,
        completed_order=tuple(self._completed),
        max_completed=self.max_completed,
        max_concurrent=self.max_concurrent,
        active_count=self._active,
        wait_request_id=None if b is None else b.wait_request_id,
        wait_operation_ids=() if b is None else b.ids,
        next_completion_seq=self._seq,
    )
    return PersistedOpsSnapshot(
        epoch_id=epoch_id,
        authority_state=state,
        operation_specs=specs,
        completion_entries=tuple(self._feed),
        cursors=dict(cursors or {}),
        dropped_through=self._dropped_through,
    )


def from_persisted(
    snapshot: PersistedOpsSnapshot,
    *,
    keep_non_terminal: bool = False,
    max_completed: int | None = None,
    max_concurrent: int | None = None,
    override_limits: bool = False,
) -> Lifecycle:
    """Rebuild from a snapshot.

    Seed semantics (``keep_non_terminal=False``): only terminal operations
    survive, with the completed FIFO among them, the seq counter and the
    feed. Store recovery keeps non-terminal operations too, so that the
    registry can end them explicitly. No barrier is restored: its waiter
    did not survive.
    """
    state = snapshot.authority_state
    lc = Lifecycle(
        max_completed=max_completed if override_limits and max_completed else state.max_completed,
        max_concurrent=max_concurrent if override_limits else state.max_concurrent,
    )
    for op_id, canon in state.operations.items():
        spec = snapshot.operation_specs.get(op_id)
        if spec is None or (not keep_non_terminal and not canon.status.is_terminal):
            continue
        op = _Op(spec, canon.created_at_ms)
        op.status = canon.status
        op.peer_ready = canon.peer_ready
        op.progress_count = canon.progress_count
        op.outcome = canon.terminal_outcome if canon.status.is_terminal else None
        op.started_at_ms = canon.started_at_ms
        op.completed_at_ms = canon.completed_at_ms
        op.peer_handle = canon.peer_handle
        op.last_progress = canon.last_progress
        op.seq = canon.completion_seq
        lc._ops[op_id] = op
        if not canon.status.is_terminal:
            lc._active += 1
    lc._completed.extend(i for i in state.completed_order if i in lc._ops)
    lc._seq = state.next_completion_seq
    lc._feed.extend(snapshot.completion_entries)
    lc._dropped_through = snapshot.dropped_through
    if snapshot.completion_entries and lc._feed[0].seq - 1 > lc._dropped_through:
        lc._dropped_through = lc._feed[0].seq - 1
    lc._evict_over_bound()
    return lc


def restore_progress_logs(lc: Lifecycle) -> Lifecycle:
    """After a restart: each operation's progress log is its ``last_progress``, if it had one.

    Logs are not persisted, so the time that update arrived is not known; the entry
    carries the latest time known to be after it (``completed_at_ms``, else
    ``started_at_ms``, else ``created_at_ms``) and its number, ``progress_count``.
    Not applied to the persistence actor's mirror, which never reads logs.
    """
    logs = lc.progress_logs
    for op_id, op in lc._ops.items():
        update = op.last_progress
        if update is None or op.progress_count < 1 or logs.entries(op_id):
            continue
        at_ms = op.completed_at_ms or op.started_at_ms or op.created_at_ms
        logs.record(op_id, at_ms, op.progress_count, update)
        if op.status.is_terminal:
            logs.ended(op_id)
    return lc
