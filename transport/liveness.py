"""Client liveness for ``RegistryServer``: who is connected, what each holds, when to give up.

Bookkeeping only; the server's I/O thread owns it and does the sending. The
rules (documented in ``docs/design.md``, *Hardening: waits*):

* A client silent for ``client_timeout`` is *forgotten*: every wait it holds is
  cancelled in its registry (each gets a final ``WaitCancelled`` reply) and its
  leased operations end. The next pong it gets says ``[epoch, False]`` so it can
  re-establish its waits even if those replies were lost.
* A server whose own loop stalled (stopped, swapped out, starved) for longer
  than ``heartbeat_interval + client_timeout / 2`` forgets nobody on that beat:
  the clients' heartbeats are queued unread, so their silence means nothing.
* A client holds at most ``max_waits_per_client`` pending waits.

The messages it sends (cancel a client's waits, release its leases) are ``tell``s
to registry actors: they never block the I/O thread that calls them.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec
import pykka

from actors import calls
from actors.errors import LimitExceeded, OpsLifecycleError
from actors.futures import OpsFuture
from actors.registry import Call

if TYPE_CHECKING:
    from actors import OpsRegistry

__all__ = [
    "DROP_WAIT",
    "FORGOTTEN_WAIT",
    "LEASE_REASON",
    "Client",
    "Liveness",
    "cancel_waits",
    "dropped_id",
]

# The server's log: a forgotten client is one of its events.
log = logging.getLogger("transport.server")

#: The outcome of a leased operation whose client the server gave up on.
LEASE_REASON: Final = "owner client went silent"
#: What a wait cancelled for the same reason says (``WaitCancelled``'s field).
FORGOTTEN_WAIT: Final = "the server gave up on this client (silent beyond client_timeout)"
#: Identities forgotten recently, remembered so the next pong can tell them (FIFO bound).
_FORGOTTEN_MEMORY: Final = 65_536


@dataclass
class Client:
    last_seen: float
    inflight: int = 0
    #: req_id -> (registry, future), for the waits the server holds on this client's behalf
    held: dict[int, tuple[str, OpsFuture[Any]]] = field(default_factory=dict)
    #: wait requests handed to a registry and not answered yet (they count as held)
    asked_waits: int = 0
    #: registries in which this client registered leased operations
    leased_in: set[str] = field(default_factory=set)
    #: the server gave up on this identity before; its next pong says so
    forgotten: bool = False


class Liveness:
    """The server's memory of forgotten clients, its own pauses, and the wait budget."""

    def __init__(self, heartbeat_interval: float, client_timeout: float, max_waits: int) -> None:
        if max_waits < 1:
            raise ValueError(f"max_waits_per_client must be at least 1, got {max_waits}")
        self.client_timeout = client_timeout
        self.max_waits = max_waits
        #: a gap between two beats beyond this is the server's own stall
        self.stall = heartbeat_interval + client_timeout / 2
        self._forgotten: OrderedDict[bytes, None] = OrderedDict()
        self._last_beat: float | None = None

    def new_client(self, identity: bytes, now: float) -> Client:
        forgotten = self._forgotten.pop(identity, False) is None
        return Client(last_seen=now, forgotten=forgotten)

    def pong(self, client: Client, epoch: str) -> Any:
        """The epoch; ``[epoch, False]`` once after the client was forgotten.

        Only that one pong has the new shape, so a client that predates it just
        skips it and keeps reading plain pongs.
        """
        if client.forgotten:
            client.forgotten = False
            return [epoch, False]
        return epoch

    def admit_wait(self, client: Client, method: str) -> OpsLifecycleError | None:
        """Refuse a wait beyond the budget; count it when admitted."""
        if method not in calls.FUTURE:
            return None
        if client.asked_waits + len(client.held) >= self.max_waits:
            return LimitExceeded("waits held for this client", self.max_waits)
        client.asked_waits += 1
        return None

    @staticmethod
    def leased(identity: bytes, client: Client, registry: str, call: Call) -> Call:
        """A leased registration names its owner (this identity) to the registry."""
        if call.method != "register_operation" or not call.args[0].lease:
            return call
        client.leased_in.add(registry)
        return Call("register_leased", (call.args[0], identity), call.reply)

    def expired(self, clients: dict[bytes, Client], now: float) -> list[tuple[bytes, Client]]:
        """The clients to forget at this beat (none if the server itself stalled)."""
        last, self._last_beat = self._last_beat, now
        if last is not None and now - last > self.stall:
            # Their heartbeats are still queued unread: a fresh client_timeout for all.
            for client in clients.values():
                client.last_seen = max(client.last_seen, now)
            return []
        deadline = now - self.client_timeout
        return [(i, c) for i, c in clients.items() if c.last_seen < deadline]

    def stalled_for(self, now: float) -> float:
        """Seconds since the previous beat (for the log line of a stall)."""
        return 0.0 if self._last_beat is None else now - self._last_beat

    def remember(self, identity: bytes) -> None:
        """``identity`` was forgotten while holding something: tell it at its next pong."""
        self._forgotten[identity] = None
        if len(self._forgotten) > _FORGOTTEN_MEMORY:
            self._forgotten.popitem(last=False)

    def forget(
        self,
        identity: bytes,
        client: Client,
        clients: dict[bytes, Client],
        registries: dict[str, OpsRegistry],
    ) -> None:
        """A client went silent: cancel every wait it holds and end its leased operations.

        Each cancelled wait gets its final ``WaitCancelled`` reply (delivered if the
        client comes back on the same connection); the futures travel in the cancel
        message, so a barrier, which its registry holds only weakly, cannot vanish
        before it is answered.
        """
        del clients[identity]
        by_registry: dict[str, list[OpsFuture[Any]]] = {}
        for registry, future in client.held.values():
            if not future.done():
                by_registry.setdefault(registry, []).append(future)
        for registry, futures in by_registry.items():
            cancel_waits(registries.get(registry), futures)
        for registry in client.leased_in:
            reg = registries.get(registry)
            if reg is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    reg.tell(Call("release_leases", (identity, LEASE_REASON), None))
        if client.held or client.asked_waits or client.leased_in:
            self.remember(identity)
        log.info(
            "client %s forgotten (silent for %.1fs); cancelled its %d wait(s), released its "
            "leases in %d registr(ies)",
            identity.hex(),
            self.client_timeout,
            sum(len(fs) for fs in by_registry.values()),
            len(client.leased_in),
            extra={"event": "client_forgotten"},
        )


def cancel_waits(reg: OpsRegistry | None, futures: list[OpsFuture[Any]]) -> None:
    """Tell a registry (if still open) to fail these waits with ``WaitCancelled``."""
    if reg is not None:
        with contextlib.suppress(pykka.ActorDeadError):
            reg.tell(Call("cancel_waits", (futures, FORGOTTEN_WAIT), None))


#: A transport message like ``ping`` (not a registry method): ``[req_id]`` of a wait this
#: client holds and no longer wants; the server cancels it (its ``WaitCancelled`` final reply
#: goes out) and answers nothing else. Sent by ``AsyncRegistryClient`` on cancellation.
DROP_WAIT: Final = "drop_wait"


def dropped_id(raw: Any) -> int:
    """The wait's request id of a ``drop_wait`` (-1, matching nothing, when malformed)."""
    try:
        (req_id,) = msgspec.msgpack.decode(bytes(raw))
    except (msgspec.DecodeError, TypeError, ValueError):
        return -1
    return req_id if isinstance(req_id, int) else -1
