"""The registry's methods of docs/semantics.md, once, for every way of reaching a registry.

``OpsRegistry`` (in process) and ``transport.RegistryClient`` (over ZeroMQ) both
inherit them: each method sends one call by name through ``_call`` and returns
its answer, so the two have the same names, arguments and errors by
construction. The methods are typed here for editors and mypy; their names,
argument names and optional arguments are those of the method table
(``actors/calls.py``), which ``tests/test_calls_table.py`` checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.calls import PageKey
from actors.errors import InvalidArgument
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
from actors.paging import all_entries, all_operations, drive
from actors.progress_log import ProgressEntry

__all__ = ["PageKey", "RegistryCalls", "id_list", "page_key"]


def page_key(snapshot: OperationLifecycleSnapshot) -> PageKey:
    """The ``after`` that continues a ``list_operations`` listing past ``snapshot``."""
    return (snapshot.display_name, snapshot.id)


def id_list(ids: Sequence[OperationId], method: str) -> list[OperationId]:
    # A string is a Sequence too: list("abc") would wait on its characters.
    if isinstance(ids, str | bytes | bytearray | memoryview):
        raise InvalidArgument(
            f"{method} needs a sequence of operation ids, not a {type(ids).__name__}"
        )
    return list(ids)


class RegistryCalls:
    """Mixin: the docs/semantics.md methods in terms of ``_call(method, *args)``."""

    def _call(self, method: str, *args: Any) -> Any:
        raise NotImplementedError

    def register_operation(self, spec: OperationSpec) -> None:
        """Register a new operation (status ``provisioning``); ``AlreadyRegistered`` if known.

        >>> spec = OperationSpec(owner_session_id="s1", display_name="resize")  # doctest: +SKIP
        >>> reg.register_operation(spec); reg.provisioning_succeeded(spec.id)  # doctest: +SKIP
        """
        self._call("register_operation", spec)

    def provisioning_succeeded(self, op_id: OperationId) -> None:
        """Mark a provisioning operation ``running``."""
        self._call("provisioning_succeeded", op_id)

    def provisioning_failed(self, op_id: OperationId, error: str | BaseException) -> None:
        """End a non-terminal operation ``Failed(error)`` (its provisioning failed).

        ``error`` is text, or an exception stored as :func:`~actors.model.failure_text`.
        """
        self._call("provisioning_failed", op_id, failure_text(error))

    def peer_ready(self, op_id: OperationId, peer: OperationPeerHandle) -> None:
        """Record where a ``MOB_MEMBER_CHILD`` operation's peer is reachable (once)."""
        self._call("peer_ready", op_id, peer)

    def register_watcher(self, op_id: OperationId) -> OpsFuture[Outcome]:
        """A future of the operation's terminal outcome (resolved at once if it has one).

        >>> reg.register_watcher(spec.id).get(timeout=5)  # doctest: +SKIP
        Completed(result=OperationResult(...))
        """
        return self._call("register_watcher", op_id)  # type: ignore[no-any-return]

    def report_progress(self, op_id: OperationId, update: OperationProgressUpdate) -> None:
        """Record progress of a running (or retiring) operation: its last update, a count.

        >>> reg.report_progress(op, OperationProgressUpdate("half way", 50))  # doctest: +SKIP
        """
        self._call("report_progress", op_id, update)

    def complete_operation(self, op_id: OperationId, result: OperationResult) -> None:
        """End a running (or retiring) operation ``Completed(result)``, once durable.

        A ``result`` built without an id is this operation's; another id is refused.

        >>> reg.complete_operation(op, OperationResult(content="ok"))  # doctest: +SKIP
        """
        if isinstance(result, OperationResult):  # anything else: refused as bad input
            result = result.for_operation(op_id)
        self._call("complete_operation", op_id, result)

    def fail_operation(self, op_id: OperationId, error: str | BaseException) -> None:
        """End a non-terminal operation ``Failed(error)``.

        ``error`` is text, or an exception stored as :func:`~actors.model.failure_text`
        (its traceback and ``Type: message``).

        >>> try:
        ...     work()
        ... except Exception as exc:
        ...     reg.fail_operation(op, exc)  # doctest: +SKIP
        """
        self._call("fail_operation", op_id, failure_text(error))

    def abort_provisioning(self, op_id: OperationId, reason: str | None = None) -> None:
        """End a provisioning operation ``Aborted(reason)``."""
        self._call("abort_provisioning", op_id, reason)

    def cancel_operation(self, op_id: OperationId, reason: str | None = None) -> None:
        """End a non-terminal operation ``Cancelled(reason)``."""
        self._call("cancel_operation", op_id, reason)

    def request_retire(self, op_id: OperationId) -> None:
        """Ask a running operation to retire: its status becomes ``retiring``."""
        self._call("request_retire", op_id)

    def mark_retired(self, op_id: OperationId) -> None:
        """End a running or retiring operation ``Retired()``."""
        self._call("mark_retired", op_id)

    def snapshot(self, op_id: OperationId) -> OperationLifecycleSnapshot | None:
        """The operation's current state, or ``None`` if unknown (or evicted).

        >>> reg.snapshot(op).status  # doctest: +SKIP
        <OperationStatus.RUNNING: 'running'>
        """
        return self._call("snapshot", op_id)  # type: ignore[no-any-return]

    def progress_log(self, op_id: OperationId) -> list[ProgressEntry]:
        """The operation's last progress updates (up to 32), oldest first, each with the time
        the registry received it; ``NotFound`` for an unknown id.

        ``entries[0].number - 1`` earlier updates were not kept (docs/semantics.md,
        "Progress log"): the log is memory only and bounded per registry.

        >>> [e.message for e in reg.progress_log(op)]  # doctest: +SKIP
        ['downloading', 'half way']
        """
        return self._call("progress_log", op_id)  # type: ignore[no-any-return]

    def list_operations(
        self,
        owner_session_id: str | None = None,
        status: OperationStatus | None = None,
        kind: OperationKind | None = None,
        limit: int | None = None,
        after: PageKey | None = None,
        name_prefix: str | None = None,
        order: str | None = None,
    ) -> list[OperationLifecycleSnapshot]:
        """Operations filtered by owner, status, kind and ``name_prefix``, in ``order``:
        ``"name"`` (``(display_name, id)``, the default), ``"newest"`` or ``"oldest"``
        (by registration).

        With ``limit``: one page of at most ``limit`` (<= ``MAX_PAGE``) operations
        after the key ``after`` (``page_key`` of the previous page's last item).
        Without: every match, read page by page (each reply stays bounded).
        """
        query = (owner_session_id, status, kind)
        tail = (name_prefix, order)
        if limit is not None:
            return self._call(  # type: ignore[no-any-return]
                "list_operations", *query, limit, after, *tail
            )
        return drive(all_operations(query, after, tail), self._call)  # type: ignore[no-any-return]

    def terminate_owner(self, reason: str) -> None:
        """End **every** non-terminal operation in the registry ``Terminated(reason)``.

        Registry-wide, whatever the owner (an admin method over a server).
        """
        self._call("terminate_owner", reason)

    def collect_completed(self) -> list[tuple[OperationId, Outcome]]:
        """Drain every terminal operation, oldest first, as ``(id, outcome)`` pairs."""
        return self._call("collect_completed")  # type: ignore[no-any-return]

    def wait_all(self, run_id: str, ids: Sequence[OperationId]) -> OpsFuture[WaitAllResult]:
        """A future of every member's outcome once all of ``ids`` have ended (one barrier).

        ``run_id`` is kept with the barrier (``diagnostic_snapshot().wait_run_id``).
        One barrier per registry at a time (``WaitAlreadyActive``).

        >>> result = reg.wait_all("batch-1", [a, b]).get(timeout=30)  # doctest: +SKIP
        """
        check_text(run_id, "run_id", MAX_ID_BYTES)
        return self._call("wait_all", run_id, id_list(ids, "wait_all"))  # type: ignore[no-any-return]

    def cancel_wait_all(self) -> bool:
        """Clear the active barrier; its future fails with ``WaitCancelled``. False if none."""
        return self._call("cancel_wait_all")  # type: ignore[no-any-return]

    def wait_any(self, ids: Sequence[OperationId]) -> OpsFuture[tuple[OperationId, Outcome]]:
        """A future of the first ``(id, outcome)`` among ``ids`` to end (at once if one has).

        >>> done_id, outcome = reg.wait_any([a, b]).get(timeout=5)  # doctest: +SKIP
        """
        return self._call("wait_any", id_list(ids, "wait_any"))  # type: ignore[no-any-return]

    def list_since(self, after_seq: int, limit: int | None = None) -> CompletionBatch:
        """Feed entries after ``after_seq``, the watermark and what retention dropped.

        With ``limit``: at most ``limit`` (<= ``MAX_PAGE``) entries; there are more
        when the last one's seq is below ``watermark``. Without: every entry up to
        the watermark of the first reply, read page by page.
        """
        if limit is not None:
            return self._call("list_since", after_seq, limit)  # type: ignore[no-any-return]
        return drive(all_entries(after_seq), self._call)  # type: ignore[no-any-return]

    def watermark(self) -> int:
        """The seq of the last durable completion-feed entry (0 before the first)."""
        return self._call("watermark")  # type: ignore[no-any-return]

    def wait_for_advance(self, after_seq: int) -> OpsFuture[int]:
        """A future of the watermark once it exceeds ``after_seq`` (at once if it does)."""
        return self._call("wait_for_advance", after_seq)  # type: ignore[no-any-return]

    def capture_persistence_snapshot(self) -> PersistedOpsSnapshot:
        """The registry's whole state as the store would persist it."""
        return self._call("capture_persistence_snapshot")  # type: ignore[no-any-return]

    def diagnostic_snapshot(self) -> DiagnosticSnapshot:
        """Counters of the registry: operations by status, watchers, the barrier, the feed."""
        return self._call("diagnostic_snapshot")  # type: ignore[no-any-return]
