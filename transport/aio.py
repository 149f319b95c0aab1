"""``AsyncRegistryClient``: every registry method as a coroutine, for one asyncio loop.

It is a ``RegistryClient(direct=False)`` underneath: each call is queued for the
client's I/O thread (``submit``), which pipelines whatever the loop's tasks send,
and its ``OpsFuture`` is bridged to an ``asyncio.Future`` with
``loop.call_soon_threadsafe``, so the loop never blocks on a reply.

The future methods (``register_watcher``, ``wait_all``, ``wait_any``,
``wait_for_advance``) are two steps, as in the sync client: awaiting the call
returns once the server *accepted* the wait (or refused it: ``NotFound`` raises
there) and gives an ``asyncio.Future`` of the final value::

    watch = await cli.register_watcher(op_id)   # accepted
    outcome = await watch                       # the Outcome

Cancelling that future (or a task awaiting it, or a task still awaiting the
call itself) drops the wait on the server: it is cancelled there (no watcher is
left behind) with a ``drop_wait`` message, not re-established after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Sequence
from typing import Any, TypeVar

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
from actors.paging import all_entries, all_operations
from actors.progress_log import ProgressEntry
from transport import codec
from transport._pending import Pending as _Pending
from transport.client import RegistryClient
from transport.liveness import DROP_WAIT

__all__ = ["AsyncRegistryClient"]

T = TypeVar("T")


class _Drop(_Pending):
    """An outbox item: forget the wait whose final future is ``final`` and drop it server-side."""

    __slots__ = ()


class _Client(RegistryClient):
    """The sync client, able to drop one wait (in its I/O thread)."""

    #: re-established waits dropped before their ``ACCEPTED``: dropped when it comes
    _dropping: set[int]

    def __init__(self, *args: Any, **options: Any) -> None:
        self._dropping = set()  # before the I/O thread starts
        super().__init__(*args, **options)

    def _encode(self, p: _Pending, epoch: str | None = None) -> tuple[int, _Pending, bytes] | None:
        if isinstance(p, _Drop):
            self._drop(p.final)
            return None
        return super()._encode(p, epoch)

    def _drop(self, final: OpsFuture[Any] | None) -> None:
        for req_id, p in list(self._pending.items()):
            if p.final is not final:
                continue
            if p.accepted:
                del self._pending[req_id]  # its WaitCancelled reply is ignored, not re-established
                self._send_drop(req_id)
            else:  # sent again after a restart, not accepted yet
                self._dropping.add(req_id)

    def _send_drop(self, req_id: int) -> None:
        self._send_frame(codec.encode_request(0, self._epoch, self.registry, DROP_WAIT, (req_id,)))

    def _on_reply(self, reply: codec.Reply) -> None:
        dropping = self._dropping
        if dropping and reply.req_id in dropping and reply.status != codec.PONG:
            dropping.discard(reply.req_id)
            if reply.status == codec.ACCEPTED and reply.req_id in self._pending:
                del self._pending[reply.req_id]
                self._send_drop(reply.req_id)
                return
        super()._on_reply(reply)

    def drop_wait(self, final: OpsFuture[Any]) -> None:
        if not self._closed and not final.done():
            self._outbox.put(_Drop(DROP_WAIT, (), None, final))


def _copy(source: OpsFuture[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    try:
        value = source.get(timeout=0)
    except BaseException as exc:  # the call's error, raised where it is awaited
        target.set_exception(exc)
    else:
        target.set_result(value)


def _bridge(source: OpsFuture[T], loop: asyncio.AbstractEventLoop) -> asyncio.Future[T]:
    """An asyncio future of ``source``'s value, set in ``loop`` from whichever thread sets it."""
    target: asyncio.Future[T] = loop.create_future()

    def wake(f: OpsFuture[T]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_copy, f, target)

    source.add_done_callback(wake)
    # Whoever awaits it gets the error; if nobody does any more (its task was cancelled,
    # or the client closed under it), asyncio must not log it as "never retrieved".
    target.add_done_callback(_retrieved)
    return target


