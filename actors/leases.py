"""Which client holds which leased operation (pure bookkeeping, no threads).

A lease ties an operation's life to the liveness of the client that registered
it (``OperationSpec.lease``): when a server gives up on that client, the
registry ends the client's leased operations that are still running, so the
``--max-concurrent`` slots they hold are freed. Owners are opaque tokens the
server chooses (its socket identities); an in-process registry has no clients
and records no leases. An entry is dropped when its operation ends, so the
table holds only running leased operations.
"""

from __future__ import annotations

from actors.model import OperationId

__all__ = ["Leases"]


class Leases:
    """
    >>> leases = Leases()
    >>> op = OperationId.new()
    >>> leases.add(b"client-1", op)
    >>> leases.release(b"client-1") == [op]
    True
    """

    def __init__(self) -> None:
        self._owner: dict[OperationId, bytes] = {}
        self._held: dict[bytes, dict[OperationId, None]] = {}

    def add(self, owner: bytes, op_id: OperationId) -> None:
        self._owner[op_id] = owner
        self._held.setdefault(owner, {})[op_id] = None

    def ended(self, op_id: OperationId) -> None:
        owner = self._owner.pop(op_id, None)
        if owner is not None:
            held = self._held[owner]
            del held[op_id]
            if not held:
                del self._held[owner]

    def release(self, owner: bytes) -> list[OperationId]:
        """The owner's leased operations still running, in registration order; forgotten."""
        held = self._held.pop(owner, {})
        for op_id in held:
            del self._owner[op_id]
        return list(held)

    def __len__(self) -> int:
        return len(self._owner)
