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
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
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
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    Outcome,
    Terminated,
    clip_text,
)
from transport._outbox import Outbox
from transport.client import RegistryClient

__all__ = ["CallCancelled", "CallHandle", "OperationError", "WorkerPool"]

log = logging.getLogger(__name__)

CLOSE_REASON = "worker pool shut down"


class OperationError(OpsLifecycleError):
    """A pool call did not complete; ``outcome`` says how it ended."""

    id: OperationId
    outcome: Outcome
    field_names = ("id", "outcome")

    def message(self) -> str:
        detail = getattr(self.outcome, "error", None) or getattr(self.outcome, "reason", None)
        head = f"operation {self.id} ended {self.outcome.status.value}"
        if not detail:
            return head
        return f"{head}: {str(detail).splitlines()[0]}"


class CallCancelled(Exception):
    """Raised inside a worker by ``progress()`` once the call has been cancelled."""


# --- messages between the pool and a worker process (pickled over its two pipes) --------------


@dataclass(frozen=True, slots=True)
class _Task:
    """Pool to worker: run the pickled call ``payload`` as operation ``op_id``."""

    op_id: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Interrupt:
    """Pool to worker: operation ``op_id`` was cancelled; its next ``progress()`` raises."""

    op_id: str


@dataclass(frozen=True, slots=True)
class _Returned:
    """Worker to pool: the call returned; ``blob`` is its pickled value, ``text`` its repr."""

    op_id: str
    blob: bytes
    text: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class _Raised:
    """Worker to pool: the call raised (or its value cannot be pickled)."""

    op_id: str
    summary: str
    trace: str


@dataclass(frozen=True, slots=True)
class _Ended:
    """Worker to pool: the call was cancelled, or could not start; the registry holds how."""

    op_id: str
    cancelled: bool


# --- the worker process -------------------------------------------------------------------------