def _retrieved(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


class AsyncRegistryClient:
    """A connection to one registry on a ``RegistryServer``, for one asyncio event loop.

    The arguments are ``RegistryClient``'s (it always queues: ``direct`` is off).

    >>> async with AsyncRegistryClient(endpoint) as cli:   # doctest: +SKIP
    ...     await cli.register_operation(spec)
    ...     watch = await cli.register_watcher(spec.id)
    ...     outcome = await watch
    """

    def __init__(
        self, endpoint: str, registry: str = "default", timeout: float = 10.0, **options: Any
    ) -> None:
        self.sync = _Client(endpoint, registry, timeout, direct=False, **options)
        self.timeout = timeout

    async def __aenter__(self) -> AsyncRegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client (its I/O thread is joined off the loop)."""
        await asyncio.get_running_loop().run_in_executor(None, self.sync.close)

    async def _drive(self, pages: Generator[tuple[Any, ...], Any, Any]) -> Any:
        """Run a paging generator of actors/paging.py with awaited calls; its result."""
        try:
            request = next(pages)
            while True:
                request = pages.send(await self._call(*request))
        except StopIteration as done:
            return done.value

    async def _call(self, method: str, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        first = self.sync.submit(method, *args)
        try:
            return await asyncio.wait_for(_bridge(first, loop), self.timeout)
        except TimeoutError:
            raise self.sync.no_answer(method) from None

    async def _wait(self, method: str, *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        first = self.sync.submit(method, *args)
        try:
            value = await asyncio.wait_for(asyncio.shield(_bridge(first, loop)), self.timeout)
        except TimeoutError:
            raise self.sync.no_answer(method) from None
        except asyncio.CancelledError:
            first.add_done_callback(self._drop_when_accepted)
            raise
        if not isinstance(value, OpsFuture):  # answered at once with the value
            done: asyncio.Future[Any] = loop.create_future()
            done.set_result(value)
            return done
        final = value
        target = _bridge(final, loop)

        def cancelled(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                self.sync.drop_wait(final)

        target.add_done_callback(cancelled)
        return target

    def _drop_when_accepted(self, first: OpsFuture[Any]) -> None:
        with contextlib.suppress(Exception):
            final = first.get(timeout=0)
            if isinstance(final, OpsFuture):
                self.sync.drop_wait(final)

    # --- the methods of actors/calls.py, as coroutines ------------------------------------------

    async def register_operation(self, spec: OperationSpec) -> None:
        # A lease rides on the liveness of the I/O thread's socket: every call here uses it.
        await self._call("register_operation", spec)

    async def provisioning_succeeded(self, op_id: OperationId) -> None:
        await self._call("provisioning_succeeded", op_id)

    async def provisioning_failed(self, op_id: OperationId, error: str | BaseException) -> None:
        await self._call("provisioning_failed", op_id, failure_text(error))

    async def peer_ready(self, op_id: OperationId, peer: OperationPeerHandle) -> None:
        await self._call("peer_ready", op_id, peer)

    async def register_watcher(self, op_id: OperationId) -> asyncio.Future[Outcome]:
        return await self._wait("register_watcher", op_id)

    async def report_progress(self, op_id: OperationId, update: OperationProgressUpdate) -> None:
        await self._call("report_progress", op_id, update)

    async def complete_operation(self, op_id: OperationId, result: OperationResult) -> None:
        await self._call("complete_operation", op_id, result)

    async def fail_operation(self, op_id: OperationId, error: str | BaseException) -> None:
        await self._call("fail_operation", op_id, failure_text(error))

    async def abort_provisioning(self, op_id: OperationId, reason: str | None = None) -> None:
        await self._call("abort_provisioning", op_id, reason)

    async def cancel_operation(self, op_id: OperationId, reason: str | None = None) -> None:
        await self._call("cancel_operation", op_id, reason)

    async def request_retire(self, op_id: OperationId) -> None:
        await self._call("request_retire", op_id)

    async def mark_retired(self, op_id: OperationId) -> None:
        await self._call("mark_retired", op_id)

    async def snapshot(self, op_id: OperationId) -> OperationLifecycleSnapshot | None:
        return await self._call("snapshot", op_id)  # type: ignore[no-any-return]

    async def progress_log(self, op_id: OperationId) -> list[ProgressEntry]:
        return await self._call("progress_log", op_id)  # type: ignore[no-any-return]

    async def list_operations(
        self,
        owner_session_id: str | None = None,
        status: OperationStatus | None = None,
        kind: OperationKind | None = None,
        limit: int | None = None,
        after: PageKey | None = None,
        name_prefix: str | None = None,
        order: str | None = None,
    ) -> list[OperationLifecycleSnapshot]:
        """As ``RegistryCalls.list_operations``: without ``limit``, every page."""
        query = (owner_session_id, status, kind)
        tail = (name_prefix, order)
        if limit is not None:
            return await self._call(  # type: ignore[no-any-return]
                "list_operations", *query, limit, after, *tail
            )
        return await self._drive(all_operations(query, after, tail))  # type: ignore[no-any-return]

    async def terminate_owner(self, reason: str) -> None:
        await self._call("terminate_owner", reason)

    async def collect_completed(self) -> list[tuple[OperationId, Outcome]]:
        return await self._call("collect_completed")  # type: ignore[no-any-return]

    async def wait_all(
        self, run_id: str, ids: Sequence[OperationId]
    ) -> asyncio.Future[WaitAllResult]:
        check_text(run_id, "run_id", MAX_ID_BYTES)
        return await self._wait("wait_all", run_id, id_list(ids, "wait_all"))

    async def cancel_wait_all(self) -> bool:
        return await self._call("cancel_wait_all")  # type: ignore[no-any-return]

    async def wait_any(
        self, ids: Sequence[OperationId]
    ) -> asyncio.Future[tuple[OperationId, Outcome]]:
        return await self._wait("wait_any", id_list(ids, "wait_any"))

    async def list_since(self, after_seq: int, limit: int | None = None) -> CompletionBatch:
        """As ``RegistryCalls.list_since``: without ``limit``, every entry up to the first
        reply's watermark, read page by page."""
        if limit is not None:
            return await self._call("list_since", after_seq, limit)  # type: ignore[no-any-return]
        return await self._drive(all_entries(after_seq))  # type: ignore[no-any-return]

    async def watermark(self) -> int:
        return await self._call("watermark")  # type: ignore[no-any-return]

    async def wait_for_advance(self, after_seq: int) -> asyncio.Future[int]:
        return await self._wait("wait_for_advance", after_seq)

    async def capture_persistence_snapshot(self) -> PersistedOpsSnapshot:
        return await self._call("capture_persistence_snapshot")  # type: ignore[no-any-return]

    async def diagnostic_snapshot(self) -> DiagnosticSnapshot:
        return await self._call("diagnostic_snapshot")  # type: ignore[no-any-return]


def _document() -> None:
    """Each coroutine's docstring is the shared surface's, for ``help()`` and editors."""
    for name in calls.METHODS:
        method = getattr(AsyncRegistryClient, name)
        if not method.__doc__:
            shared = getattr(RegistryCalls, name).__doc__ or ""
            method.__doc__ = f"Coroutine of ``RegistryCalls.{name}``.\n\n{shared}"


_document()
