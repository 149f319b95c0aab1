"""The ``WorkerPool``'s errors, and how it words a worker's death."""

from __future__ import annotations

import signal

from actors.errors import OpsregError, OpsTimeout
from transport._worker_proc import EXIT_NO_MAIN_GUARD, NO_MAIN_GUARD
from transport.errors import OperationError

__all__ = ["OperationError", "PoolTimeout", "WorkerStartError"]


class PoolTimeout(OpsTimeout):
    """``handle.result(timeout=...)`` or ``pool.map(..., timeout=...)`` ran out of time.

    An ``OpsTimeout``, so a built-in ``TimeoutError``; the call goes on (cancel it to stop it).
    """


class WorkerStartError(OpsregError, RuntimeError):
    """The pool's worker processes die before they start; the pool is broken.

    Every call still queued fails with this error (its operation ``Failed`` with the same
    text) and ``submit`` raises it. ``cause`` says why the workers died.
    """

    def __init__(self, failures: int, cause: str) -> None:
        self.failures = failures
        self.cause = cause
        super().__init__(f"worker processes could not start ({failures} start failures): {cause}")


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _start_cause(code: int | None) -> str:
    if code == EXIT_NO_MAIN_GUARD:
        return NO_MAIN_GUARD
    return (
        f"a worker process ended ({_describe_exit(code)}) before it could run a task; "
        "its traceback, if any, is on stderr (an exception while the main module, or a "
        "module it imports, is imported again in the worker does this)"
    )
