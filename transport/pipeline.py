"""Typed pipelining: ``client.pipeline()`` sends calls without waiting, one method per table entry.

``RegistryClient.submit("complete_operation", op_id, result)`` takes a method
name and ``Any``; ``Pipeline`` has the registry's methods with their names,
arguments and types (those of ``actors.api.RegistryCalls``, checked against the
method table by ``tests/transport/test_pipeline.py``), each returning at once an
``OpsFuture`` of the call's answer::

    with client.pipeline() as p:
        for spec in specs:
            p.register_operation(spec)
            p.provisioning_succeeded(spec.id)
        done = p.complete_operation(op_id, result)      # OpsFuture[None]
        watch = p.register_watcher(op_id)               # OpsFuture[OpsFuture[Outcome]]
    # here every call above was answered; the first error (if any) was raised

Calls are sent in order by the client's I/O thread, batched into few frames.
Leaving the ``with`` block waits (within the client's ``timeout``) for every
answer and raises the first error; the futures can also be read one by one.
For a future method the answer is the accepted wait: an ``OpsFuture`` of the
final value. ``submit`` keeps working (same wire requests).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pykka

from actors import calls
from actors.api import RegistryCalls, id_list
from actors.calls import PageKey
from actors.futures import OpsFuture
from actors.model import (
    MAX_ID_BYTES,
    CompletionBatch,
    DiagnosticSnapshot,
    OperationId,
    OperationKind,
    OperationLifecycleSnapshot,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    OperationStatus,
    Outcome,
    PersistedOpsSnapshot,
    WaitAllResult,
    check_text,
    failure_text,
)

if TYPE_CHECKING:
    from transport.client import RegistryClient

__all__ = ["Pipeline", "Pipelining"]


class Pipelining:
    """Mixin of ``RegistryClient``: its ``pipeline()``."""

    def pipeline(self) -> Pipeline:
        """A typed, non-blocking view of this client (see transport/pipeline.py)."""
        return Pipeline(self)  # type: ignore[arg-type]


class Pipeline:
    """The registry's methods, each sending its call at once and returning its future."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        #: every future this pipeline returned, in call order
        self.futures: list[OpsFuture[Any]] = []
        self._methods: list[str] = []

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.wait()

    def wait(self) -> None:
        """Wait for every answer so far (within the client's ``timeout`` in all), then raise
        the first error in call order (``Unavailable`` for a call left unanswered)."""
        deadline = time.monotonic() + self.client.timeout
        first: BaseException | None = None
        for f, method in zip(self.futures, self._methods, strict=True):
            try:
                f.get(timeout=max(0.0, deadline - time.monotonic()))
            except pykka.Timeout:
                first = first or self.client.no_answer(method)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def _send(self, method: str, *args: Any) -> OpsFuture[Any]:
        f = self.client.submit(method, *args)
        self.futures.append(f)
        self._methods.append(method)
        return f

    # --- the methods of actors/calls.py -------------------------------------------------------

    def register_operation(self, spec: OperationSpec) -> OpsFuture[None]:
        return self._send("register_operation", spec)

    def provisioning_succeeded(self, op_id: OperationId) -> OpsFuture[None]:
        return self._send("provisioning_succeeded", op_id)

    def provisioning_failed(
        self, op_id: OperationId, error: str | BaseException
    ) -> OpsFuture[None]:
        return self._send("provisioning_failed", op_id, failure_text(error))

    def peer_ready(self, op_id: OperationId, peer: OperationPeerHandle) -> OpsFuture[None]:
        return self._send("peer_ready", op_id, peer)

    def register_watcher(self, op_id: OperationId) -> OpsFuture[OpsFuture[Outcome]]:
        return self._send("register_watcher", op_id)

    def report_progress(
        self, op_id: OperationId, update: OperationProgressUpdate
    ) -> OpsFuture[None]:
        return self._send("report_progress", op_id, update)

    def complete_operation(self, op_id: OperationId, result: OperationResult) -> OpsFuture[None]:
        return self._send("complete_operation", op_id, result)

    def fail_operation(self, op_id: OperationId, error: str | BaseException) -> OpsFuture[None]:
        return self._send("fail_operation", op_id, failure_text(error))

    def abort_provisioning(self, op_id: OperationId, reason: str | None = None) -> OpsFuture[None]:
        return self._send("abort_provisioning", op_id, reason)

    def cancel_operation(self, op_id: OperationId, reason: str | None = None) -> OpsFuture[None]:
        return self._send("cancel_operation", op_id, reason)

    def request_retire(self, op_id: OperationId) -> OpsFuture[None]:
        return self._send("request_retire", op_id)

    def mark_retired(self, op_id: OperationId) -> OpsFuture[None]:
        return self._send("mark_retired", op_id)

    def snapshot(self, op_id: OperationId) -> OpsFuture[OperationLifecycleSnapshot | None]:
        return self._send("snapshot", op_id)

    def list_operations(
        self,
        owner_session_id: str | None = None,
        status: OperationStatus | None = None,
        kind: OperationKind | None = None,
        limit: int | None = None,
        after: PageKey | None = None,
        name_prefix: str | None = None,
        order: str | None = None,
    ) -> OpsFuture[list[OperationLifecycleSnapshot]]:
        """One page (the server's default size without ``limit``)."""
        return self._send(
            "list_operations", owner_session_id, status, kind, limit, after, name_prefix, order
        )

    def terminate_owner(self, reason: str) -> OpsFuture[None]:
        return self._send("terminate_owner", reason)

    def collect_completed(self) -> OpsFuture[list[tuple[OperationId, Outcome]]]:
        return self._send("collect_completed")

    def wait_all(
        self, run_id: str, ids: Sequence[OperationId]
    ) -> OpsFuture[OpsFuture[WaitAllResult]]:
        check_text(run_id, "run_id", MAX_ID_BYTES)
        return self._send("wait_all", run_id, id_list(ids, "wait_all"))

    def cancel_wait_all(self) -> OpsFuture[bool]:
        return self._send("cancel_wait_all")

    def wait_any(
        self, ids: Sequence[OperationId]
    ) -> OpsFuture[OpsFuture[tuple[OperationId, Outcome]]]:
        return self._send("wait_any", id_list(ids, "wait_any"))

    def list_since(self, after_seq: int, limit: int | None = None) -> OpsFuture[CompletionBatch]:
        """One page (the server's default size without ``limit``)."""
        return self._send("list_since", after_seq, limit)

    def watermark(self) -> OpsFuture[int]:
        return self._send("watermark")

    def wait_for_advance(self, after_seq: int) -> OpsFuture[OpsFuture[int]]:
        return self._send("wait_for_advance", after_seq)

    def capture_persistence_snapshot(self) -> OpsFuture[PersistedOpsSnapshot]:
        return self._send("capture_persistence_snapshot")

    def diagnostic_snapshot(self) -> OpsFuture[DiagnosticSnapshot]:
        return self._send("diagnostic_snapshot")


def _document() -> None:
    """Each method's docstring says what it returns, then the shared surface's text."""
    for name in calls.METHODS:
        method = getattr(Pipeline, name)
        if not method.__doc__:
            shared = getattr(RegistryCalls, name).__doc__ or ""
            method.__doc__ = (
                f"Send ``{name}`` now; an ``OpsFuture`` of its answer (see "
                f"``RegistryCalls.{name}``).\n\n{shared}"
            )


_document()
