"""``WorkerPool``: run Python callables in worker processes, each call an operation.

The pool registers every call in the registry before it runs, so it has an id,
watchers and a feed entry like any other operation. A worker process starts
the operation when it picks the call up and reports progress itself (through
its own ``RegistryClient``); the pool completes or fails it when the worker
sends the result back. Callables, arguments and results travel with
cloudpickle over pipes between the pool and its own child processes only —
never over a socket the server reads.

Cancellation: ``handle.cancel()`` cancels the operation in the registry first
(it becomes ``Cancelled`` at once), then tells the worker; the call's next
``progress()`` raises :class:`CallCancelled`. A call that ignores it is
stopped after ``cancel_grace`` seconds by killing its worker, which is
replaced. A worker that dies for any other reason fails its operation with
``Failed("worker process died: <signal or exit code>")``.

Start failures: a worker that dies before it said ``_Ready`` (it never ran a task) is
respawned after an exponential backoff; after ``max_start_failures`` of them in a row
the pool is broken (:class:`WorkerStartError`, naming the cause). Closing the pool
cancels only the operations it registered itself.

The worker process side lives in ``transport/_worker_proc.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import cloudpickle
import pykka

from actors.errors import InvalidTransition, OpsLifecycleError
from actors.futures import OpsFuture
from actors.model import (
    MAX_ERROR_BYTES,
    Cancelled,
    Failed,
    OperationId,
    OperationKind,
    OperationLifecycleSnapshot,
    OperationResult,
    OperationSpec,
    Terminated,
    clip_text,
)
from transport._outbox import Outbox
from transport._worker_errors import (
    OperationError,
    PoolTimeout,
    WorkerStartError,
    _describe_exit,
    _start_cause,
)
from transport._worker_proc import (
    CallCancelled,
    _Ended,
    _Interrupt,
    _Raised,
    _Ready,
    _Returned,
    _Task,
    _worker_main,
    refuse_pool_while_bootstrapping,
)
from transport.client import RegistryClient

__all__ = [
    "CallCancelled",
    "CallHandle",
    "OperationError",
    "PoolTimeout",
    "WorkerPool",
    "WorkerStartError",
]

log = logging.getLogger(__name__)

CLOSE_REASON = "worker pool shut down"

#: The first respawn after a start failure waits this long; each next one twice as long.
START_BACKOFF = 0.25
MAX_START_BACKOFF = 5.0


# --- the pool ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Run:
    """A command for the monitor thread: queue this call for a worker."""

    handle: CallHandle
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Cancel:
    """A command for the monitor thread: the registry cancelled this call; stop it."""

    handle: CallHandle
    reason: str | None


@dataclass(frozen=True, slots=True)
class _Close:
    """A command for the monitor thread: end every call with ``reason``, stop the workers."""

    reason: str
    #: the calls whose operations close() cancelled in the registry (the rest ended otherwise)
    cancelled: frozenset[OperationId]
    done: OpsFuture[None]


class CallHandle:
    """One submitted call: its operation id, its result, a way to cancel it.

    Awaitable in asyncio: ``await handle`` or ``await handle.result_async(timeout)``.
    """

    def __init__(self, pool: WorkerPool, op_id: OperationId) -> None:
        self.id = op_id
        self._pool = pool
        self._future: OpsFuture[Any] = OpsFuture()

    def result(self, timeout: float | None = None) -> Any:
        """The call's return value; raises :class:`OperationError` if it did not complete.

        :class:`PoolTimeout` (a ``TimeoutError``) if it has not ended within ``timeout`` s.
        """
        try:
            return self._future.get(timeout=timeout)
        except pykka.Timeout:
            raise PoolTimeout(f"call {self.id} did not end within {timeout} s") from None

    async def result_async(self, timeout: float | None = None) -> Any:
        """``result()`` for asyncio: awaits without blocking the event loop.

        >>> value = await pool.submit(pow, 2, 10).result_async(timeout=30)  # doctest: +SKIP
        """
        try:
            return await asyncio.wait_for(self._asyncio_future(), timeout)
        except TimeoutError:
            raise PoolTimeout(f"call {self.id} did not end within {timeout} s") from None

    def _asyncio_future(self) -> asyncio.Future[Any]:
        """A future of the running loop that the call's end sets (from the monitor thread).

        One per await, so an await that is cancelled or times out leaves nothing behind
        but a callback that finds its future done (or its loop closed) and does nothing.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()

        def wake(ended: OpsFuture[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits
                loop.call_soon_threadsafe(_copy_outcome, ended, waiter)

        self._future.add_done_callback(wake)
        return waiter

    def done(self) -> bool:
        """True once the call has ended (its result or error is set)."""
        return self._future.done()

    def cancel(self, reason: str | None = None) -> bool:
        """Cancel the call; False if it had already ended."""
        return self._pool._cancel(self, reason)

    def snapshot(self) -> OperationLifecycleSnapshot | None:
        """The call's operation as the registry holds it now."""
        return self._pool.client.snapshot(self.id)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._asyncio_future().__await__()


def _copy_outcome(ended: OpsFuture[Any], waiter: asyncio.Future[Any]) -> None:
    if waiter.done():  # cancelled, or timed out
        return
    try:
        waiter.set_result(ended.get(timeout=0))
    except Exception as exc:
        waiter.set_exception(exc)


class _Worker:
    def __init__(self, ctx: Any, endpoint: str, registry: str, timeout: float) -> None:
        parent_tasks, child_tasks = ctx.Pipe(duplex=False)
        child_results, parent_results = ctx.Pipe(duplex=False)
        self.tasks = child_tasks  # the pool writes
        self.results = child_results  # the pool reads
        self.process = ctx.Process(
            target=_worker_main,
            args=(parent_tasks, parent_results, endpoint, registry, timeout),
            daemon=True,
        )
        self.process.start()
        parent_tasks.close()
        parent_results.close()
        #: said ``_Ready``: running, may be given tasks; dying before it is a start failure
        self.ready = False
        self.current: CallHandle | None = None
        self.kill_at: float | None = None

    def send(self, msg: _Task | _Interrupt | None) -> bool:
        try:
            self.tasks.send(msg)
        except (OSError, ValueError):
            return False
        return True

    def close(self) -> None:
        for conn in (self.tasks, self.results):
            with contextlib.suppress(OSError):
                conn.close()


class WorkerPool:
    """Run callables in ``processes`` worker processes; every call is an operation.

    >>> with WorkerPool("tcp://127.0.0.1:5555", processes=4) as pool:   # doctest: +SKIP
    ...     handle = pool.submit(pow, 2, 10, display_name="pow")
    ...     handle.result(timeout=30)
    1024
    """

    def __init__(
        self,
        endpoint: str,
        registry: str = "default",
        processes: int = 4,
        *,
        timeout: float = 30.0,
        cancel_grace: float = 2.0,
        owner_session_id: str | None = None,
        source_label: str = "worker-pool",
        max_start_failures: int = 3,
    ) -> None:
        refuse_pool_while_bootstrapping()
        if processes < 1:
            raise ValueError("processes must be >= 1")
        if max_start_failures < 1:
            raise ValueError("max_start_failures must be >= 1")
        self.endpoint = endpoint
        self.registry = registry
        self.timeout = timeout
        self.cancel_grace = cancel_grace
        self.max_start_failures = max_start_failures
        self.owner_session_id = owner_session_id or f"pool-{os.getpid()}-{id(self):x}"
        self.source_label = source_label
        self.client = RegistryClient(endpoint, registry=registry, timeout=timeout)
        self._ctx = multiprocessing.get_context("spawn")
        self._commands: Outbox[_Run | _Cancel | _Close] = Outbox()
        self._queue: deque[tuple[CallHandle, bytes]] = deque()
        #: the calls this pool registered that have not ended (guarded by ``_lock``)
        self._handles: dict[OperationId, CallHandle] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._broken: WorkerStartError | None = None
        #: start failures since a worker last said ``_Ready``, and in all
        self._failures_in_a_row = 0
        self.start_failures = 0
        self._respawn_at: list[float] = []
        self.replaced = 0
        self._workers = [self._spawn() for _ in range(processes)]
        self._monitor = threading.Thread(target=self._run, name="opsreg-pool", daemon=True)
        self._monitor.start()

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self.endpoint, self.registry, self.timeout)

    # --- public ------------------------------------------------------------------------------------

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        display_name: str | None = None,
        kind: OperationKind = OperationKind.BACKGROUND_TOOL_OP,
        **kwargs: Any,
    ) -> CallHandle:
        """Register ``fn(*args, **kwargs)`` as an operation and queue it for a worker.

        Raises :class:`WorkerStartError` once the pool is broken, ``RuntimeError`` once closed.
        """
        self._check_open()
        payload = cloudpickle.dumps((fn, args, kwargs))
        op_id = OperationId.new()
        name = display_name or str(getattr(fn, "__name__", "call"))
        self.client.register_operation(
            OperationSpec(
                id=op_id,
                kind=kind,
                owner_session_id=self.owner_session_id,
                display_name=name,
                source_label=self.source_label,
            )
        )
        handle = CallHandle(self, op_id)
        with self._lock:
            closed = self._closed
            if not closed:
                self._handles[op_id] = handle
        if closed:  # close() ran while we registered: end what we just made, ourselves
            with contextlib.suppress(OpsLifecycleError):
                self.client.cancel_operation(op_id, CLOSE_REASON)
            raise RuntimeError("the pool is shut down")
        self._commands.put(_Run(handle, payload))
        return handle

    def _check_open(self) -> None:
        if self._broken is not None:
            raise self._broken
        if self._closed:
            raise RuntimeError("the pool is shut down")

    def map(
        self, fn: Callable[..., Any], iterable: Iterable[Any], *, timeout: float | None = None
    ) -> list[Any]:
        """``[fn(x) for x in iterable]``, run in the pool; results in input order.

        ``timeout`` bounds the whole map (from this call); :class:`PoolTimeout` when it runs out.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        handles = [self.submit(fn, item) for item in iterable]
        results = []
        for h in handles:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                results.append(h.result(timeout=left))
            except PoolTimeout:
                raise PoolTimeout(f"map did not end within {timeout} s") from None
        return results

    def close(self, reason: str = CLOSE_REASON) -> None:
        """Cancel this pool's own calls still queued or running, then stop the workers.

        Only the operations this pool registered are ended (``Cancelled(reason)``); other
        clients' operations in the same registry are left alone (``terminate_owner`` is
        the registry-wide tool). The pool's connection and worker processes are gone
        when this returns. Idempotent; ``with`` calls it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            own = [h for h in self._handles.values() if not h.done()]
        futures = [(h.id, self.client.submit("cancel_operation", h.id, reason)) for h in own]
        cancelled = set()
        for op_id, future in futures:
            try:
                future.get(timeout=self.timeout)
                cancelled.add(op_id)
            except InvalidTransition:
                pass  # it ended otherwise; the monitor settles it from the registry
            except (OpsLifecycleError, pykka.Timeout) as exc:
                log.warning("pool close could not cancel operation %s: %s", op_id, exc)
        done: OpsFuture[None] = OpsFuture()
        self._commands.put(_Close(reason, frozenset(cancelled), done))
        done.get(timeout=60)
        self._monitor.join(timeout=30)
        self.client.close()
        self._commands.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- cancellation (caller's thread) ------------------------------------------------------

    def _cancel(self, handle: CallHandle, reason: str | None) -> bool:
        try:
            self.client.cancel_operation(handle.id, reason)
        except InvalidTransition:
            return False
        self._commands.put(_Cancel(handle, reason))
        return True

    # --- the monitor thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                waitables: list[Any] = [self._commands.fd]
                for w in self._workers:
                    waitables += [w.results, w.process.sentinel]
                times = [w.kill_at for w in self._workers if w.kill_at] + self._respawn_at
                deadline = min(times, default=None)
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = multiprocessing.connection.wait(waitables, timeout)
                if self._commands.fd in ready and self._handle_commands():
                    return
                for w in list(self._workers):
                    if w.results in ready:
                        self._read_result(w)
                    if w.process.sentinel in ready and not w.process.is_alive():
                        self._worker_died(w)
                self._enforce_grace()
                self._respawn_due()
                self._dispatch()
        except Exception:
            log.exception("worker pool monitor failed")

    def _handle_commands(self) -> bool:
        for cmd in self._commands.drain():
            if isinstance(cmd, _Run):
                if self._broken is not None:
                    self._fail(cmd.handle, str(self._broken), self._broken)
                else:
                    self._queue.append((cmd.handle, cmd.payload))
            elif isinstance(cmd, _Cancel):
                self._cancelled(cmd.handle, cmd.reason)
            else:
                self._stop_all(cmd.reason, cmd.cancelled)
                cmd.done.set(None)
                return True
        return False

    def _cancelled(self, handle: CallHandle, reason: str | None) -> None:
        for i, (queued, _) in enumerate(self._queue):
            if queued is handle:
                del self._queue[i]
                self._settle(handle, OperationError(handle.id, Cancelled(reason)))
                return
        for w in self._workers:
            if w.current is handle:
                w.send(_Interrupt(str(handle.id)))
                w.kill_at = time.monotonic() + self.cancel_grace
                return

    def _dispatch(self) -> None:
        for w in self._workers:
            if not self._queue:
                return
            if w.ready and w.current is None and w.process.is_alive():
                handle, payload = self._queue.popleft()
                if w.send(_Task(str(handle.id), payload)):
                    w.current = handle
                else:
                    self._queue.appendleft((handle, payload))

    def _read_result(self, w: _Worker) -> None:
        try:
            msg = cloudpickle.loads(w.results.recv_bytes())
        except (EOFError, OSError):
            return  # the sentinel will tell us the worker died
        if isinstance(msg, _Ready):
            w.ready = True
            self._failures_in_a_row = 0
            return
        handle, w.current, w.kill_at = w.current, None, None
        if handle is None:
            return
        if isinstance(msg, _Returned):
            try:
                self.client.complete_operation(
                    handle.id,
                    OperationResult(id=handle.id, content=msg.text, duration_ms=msg.duration_ms),
                )
            except InvalidTransition:
                self._settle_from_registry(handle)
                return
            except OpsLifecycleError as exc:
                self._settle(handle, exc)
                return
            self._settle(handle, None, value=cloudpickle.loads(msg.blob))
        elif isinstance(msg, _Raised):
            # Within the registry's cap: the summary's start, then the trace's innermost end.
            summary = msg.summary.encode()[:4096].decode(errors="ignore")
            trace = clip_text(msg.trace, MAX_ERROR_BYTES - len(summary.encode()) - 1)
            self._fail(handle, f"{summary}\n{trace}".rstrip())
        elif isinstance(msg, _Ended):  # the registry already holds the outcome
            self._settle_from_registry(handle)

    def _fail(self, handle: CallHandle, error: str, raise_as: BaseException | None = None) -> None:
        try:
            self.client.fail_operation(handle.id, clip_text(error, MAX_ERROR_BYTES))
        except InvalidTransition:
            self._settle_from_registry(handle)
            return
        except OpsLifecycleError as exc:
            self._settle(handle, exc)
            return
        self._settle(handle, raise_as or OperationError(handle.id, Failed(error)))

    def _worker_died(self, w: _Worker) -> None:
        code = w.process.exitcode
        self._workers.remove(w)
        w.close()
        handle = w.current
        if handle is not None:
            self._fail(handle, f"worker process died: {_describe_exit(code)}")
        if self._closed or self._broken is not None:
            return
        if w.ready:
            self._workers.append(self._spawn())
            self.replaced += 1
            return
        # A start failure: it never ran a task. Back off, and give up after a few in a row.
        self.start_failures += 1
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= self.max_start_failures:
            self._break(WorkerStartError(self._failures_in_a_row, _start_cause(code)))
            return
        delay = min(START_BACKOFF * 2 ** (self._failures_in_a_row - 1), MAX_START_BACKOFF)
        log.warning("worker process died while starting (%s)", _describe_exit(code))
        self._respawn_at.append(time.monotonic() + delay)

    def _respawn_due(self) -> None:
        now = time.monotonic()
        due = [t for t in self._respawn_at if t <= now]
        self._respawn_at = [t for t in self._respawn_at if t > now]
        if self._closed or self._broken is not None:
            return
        for _ in due:
            self._workers.append(self._spawn())
            self.replaced += 1

    def _break(self, error: WorkerStartError) -> None:
        """No worker can start: fail every queued call with ``error``; refuse new ones."""
        log.error("%s", error)
        self._broken = error
        self._respawn_at.clear()
        while self._queue:
            handle, _ = self._queue.popleft()
            self._fail(handle, str(error), error)

    def _enforce_grace(self) -> None:
        now = time.monotonic()
        for w in self._workers:
            if w.kill_at is not None and now >= w.kill_at and w.process.is_alive():
                log.info("call %s ignored its cancellation; killing its worker", w.current)
                w.process.kill()
                w.kill_at = None

    def _settle_from_registry(self, handle: CallHandle) -> None:
        """The registry already ended this call (or is making that durable): ask a watcher."""
        try:
            outcome = self.client.register_watcher(handle.id).get(timeout=self.timeout)
        except (OpsLifecycleError, pykka.Timeout):
            outcome = Terminated("operation left the registry before it ended")
        self._settle(handle, OperationError(handle.id, outcome))

    def _settle(self, handle: CallHandle, error: BaseException | None, value: Any = None) -> None:
        with self._lock:
            self._handles.pop(handle.id, None)
        if handle._future.done():
            return
        if error is not None:
            handle._future.set_exception(error)
        else:
            handle._future.set(value)

    def _stop_all(self, reason: str, cancelled: frozenset[OperationId]) -> None:
        def end(handle: CallHandle) -> None:
            if handle.id in cancelled:
                self._settle(handle, OperationError(handle.id, Cancelled(reason)))
            else:
                self._settle_from_registry(handle)

        for handle, _ in self._queue:
            end(handle)
        self._queue.clear()
        for w in self._workers:
            if w.current is not None:
                # Its call has just been cancelled in the registry: nothing to wait for.
                end(w.current)
                w.process.kill()
            else:
                w.send(None)
        deadline = time.monotonic() + 5
        for w in self._workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5)
            w.close()
        self._workers.clear()
