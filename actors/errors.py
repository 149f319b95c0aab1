"""opsreg's errors: ``OpsregError`` at the root, the ``OpsLifecycleError`` family (one class
per reason a call is refused) under it, and ``OpsTimeout`` for every wait that ran out.

``except OpsregError`` catches anything opsreg raises on purpose; ``except TimeoutError``
catches every timeout (``OpsFuture.get(timeout=...)``, a client call that got no answer,
a pool call's ``result(timeout=...)``).

Every message is fixed by docs/semantics.md and reaches a caller in another process
unchanged (the transport codec rebuilds the same class from its name and
fields). Each error is a value: two errors of the same class with the same
fields compare equal.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pykka

__all__ = [
    "AlreadyPeerReady",
    "AlreadyRegistered",
    "CallTimeout",
    "DuplicateWaitOperation",
    "Internal",
    "InvalidArgument",
    "InvalidTransition",
    "LimitExceeded",
    "MaxConcurrentExceeded",
    "NotFound",
    "OpsLifecycleError",
    "OpsTimeout",
    "OpsregError",
    "OutcomeUnknown",
    "PeerNotExpected",
    "PermissionDenied",
    "Unavailable",
    "WaitAlreadyActive",
    "WaitCancelled",
]


class OpsregError(Exception):
    """The root of every exception opsreg raises on purpose (``actors`` and ``transport``).

    >>> from actors import NotFound, OpsregError, OpsTimeout
    >>> issubclass(NotFound, OpsregError) and issubclass(OpsTimeout, OpsregError)
    True
    """


class OpsTimeout(OpsregError, TimeoutError, pykka.Timeout):
    """A wait ran out before its answer came; the thing waited for may still happen.

    Raised by ``OpsFuture.get(timeout=...)`` (the future stays pending: get it again
    later). A built-in ``TimeoutError``, so ``except TimeoutError`` catches it, and a
    ``pykka.Timeout``, so code written for pykka's futures still does.

    >>> from actors import OpsFuture
    >>> try:
    ...     OpsFuture().get(timeout=0)
    ... except TimeoutError as exc:
    ...     print(type(exc).__name__)
    OpsTimeout
    """


class OpsLifecycleError(OpsregError):
    """Base class of every refusal the registry gives.

    >>> from actors import NotFound, OperationId
    >>> op = OperationId("01890a5d-ac96-774b-bcce-b302099a8057")
    >>> str(NotFound(op))
    'operation not found: 01890a5d-ac96-774b-bcce-b302099a8057'
    """

    #: Names of the constructor arguments, in order; used by ``fields`` and the codec.
    field_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any) -> None:
        if len(args) != len(self.field_names):
            raise TypeError(
                f"{type(self).__name__} takes {len(self.field_names)} argument(s), got {len(args)}"
            )
        for name, value in zip(self.field_names, args, strict=True):
            setattr(self, name, value)
        super().__init__(*args)

    @property
    def fields(self) -> dict[str, Any]:
        """The constructor arguments by name (``{"id": ...}``); what crosses the wire."""
        return {name: getattr(self, name) for name in self.field_names}

    def message(self) -> str:
        """The error's fixed message (docs/semantics.md, "Errors"); also ``str(error)``."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.message()

    def __repr__(self) -> str:
        inner = ", ".join(repr(getattr(self, n)) for n in self.field_names)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.args == other.args

    def __hash__(self) -> int:
        return hash((type(self), self.args))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)


class AlreadyRegistered(OpsLifecycleError):
    """An operation with this id is already registered."""

    id: Any
    field_names = ("id",)

    def message(self) -> str:
        return f"operation already registered: {self.id}"


class NotFound(OpsLifecycleError):
    """No such operation: never registered, collected, or evicted from retention."""

    id: Any
    field_names = ("id",)

    def message(self) -> str:
        return f"operation not found: {self.id}"


class InvalidTransition(OpsLifecycleError):
    """A method called on an operation whose status does not allow it (docs/semantics.md)."""

    id: Any
    status: Any
    action: str
    field_names = ("id", "status", "action")

    def message(self) -> str:
        status = str(getattr(self.status, "value", self.status))
        return f"invalid lifecycle transition for {self.id}: {status.capitalize()} -> {self.action}"


