"""opsreg's actors: the operation-lifecycle registry, in process.

The public API on one screen::

    from actors import OpsRegistry, OperationSpec, OperationResult
    with OpsRegistry.start(max_completed=256) as reg:
        spec = OperationSpec(owner_session_id="s1", display_name="x")  # id generated
        reg.register_operation(spec)
        reg.provisioning_succeeded(spec.id)
        done = reg.register_watcher(spec.id)      # an OpsFuture (pykka future, awaitable)
        reg.complete_operation(spec.id, OperationResult(content="ok"))
        done.get(timeout=5)                       # Completed(result=...); TimeoutError if not

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
from actors.progress_log import ProgressEntry
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
    "ProgressEntry",
    "Retired",
    "StoreError",
    "Terminated",
    "Unavailable",
    "WaitAllResult",
    "WaitAllSatisfied",
    "WaitAlreadyActive",
    "WaitCancelled",
]
