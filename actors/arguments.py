"""The rules' reading of a call: argument checks, and which transition each method asks for.

Pure (no threads, no I/O), beside :mod:`actors.lifecycle`, which decides
whether a transition is legal. The registry actor hands every call's raw
arguments here first, so an in-process caller and a wire caller (whose
arguments the codec has already typed) are refused the same way, with
``InvalidArgument`` and nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from actors.errors import InvalidArgument
from actors.model import (
    MAX_ID_BYTES,
    Aborted,
    Cancelled,
    Completed,
    Failed,
    OperationId,
    OperationResult,
    Outcome,
    Retired,
    Terminated,
    check_text,
)

__all__ = [
    "TERMINAL_ACTIONS",
    "after_seq",
    "ids",
    "limits",
    "run_id",
    "terminal",
    "terminated",
    "text",
]

#: terminal method -> the transition it asks the rules for (the action an
#: ``InvalidTransition`` names). ``provisioning_failed`` is the seed's failure of a
#: provisioning operation, so it is the same transition as ``fail_operation``.
TERMINAL_ACTIONS: Final = {
    "provisioning_failed": "fail_operation",
    "fail_operation": "fail_operation",
    "complete_operation": "complete_operation",
    "abort_provisioning": "abort_provisioning",
    "cancel_operation": "cancel_operation",
    "mark_retired": "mark_retired",
    "terminate_owner": "terminate_owner",
}


def text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, got {type(value).__name__}")
    return value


def _reason(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"reason must be a string or None, got {type(value).__name__}")
    return value


def ids(values: Iterable[Any], what: str) -> list[OperationId]:
    """A list of operation ids (a string is refused: it would be a list of characters)."""
    if isinstance(values, str | bytes):
        raise InvalidArgument(f"{what} must be a list of operation ids, not a string")
    return [OperationId(v) for v in values]


def run_id(value: Any) -> str:
    check_text(value, "run_id", MAX_ID_BYTES)
    return value  # type: ignore[no-any-return]


def after_seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"after_seq must be a non-negative integer, got {value!r}")
    return value


def _positive(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def limits(max_completed: Any, max_concurrent: Any) -> tuple[int, int | None]:
    """A registry's ``(max_completed, max_concurrent)``, checked (``None``: no concurrency cap)."""
    if not _positive(max_completed):
        raise InvalidArgument(f"max_completed must be an integer >= 1, got {max_completed!r}")
    if max_concurrent is not None and not _positive(max_concurrent):
        raise InvalidArgument(
            f"max_concurrent must be None or an integer >= 1, got {max_concurrent!r}"
        )
    return max_completed, max_concurrent


def _outcome(method: str, op_id: OperationId, args: tuple[Any, ...]) -> Outcome:
    if method in ("provisioning_failed", "fail_operation"):
        return Failed(text(args[0], "error"))
    if method == "complete_operation":
        if not isinstance(args[0], OperationResult):
            raise InvalidArgument(
                f"complete_operation needs an OperationResult, got {type(args[0]).__name__}"
            )
        # A result built without an id (``NO_ID``) is this operation's, whichever way
        # it came: in process, over the wire, pipelined or from asyncio.
        return Completed(args[0].for_operation(op_id))
    if method == "abort_provisioning":
        return Aborted(_reason(args[0] if args else None))
    if method == "cancel_operation":
        return Cancelled(_reason(args[0] if args else None))
    if method == "mark_retired":
        return Retired()
    raise InvalidArgument(f"{method} is not a terminal method")


def terminal(method: str, op_id: Any, *args: Any) -> tuple[OperationId, str, Outcome]:
    """``(id, action, outcome)`` for a terminal call on one operation, its arguments checked."""
    op = OperationId(op_id)
    return op, TERMINAL_ACTIONS[method], _outcome(method, op, args)


def terminated(reason: Any) -> tuple[str, Outcome]:
    """``(action, outcome)`` for ending operations the caller did not name one by one."""
    return TERMINAL_ACTIONS["terminate_owner"], Terminated(text(reason, "reason"))
