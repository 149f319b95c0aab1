"""opsreg's actors: the operation-lifecycle registry, in process.

The public API on one screen::

    from actors import OpsRegistry, OperationId, OperationKind, OperationSpec, OperationResult
    with OpsRegistry.start(max_completed=256) as reg:
        op = OperationId.new()
        reg.register_operation(OperationSpec(id=op, kind=OperationKind.BACKGROUND_TOOL_OP,
                                             owner_session_id="s1", display_name="x",
                                             source_label="demo"))
        reg.provisioning_succeeded(op)
        done = reg.register_watcher(op)           # an OpsFuture (pykka future, awaitable)
        reg.complete_operation(op, OperationResult(id=op, content="ok"))
        done.get(timeout=5)                       # Completed(result=...)

Test hooks and back ends (``Lifecycle``, ``FaultPlan``, ``MemoryStore``, ``SqliteStore``)
are not part of this surface: import them from :mod:`actors.testing`.
"""

import logging

from actors.errors import (
    AlreadyPeerReady,
    AlreadyRegistered,
    CallTimeout,
    DuplicateWaitOperation,
    Internal,
    InvalidArgument,
    InvalidTransition,
    LimitExceeded,
    MaxConcurrentExceeded,
    NotFound,
    OpsLifecycleError,
    OpsregError,
    OpsTimeout,
    OutcomeUnknown,
    PeerNotExpected,
    PermissionDenied,
    Unavailable,
    WaitAlreadyActive,
    WaitCancelled,
)
from actors.futures import OpsFuture
from actors.lifecycle import DEFAULT_MAX_COMPLETED
from actors.model import (
    Aborted,
    Cancelled,
    Completed,
    CompletionBatch,
    CompletionEntry,
    DiagnosticSnapshot,
    Failed,
    OperationId,
    OperationKind,
    OperationLifecycleSnapshot,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    OperationStatus,
    OperationTerminalOutcome,
    PersistedOpsSnapshot,
    Retired,
    Terminated,
    WaitAllResult,
    WaitAllSatisfied,
)
from actors.ops_registry import OpsRegistry
from actors.registry import RESTART_REASON
from actors.sqlite_store import StoreError

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_MAX_COMPLETED",
    "RESTART_REASON",
    "Aborted",
    "AlreadyPeerReady",
    "AlreadyRegistered",
    "CallTimeout",
    "Cancelled",
    "Completed",
    "CompletionBatch",
    "CompletionEntry",
    "DiagnosticSnapshot",
    "DuplicateWaitOperation",
    "Failed",
    "Internal",
    "InvalidArgument",
    "InvalidTransition",
    "LimitExceeded",
    "MaxConcurrentExceeded",
    "NotFound",
    "OperationId",
    "OperationKind",
    "OperationLifecycleSnapshot",
    "OperationPeerHandle",
    "OperationProgressUpdate",
    "OperationResult",
    "OperationSpec",
    "OperationStatus",
    "OperationTerminalOutcome",
    "OpsFuture",
    "OpsLifecycleError",
    "OpsRegistry",
    "OpsTimeout",
    "OpsregError",
    "OutcomeUnknown",
    "PeerNotExpected",
    "PermissionDenied",
    "PersistedOpsSnapshot",
    "Retired",
    "StoreError",
    "Terminated",
    "Unavailable",
    "WaitAllResult",
    "WaitAllSatisfied",
    "WaitAlreadyActive",
    "WaitCancelled",
]
