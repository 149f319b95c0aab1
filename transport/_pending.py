"""What the client's I/O thread takes from its outbox: requests, and two markers."""

from __future__ import annotations

import time
from typing import Any, Final

from actors.futures import OpsFuture

__all__ = ["CLOSE", "PING", "Close", "Pending", "Ping"]


class Ping:
    """An outbox item: send a heartbeat now (a direct call found the server gone)."""

    __slots__ = ()


class Close:
    """An outbox item: send what was queued before it, then end the I/O thread."""

    __slots__ = ()


PING: Final = Ping()
CLOSE: Final = Close()


class Pending:
    """One request until its answer; queued on the outbox as itself to be sent."""

    __slots__ = (
        "accepted",
        "args",
        "born",
        "covers",
        "final",
        "first",
        "method",
        "resends",
        "sent_at",
        "stamp",
    )

    def __init__(
        self,
        method: str,
        args: tuple[Any, ...],
        first: OpsFuture[Any] | None,
        final: OpsFuture[Any] | None = None,
    ) -> None:
        self.method = method
        self.args = args
        self.first = first
        self.final = final
        self.accepted = False
        self.sent_at = 0.0
        self.born = time.monotonic()
        self.resends = 0
        #: the epoch the request was last sent with
        self.stamp = ""
        #: a wait re-established after a forgetting: how many forgettings it already outlives
        self.covers = 0
