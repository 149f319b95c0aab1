"""The worker process side of ``WorkerPool``: its entry point and the messages on its pipes.

A worker process says ``_Ready`` once it is running (its own ``RegistryClient`` made),
then runs ``_Task`` after ``_Task`` until its task pipe closes or carries ``None``.
Until it has said ``_Ready`` the pool gives it nothing, and a worker that dies before
that is a *start failure* (see ``transport/workers.py``).
"""

from __future__ import annotations

import inspect
import multiprocessing
import multiprocessing.connection
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from actors.errors import InvalidTransition, OpsregError
from actors.model import OperationId, OperationProgressUpdate
from transport.client import RegistryClient

__all__ = ["CallCancelled"]

#: The exit code of a worker process that found the main module creating a pool
#: while it was being imported to start the worker (no ``__main__`` guard).
EXIT_NO_MAIN_GUARD = 87

NO_MAIN_GUARD = (
    "a worker process re-ran the main module, which creates a WorkerPool when imported: "
    'put the code that creates the pool under `if __name__ == "__main__":` '
    "(worker processes are spawned and import the main module again)"
)


class CallCancelled(OpsregError):
    """Raised inside a worker by ``progress()`` once the call has been cancelled."""


def refuse_pool_while_bootstrapping() -> None:
    """In a spawned process still importing the main module, no pool may start.

    Without the ``__main__`` guard every worker would start its own pool (and, under
    ``fork`` or a lenient start method, workers of its own): say why and exit with
    ``EXIT_NO_MAIN_GUARD`` so the parent pool can name the cause.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        print(f"opsreg WorkerPool: {NO_MAIN_GUARD}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_NO_MAIN_GUARD)


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
class _Ready:
    """Worker to pool: the worker is running and may be given tasks."""


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
        results.send_bytes(cloudpickle.dumps(_Ready()))
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

    def progress(message: str = "", percent: float | None = None) -> None:
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
