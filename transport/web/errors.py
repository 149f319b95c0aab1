"""How an error becomes an HTTP answer: the status of each class and the JSON body.

Pure code. The table is docs/http.md §1 ("Errors"): every ``OpsLifecycleError`` the
registry or the transport can raise has a status here, and a class missing from it is a
500 that says so (tests/web/test_gateway.py checks every class has its row).
"""

from __future__ import annotations

from typing import Any, Final

from actors import errors as actor_errors
from actors.errors import OpsLifecycleError
from actors.model import OperationStatus
from transport import errors as transport_errors

__all__ = ["STATUS", "HttpError", "body_of", "status_of"]


class HttpError(Exception):
    """An answer the gateway gives itself (401, 404 unknown method, 408, 422 bad JSON …)."""

    def __init__(
        self, status: int, cls: str, message: str, fields: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.cls = cls
        self.message = message
        self.fields = fields or {}


#: HTTP status by error class name (docs/http.md §1)
STATUS: Final[dict[str, int]] = {
    "Forbidden": 403,
    "PermissionDenied": 403,
    "NotFound": 404,
    "AlreadyRegistered": 409,
    "InvalidTransition": 409,
    "PeerNotExpected": 409,
    "AlreadyPeerReady": 409,
    "WaitAlreadyActive": 409,
    "DuplicateWaitOperation": 409,
    "WaitCancelled": 409,
    "TooLarge": 413,
    "InvalidArgument": 422,
    "Busy": 429,
    "LimitExceeded": 429,
    "MaxConcurrentExceeded": 429,
    "Internal": 500,
    "OperationError": 500,
    "Unavailable": 503,
    "CallTimeout": 503,
    "ServerRestarted": 503,
    "OutcomeUnknown": 503,
    "FeedGap": 410,
    "FeedCursorAhead": 422,
}


def all_error_classes() -> list[type[OpsLifecycleError]]:
    """Every concrete error class of actors.errors and transport.errors."""
    found: list[type[OpsLifecycleError]] = []
    for module in (actor_errors, transport_errors):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, OpsLifecycleError)
                and value is not OpsLifecycleError
                and value not in found
            ):
                found.append(value)
    return found


def status_of(exc: BaseException) -> int:
    """The HTTP status for ``exc`` (500 for anything unexpected)."""
    if isinstance(exc, HttpError):
        return exc.status
    return STATUS.get(type(exc).__name__, 500)


def _json_field(value: Any) -> Any:
    if isinstance(value, OperationStatus):
        return value.value
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def body_of(exc: BaseException) -> dict[str, Any]:
    """``{"error": {"class", "message", "fields"}}`` for ``exc``."""
    if isinstance(exc, HttpError):
        return {"error": {"class": exc.cls, "message": exc.message, "fields": exc.fields}}
    if isinstance(exc, OpsLifecycleError):
        fields = {k: _json_field(v) for k, v in exc.fields.items()}
        return {"error": {"class": type(exc).__name__, "message": str(exc), "fields": fields}}
    return {
        "error": {"class": "Internal", "message": "internal error in the gateway", "fields": {}}
    }