def _accepts_progress(fn: Callable[..., Any]) -> bool:
    try:
        return "progress" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _worker_main(
    tasks: multiprocessing.connection.Connection,
    results: multiprocessing.connection.Connection,
    endpoint: str,
    registry: str,
    timeout: float,
) -> None:
    """Entry point of a worker process: run calls until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool decides when workers stop
    client = RegistryClient(endpoint, registry=registry, timeout=timeout)
    inbox: queue.Queue[_Task | None] = queue.Queue()
    cancelled: set[str] = set()
    lock = threading.Lock()

    def listen() -> None:
        while True:
            try:
                msg = tasks.recv()
            except (EOFError, OSError):
                inbox.put(None)
                return
            if msg is None:
                inbox.put(None)
                return
            if isinstance(msg, _Interrupt):
                with lock:
                    cancelled.add(msg.op_id)
            else:
                inbox.put(msg)

    threading.Thread(target=listen, daemon=True).start()
    try:
        while True:
            task = inbox.get()
            if task is None:
                return
            results.send_bytes(
                cloudpickle.dumps(_run_call(client, task.op_id, task.payload, cancelled, lock))
            )
    finally:
        client.close()


def _run_call(
    client: RegistryClient, op_id: str, payload: bytes, cancelled: set[str], lock: threading.Lock
) -> _Returned | _Raised | _Ended:
    op = OperationId(op_id)
    try:
        client.provisioning_succeeded(op)
    except InvalidTransition:
        return _Ended(op_id, cancelled=False)  # cancelled or terminated before it could start

    def progress(percent: float | None = None, message: str = "") -> None:
        with lock:
            stop = op_id in cancelled
        if stop:
            raise CallCancelled(op_id)
        client.report_progress(op, OperationProgressUpdate(message, percent))

    started = time.monotonic()
    try:
        fn, args, kwargs = cloudpickle.loads(payload)
        if _accepts_progress(fn):
            kwargs = {**kwargs, "progress": progress}
        value = fn(*args, **kwargs)
    except CallCancelled:
        return _Ended(op_id, cancelled=True)
    except BaseException as exc:
        summary = f"{type(exc).__name__}: {exc}"
        return _Raised(op_id, summary, traceback.format_exc())
    duration_ms = int((time.monotonic() - started) * 1000)
    try:
        blob = cloudpickle.dumps(value)
    except Exception as exc:
        return _Raised(op_id, f"result cannot be pickled: {exc!r}", "")
    return _Returned(op_id, blob, repr(value)[:4096], duration_ms)


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
    done: OpsFuture[None]


class CallHandle:
    """One submitted call: its operation id, its result, a way to cancel it."""

    def __init__(self, pool: WorkerPool, op_id: OperationId) -> None:
        self.id = op_id
        self._pool = pool
        self._future: OpsFuture[Any] = OpsFuture()

    def result(self, timeout: float | None = None) -> Any:
        """The call's return value; raises :class:`OperationError` if it did not complete."""
        return self._future.get(timeout=timeout)

    def done(self) -> bool:
        return self._future.done()

    def cancel(self, reason: str | None = None) -> bool:
        """Cancel the call; False if it had already ended."""
        return self._pool._cancel(self, reason)

    def snapshot(self) -> OperationLifecycleSnapshot | None:
        return self._pool.client.snapshot(self.id)

    def __await__(self) -> Any:
        return self._future.__await__()


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


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


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
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.endpoint = endpoint
        self.registry = registry
        self.timeout = timeout
        self.cancel_grace = cancel_grace
        self.owner_session_id = owner_session_id or f"pool-{os.getpid()}-{id(self):x}"
        self.source_label = source_label
        self.client = RegistryClient(endpoint, registry=registry, timeout=timeout)
        self._ctx = multiprocessing.get_context("spawn")
        self._commands: Outbox[_Run | _Cancel | _Close] = Outbox()
        self._queue: deque[tuple[CallHandle, bytes]] = deque()
        self._handles: dict[OperationId, CallHandle] = {}
        self._closed = False
        self._workers = [self._spawn() for _ in range(processes)]
        self.replaced = 0
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
        """Register ``fn(*args, **kwargs)`` as an operation and queue it for a worker."""
        if self._closed:
            raise RuntimeError("the pool is shut down")
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
        self._handles[op_id] = handle
        self._commands.put(_Run(handle, payload))
        return handle

    def map(
        self, fn: Callable[..., Any], iterable: Iterable[Any], *, timeout: float | None = None
    ) -> list[Any]:
        """``[fn(x) for x in iterable]``, run in the pool; results in input order."""
        handles = [self.submit(fn, item) for item in iterable]
        return [h.result(timeout=timeout) for h in handles]

    def close(self, reason: str = CLOSE_REASON) -> None:
        """End what is still running (``terminate_owner(reason)``), then stop the workers.

        Queued and running calls end ``Terminated(reason)``; the pool's connection and
        its worker processes are gone when this returns. Idempotent; ``with`` calls it.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self.client.terminate_owner(reason)
        except OpsLifecycleError as exc:
            log.warning("pool close could not terminate its operations: %s", exc)
        done: OpsFuture[None] = OpsFuture()
        self._commands.put(_Close(reason, done))
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
                deadline = min((w.kill_at for w in self._workers if w.kill_at), default=None)
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
                self._dispatch()
        except Exception:
            log.exception("worker pool monitor failed")

    def _handle_commands(self) -> bool:
        for cmd in self._commands.drain():
            if isinstance(cmd, _Run):
                self._queue.append((cmd.handle, cmd.payload))
            elif isinstance(cmd, _Cancel):
                self._cancelled(cmd.handle, cmd.reason)
            else:
                self._stop_all(cmd.reason)
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
            if w.current is None and w.process.is_alive():
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
        else:  # _Ended: the registry already holds the outcome
            self._settle_from_registry(handle)

    def _fail(self, handle: CallHandle, error: str) -> None:
        try:
            self.client.fail_operation(handle.id, error)
        except InvalidTransition:
            self._settle_from_registry(handle)
            return
        except OpsLifecycleError as exc:
            self._settle(handle, exc)
            return
        self._settle(handle, OperationError(handle.id, Failed(error)))

    def _worker_died(self, w: _Worker) -> None:
        code = w.process.exitcode
        self._workers.remove(w)
        w.close()
        handle = w.current
        if handle is not None:
            self._fail(handle, f"worker process died: {_describe_exit(code)}")
        if not self._closed:
            self._workers.append(self._spawn())
            self.replaced += 1

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
        self._handles.pop(handle.id, None)
        if handle._future.done():
            return
        if error is not None:
            handle._future.set_exception(error)
        else:
            handle._future.set(value)

    def _stop_all(self, reason: str) -> None:
        for handle, _ in self._queue:
            self._settle(handle, OperationError(handle.id, Terminated(reason)))
        self._queue.clear()
        for w in self._workers:
            if w.current is not None:
                # Its call has just been terminated in the registry: nothing to wait for.
                self._settle(w.current, OperationError(w.current.id, Terminated(reason)))
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
