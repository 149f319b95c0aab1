"""The public surface, pinned: what users import from ``actors`` and ``transport``.

Adding a name is a decision (update this list with it); removing one breaks users.
Test hooks and back ends live in ``actors.testing``, not here.
"""

from __future__ import annotations

import pytest

import actors
import actors.testing
import transport

ACTORS = {
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
}

TRANSPORT = {
    "AsyncRegistryClient",
    "Busy",
    "CallCancelled",
    "CallHandle",
    "CallTimeout",
    "FeedCursorAhead",
    "FeedGap",
    "FeedSubscriber",
    "OperationError",
    "Pipeline",
    "PoolTimeout",
    "OpsTimeout",
    "OpsregError",
    "RegistryClient",
    "RegistryServer",
    "ServerConfig",
    "ServerRestarted",
    "TooLarge",
    "Unavailable",
    "WorkerPool",
    "WorkerStartError",
}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (actors, ACTORS),
        (transport, TRANSPORT),
        (actors.testing, {"FaultPlan", "Lifecycle", "MemoryStore", "SqliteStore"}),
    ],
    ids=["actors", "transport", "actors.testing"],
)
def test_exported_names_are_pinned(module: object, expected: set[str]) -> None:
    exported = set(module.__all__)  # type: ignore[attr-defined]
    assert exported == expected, (
        f"added: {sorted(exported - expected)}, removed: {sorted(expected - exported)}"
    )
    for name in exported:
        assert hasattr(module, name), f"{name} is in __all__ but not defined"


def test_the_binding_names_of_the_contract_import() -> None:
    """The names other programs are written against (docs/semantics.md)."""
    from actors import (  # noqa: F401
        Aborted,
        AlreadyPeerReady,
        AlreadyRegistered,
        Cancelled,
        Completed,
        CompletionEntry,
        DuplicateWaitOperation,
        Failed,
        Internal,
        InvalidTransition,
        MaxConcurrentExceeded,
        NotFound,
        OperationId,
        OperationKind,
        OperationLifecycleSnapshot,
        OperationPeerHandle,
        OperationProgressUpdate,
        OperationResult,
        OperationSpec,
        OperationStatus,
        OpsLifecycleError,
        OpsRegistry,
        PeerNotExpected,
        Retired,
        Terminated,
        WaitAllResult,
        WaitAlreadyActive,
        WaitCancelled,
    )
    from transport import (  # noqa: F401
        FeedGap,
        FeedSubscriber,
        OperationError,
        RegistryClient,
        Unavailable,
        WorkerPool,
    )

    assert transport.Unavailable is actors.Unavailable
