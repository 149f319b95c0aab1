"""Errors that only exist across a wire. Each is an ``OpsLifecycleError`` like the rest,
so one ``except OpsLifecycleError`` covers everything a registry call can raise."""

from __future__ import annotations

from actors.errors import OpsLifecycleError

__all__ = ["Busy", "FeedGap", "TooLarge", "Unavailable"]


class Unavailable(OpsLifecycleError):
    """The server could not be reached or restarted before answering.

    For a call that changes state, it may or may not have happened; read the
    snapshot to find out. The client never retries such a call by itself.
    """

    detail: str
    field_names = ("detail",)

    def message(self) -> str:
        return f"registry unavailable: {self.detail}"


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
