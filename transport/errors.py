"""Errors that only exist across a wire. Each is an ``OpsLifecycleError`` like the rest,
so one ``except OpsLifecycleError`` covers everything a registry call can raise (and
``except OpsregError`` everything opsreg raises, ``OperationError`` included)."""

from __future__ import annotations

from typing import Any

from actors.errors import CallTimeout, OpsLifecycleError, OpsregError, OpsTimeout, Unavailable
from actors.model import OperationId, Outcome

__all__ = [
    "Busy",
    "CallTimeout",
    "FeedCursorAhead",
    "FeedGap",
    "OperationError",
    "OpsTimeout",
    "OpsregError",
    "ServerRestarted",
    "TooLarge",
    "Unavailable",
]


class OperationError(OpsLifecycleError):
    """A pool call did not complete; ``outcome`` says how it ended.

    When the call raised, ``error_type`` and ``error_message`` are the remote
    exception's class name and message (read from the first line of the ``Failed``
    outcome's text, ``"ValueError: bad input"``), so ``except`` logic can branch on
    them; both are ``None`` when it was cancelled or terminated or the worker died.

    >>> from actors import Failed, OperationId
    >>> err = OperationError(OperationId.new(), Failed("ValueError: bad input"))
    >>> err.error_type, err.error_message
    ('ValueError', 'bad input')
    """

    id: OperationId
    outcome: Outcome
    field_names = ("id", "outcome")

    def message(self) -> str:
        detail = getattr(self.outcome, "error", None) or getattr(self.outcome, "reason", None)
        head = f"operation {self.id} ended {self.outcome.status.value}"
        if not detail:
            return head
        return f"{head}: {str(detail).splitlines()[0]}"

    def _raised(self) -> tuple[str, str] | None:
        error: Any = getattr(self.outcome, "error", None)
        if not isinstance(error, str) or not error:
            return None
        first = error.splitlines()[0]
        name, sep, text = first.partition(": ")
        if not sep:
            name, text = first.removesuffix(":"), ""
        if not name.replace(".", "").replace("_", "").isalnum() or not name[0].isalpha():
            return None
        return name, text

    @property
    def error_type(self) -> str | None:
        """The remote exception's class name (``"ValueError"``), or ``None``."""
        raised = self._raised()
        return raised[0] if raised else None

    @property
    def error_message(self) -> str | None:
        """The remote exception's message (``str(exc)``, its first line), or ``None``."""
        raised = self._raised()
        return raised[1] if raised else None


class Busy(OpsLifecycleError):
    """This client has too many requests in flight; nothing was done."""

    limit: int
    field_names = ("limit",)

    def message(self) -> str:
        return f"too many requests in flight from this client (limit: {self.limit})"


class TooLarge(OpsLifecycleError):
    """The request frame exceeds the server's limit; nothing was done."""

    size: int
    limit: int
    field_names = ("size", "limit")

    def message(self) -> str:
        return f"request frame too large ({self.size} bytes, limit: {self.limit})"


class FeedGap(OpsLifecycleError):
    """Entries after ``after_seq`` up to ``dropped_through`` are gone from the registry.

    The subscriber cannot repair this gap; it must resynchronise from a
    snapshot (or accept the loss explicitly by resubscribing after ``dropped_through``).
    """

    after_seq: int
    dropped_through: int
    watermark: int
    field_names = ("after_seq", "dropped_through", "watermark")

    def message(self) -> str:
        return (
            f"completion feed gap: cursor {self.after_seq} is older than retention "
            f"(dropped through {self.dropped_through}, watermark {self.watermark})"
        )


class ServerRestarted(Unavailable):
    """A state-changing request named a server incarnation that is not this one.

    It was **not executed** (a definite refusal), so a client may send it again
    to the incarnation named in ``epoch``; ``RegistryClient`` does so itself.
    """

    epoch: str
    field_names = ("epoch",)

    def __init__(self, epoch: str) -> None:
        super().__init__(epoch)

    def message(self) -> str:
        return (
            "registry unavailable: the server restarted before this request arrived; "
            f"it was not executed (the server is now incarnation {self.epoch})"
        )


class FeedCursorAhead(OpsLifecycleError):
    """The subscriber's cursor is ahead of everything the registry has made durable.

    The store behind the registry lost entries the subscriber already received
    (or the subscriber was pointed at another registry); waiting would never end.
    """

    after_seq: int
    watermark: int
    field_names = ("after_seq", "watermark")

    def message(self) -> str:
        return (
            f"completion feed cursor {self.after_seq} is ahead of the registry's "
            f"watermark {self.watermark}"
        )
