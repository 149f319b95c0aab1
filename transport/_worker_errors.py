"""The ``WorkerPool``'s errors, and how it words a worker's death."""

from __future__ import annotations

import signal

from actors.errors import OpsLifecycleError
from actors.model import OperationId, Outcome
from transport._worker_proc import EXIT_NO_MAIN_GUARD, NO_MAIN_GUARD

__all__ = ["OperationError", "PoolTimeout", "WorkerStartError"]


class PoolTimeout(TimeoutError):
    """``handle.result(timeout=...)`` or ``pool.map(..., timeout=...)`` ran out of time.

    A subclass of the built-in ``TimeoutError``; the call goes on (cancel it to stop it).
    """


class WorkerStartError(RuntimeError):
    """The pool's worker processes die before they start; the pool is broken.

    Every call still queued fails with this error (its operation ``Failed`` with the same
    text) and ``submit`` raises it. ``cause`` says why the workers died.
    """

    def __init__(self, failures: int, cause: str) -> None:
        self.failures = failures
        self.cause = cause
        super().__init__(f"worker processes could not start ({failures} start failures): {cause}")


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
