"""The registry's methods of SPEC §4, once, for every way of reaching a registry.

``OpsRegistry`` (in process) and ``transport.RegistryClient`` (over ZeroMQ) both
inherit them: each method sends one call by name through ``_call`` and returns
its answer, so the two have the same names, arguments and errors by
construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.futures import OpsFuture
from actors.model import (
    CompletionBatch,
    DiagnosticSnapshot,
    OperationId,
    OperationLifecycleSnapshot,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    Outcome,
    WaitAllResult,
)

__all__ = ["RegistryCalls"]


class RegistryCalls:
    """Mixin: the SPEC §4 methods in terms of ``_call(method, *args)``."""

    def _call(self, method: str, *args: Any) -> Any:
        raise NotImplementedError

    def register_operation(self, spec: OperationSpec) -> None:
        self._call("register_operation", spec)

    def provisioning_succeeded(self, op_id: OperationId) -> None:
        self._call("provisioning_succeeded", op_id)

    def provisioning_failed(self, op_id: OperationId, error: str) -> None:
        self._call("provisioning_failed", op_id, error)

    def peer_ready(self, op_id: OperationId, peer: OperationPeerHandle) -> None:
        self._call("peer_ready", op_id, peer)

    def register_watcher(self, op_id: OperationId) -> OpsFuture[Outcome]:
        return self._call("register_watcher", op_id)  # type: ignore[no-any-return]

    def report_progress(self, op_id: OperationId, update: OperationProgressUpdate) -> None:
        self._call("report_progress", op_id, update)

    def complete_operation(self, op_id: OperationId, result: OperationResult) -> None:
        self._call("complete_operation", op_id, result)

    def fail_operation(self, op_id: OperationId, error: str) -> None:
        self._call("fail_operation", op_id, error)

    def abort_provisioning(self, op_id: OperationId, reason: str | None = None) -> None:
        self._call("abort_provisioning", op_id, reason)

    def cancel_operation(self, op_id: OperationId, reason: str | None = None) -> None:
        self._call("cancel_operation", op_id, reason)

    def request_retire(self, op_id: OperationId) -> None:
        self._call("request_retire", op_id)

    def mark_retired(self, op_id: OperationId) -> None:
        self._call("mark_retired", op_id)

    def snapshot(self, op_id: OperationId) -> OperationLifecycleSnapshot | None:
        return self._call("snapshot", op_id)  # type: ignore[no-any-return]

    def list_operations(self) -> list[OperationLifecycleSnapshot]:
        return self._call("list_operations")  # type: ignore[no-any-return]

    def terminate_owner(self, reason: str) -> None:
        self._call("terminate_owner", reason)

    def collect_completed(self) -> list[tuple[OperationId, Outcome]]:
        return self._call("collect_completed")  # type: ignore[no-any-return]

    def wait_all(self, run_id: str, ids: Sequence[OperationId]) -> OpsFuture[WaitAllResult]:
        return self._call("wait_all", run_id, list(ids))  # type: ignore[no-any-return]

    def cancel_wait_all(self) -> bool:
        """Clear the active barrier; its future fails with ``WaitCancelled``. False if none."""
        return self._call("cancel_wait_all")  # type: ignore[no-any-return]

    def wait_any(self, ids: Sequence[OperationId]) -> OpsFuture[tuple[OperationId, Outcome]]:
        return self._call("wait_any", list(ids))  # type: ignore[no-any-return]

    def list_since(self, after_seq: int) -> CompletionBatch:
        return self._call("list_since", after_seq)  # type: ignore[no-any-return]

    def watermark(self) -> int:
        return self._call("watermark")  # type: ignore[no-any-return]

    def wait_for_advance(self, after_seq: int) -> OpsFuture[int]:
        return self._call("wait_for_advance", after_seq)  # type: ignore[no-any-return]

    def diagnostic_snapshot(self) -> DiagnosticSnapshot:
        return self._call("diagnostic_snapshot")  # type: ignore[no-any-return]
