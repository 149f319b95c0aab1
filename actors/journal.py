"""Journal record types: what persistence stores, opaquely, and recovery replays.

A data format only: the store encodes and checksums these (``actors.store_format``),
and :meth:`actors.lifecycle.Lifecycle.apply` gives them meaning. Nothing here knows
a lifecycle rule.
"""

from __future__ import annotations

import msgspec

from actors.model import (
    OperationId,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationSpec,
    Outcome,
)

__all__ = ["CollectRecord", "JournalRecord", "RegisterRecord", "StartRecord", "TerminalRecord"]


class RegisterRecord(msgspec.Struct, frozen=True, tag="register"):
    spec: OperationSpec
    created_at_ms: int


class StartRecord(msgspec.Struct, frozen=True, tag="start"):
    id: OperationId
    started_at_ms: int


class TerminalRecord(msgspec.Struct, frozen=True, tag="terminal"):
    """The operation's whole final state; replay needs nothing else."""

    spec: OperationSpec
    outcome: Outcome
    created_at_ms: int
    started_at_ms: int | None
    completed_at_ms: int
    peer_ready: bool
    progress_count: int
    peer_handle: OperationPeerHandle | None
    last_progress: OperationProgressUpdate | None


class CollectRecord(msgspec.Struct, frozen=True, tag="collect"):
    ids: tuple[OperationId, ...]


JournalRecord = RegisterRecord | StartRecord | TerminalRecord | CollectRecord