class PeerNotExpected(OpsLifecycleError):
    """``peer_ready`` on an operation whose kind takes no peer handoff."""

    id: Any
    field_names = ("id",)

    def message(self) -> str:
        return f"operation does not expect a peer handoff: {self.id}"


class AlreadyPeerReady(OpsLifecycleError):
    """A second ``peer_ready`` on the same operation."""

    id: Any
    field_names = ("id",)

    def message(self) -> str:
        return f"operation is already peer-ready: {self.id}"


class MaxConcurrentExceeded(OpsLifecycleError):
    """Admission refused: ``active`` live operations already, ``limit`` allowed."""

    limit: int
    active: int
    field_names = ("limit", "active")

    def message(self) -> str:
        return f"max concurrent operations exceeded (limit: {self.limit}, active: {self.active})"


class WaitAlreadyActive(OpsLifecycleError):
    """A ``wait_all`` barrier is already active in this registry (one at a time)."""

    field_names = ()

    def message(self) -> str:
        return "wait_all already active"


class DuplicateWaitOperation(OpsLifecycleError):
    """``wait_all`` was given the same id twice (``id`` is the first repeated)."""

    id: Any
    field_names = ("id",)

    def message(self) -> str:
        return f"wait_all contains duplicate operation id: {self.id}"


class Internal(OpsLifecycleError):
    """Something failed inside the registry (a store commit, a stopped actor).

    The call may be retried; the registry's state is as before the call.
    """

    detail: str
    field_names = ("detail",)

    def message(self) -> str:
        return f"internal lifecycle registry error: {self.detail}"


class WaitCancelled(OpsLifecycleError):
    """The pending ``wait_all`` was cancelled (Beyond the seed)."""

    wait_request_id: str
    field_names = ("wait_request_id",)

    def message(self) -> str:
        return f"wait_all cancelled: {self.wait_request_id}"


class InvalidArgument(OpsLifecycleError, ValueError):
    """A value of the wrong type or out of range; nothing was changed (Beyond the seed)."""

    detail: str
    field_names = ("detail",)

    def message(self) -> str:
        return f"invalid argument: {self.detail}"


class Unavailable(OpsLifecycleError):
    """The registry could not be reached, or could not answer for certain.

    For a call that changes state, it may or may not have happened; read the
    snapshot to find out. The client never retries such a call by itself.
    """

    detail: str
    field_names = ("detail",)

    def message(self) -> str:
        return f"registry unavailable: {self.detail}"


class OutcomeUnknown(Unavailable):
    """The store failed while making this call's outcome durable (e.g. ``fsync`` said EIO).

    The outcome is *indeterminate*, not "not done": the commit may be on disk.
    The registry stops serving from memory, reopens its store and recovers the
    truth from disk before it answers anything else; read the snapshot then.
    """

    def message(self) -> str:
        return f"registry unavailable: outcome unknown: {self.detail}"


class LimitExceeded(OpsLifecycleError):
    """A budget of the client or the server is spent; nothing was done.

    ``what`` names the budget (e.g. ``"queued reply bytes for this client"``),
    ``limit`` its size. Other clients are not affected.
    """

    what: str
    limit: int
    field_names = ("what", "limit")

    def message(self) -> str:
        return f"limit exceeded: {self.what} (limit: {self.limit})"


class PermissionDenied(OpsLifecycleError):
    """The caller may not call ``method`` (e.g. ``terminate_owner`` without an admin key)."""

    method: str
    field_names = ("method",)

    def message(self) -> str:
        return f"permission denied: {self.method}"


class CallTimeout(Unavailable, OpsTimeout):
    """A registry call got no answer in time (``RegistryClient``'s ``timeout``,
    ``OpsRegistry``'s ``call_timeout``).

    Both an :class:`Unavailable` (a state-changing call's fate is unknown: it may or
    may not have happened; read the snapshot) and a built-in ``TimeoutError``, so
    ``except Unavailable`` and ``except TimeoutError`` both catch it. Its message is
    Unavailable's: ``registry unavailable: ...``. It never crosses the wire.

    >>> issubclass(CallTimeout, TimeoutError) and issubclass(CallTimeout, Unavailable)
    True
    """
