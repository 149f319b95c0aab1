"""Immutable value types of docs/semantics.md.

Every value here is a frozen ``msgspec.Struct`` (or a ``str`` subclass for
identifiers): hashable, comparable by value, and encodable to msgpack and JSON
by :func:`encode` / :func:`decode`, which round-trip exactly. Constructors
validate their input and raise :class:`~actors.errors.InvalidArgument`, so a
bad value is refused where it is made (and where it is decoded, since msgspec
runs ``__post_init__`` on decode too).

This module owns no behaviour beyond values: no threads, no clocks.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from typing import Any, ClassVar, Final, TypeVar

import msgspec
import uuid_utils

from actors.errors import InvalidArgument
from actors.text import (  # the caps and text checks (re-exported)
    MAX_ADDRESS_BYTES,
    MAX_CONTENT_BYTES,
    MAX_ERROR_BYTES,
    MAX_ID_BYTES,
    MAX_NAME_BYTES,
    MAX_REASON_BYTES,
    _count,
    _DefaultsInPython,
    _has_control,
    _opt_capped,
    _python_default,
    check_text,
    clip_text,
    failure_text,
    trusted_values,
)

__all__ = [
    "DEFAULT_KIND",
    "MAX_ADDRESS_BYTES",
    "MAX_CONTENT_BYTES",
    "MAX_ERROR_BYTES",
    "MAX_ID_BYTES",
    "MAX_NAME_BYTES",
    "MAX_REASON_BYTES",
    "NO_ID",
    "Aborted",
    "Cancelled",
    "Completed",
    "CompletionBatch",
    "CompletionEntry",
    "DiagnosticSnapshot",
    "Failed",
    "OperationCanonicalState",
    "OperationId",
    "OperationKind",
    "OperationLifecycleSnapshot",
    "OperationPeerHandle",
    "OperationProgressUpdate",
    "OperationResult",
    "OperationSpec",
    "OperationStatus",
    "OperationTerminalOutcome",
    "PersistedOpsSnapshot",
    "RegistryCanonicalState",
    "Retired",
    "Terminated",
    "WaitAllResult",
    "WaitAllSatisfied",
    "check_percent",
    "check_text",
    "clip_text",
    "dec_hook",
    "decode",
    "enc_hook",
    "encode",
    "failure_text",
    "new_incarnation_id",
    "new_wait_request_id",
    "trusted_values",
]

_force = msgspec.structs.force_setattr


class OperationId(str):
    """A time-ordered UUIDv7, shown as the lowercase hyphenated string.

    >>> op = OperationId.new()
    >>> OperationId(str(op)) == op
    True
    >>> OperationId("not-a-uuid")
    Traceback (most recent call last):
    ...
    actors.errors.InvalidArgument: invalid argument: operation id is not a UUID: 'not-a-uuid'
    """

    __slots__ = ()

    def __new__(cls, value: object) -> OperationId:
        if type(value) is cls:
            return value
        if type(value) is str and _CANONICAL_UUID.fullmatch(value):
            return str.__new__(cls, value)  # already the canonical text: no re-parse
        if isinstance(value, uuid.UUID):
            return str.__new__(cls, str(value))
        if not isinstance(value, str):
            raise InvalidArgument(f"operation id must be a string, got {type(value).__name__}")
        try:
            text = str(uuid.UUID(value))
        except ValueError:
            raise InvalidArgument(f"operation id is not a UUID: {value[:64]!r}") from None
        return str.__new__(cls, text)

    @classmethod
    def new(cls) -> OperationId:
        """A fresh UUIDv7 (time-ordered: later ids sort after earlier ones)."""
        return str.__new__(cls, str(uuid_utils.uuid7()))

    def __repr__(self) -> str:
        return f"OperationId({str.__repr__(self)})"


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_wait_request_id() -> str:
    """A fresh identifier for one ``wait_all`` request."""
    return str(uuid_utils.uuid7())


def new_incarnation_id() -> str:
    """A fresh identifier for one incarnation (one run) of a server, registry or store.

    The same form as other ids (a UUIDv7 string), but a different concept: it names
    a run, so a peer that sees it change knows what it held from the old run is gone.
    """
    return str(uuid_utils.uuid7())


class OperationKind(enum.StrEnum):
    """What an operation is; decides which methods apply (only ``MOB_MEMBER_CHILD`` takes
    ``peer_ready``). ``BACKGROUND_TOOL_OP`` is the default of :class:`OperationSpec`."""

    MOB_MEMBER_CHILD = "mob_member_child"
    BACKGROUND_TOOL_OP = "background_tool_op"
    BACKGROUND_TOOL_CAPACITY_SLOT = "background_tool_capacity_slot"
    DETACHED_JOB_WAIT = "detached_job_wait"


class OperationStatus(enum.StrEnum):
    """Where an operation is in its lifecycle (docs/semantics.md, "States").

    ``PROVISIONING``, ``RUNNING`` and ``RETIRING`` are live; every other status is
    terminal and final.
    """

    PROVISIONING = "provisioning"
    RUNNING = "running"
    RETIRING = "retiring"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    CANCELLED = "cancelled"
    RETIRED = "retired"
    TERMINATED = "terminated"

    @property
    def is_terminal(self) -> bool:
        """True for a status an operation never leaves (completed, failed, ...)."""
        return self not in _NON_TERMINAL


_NON_TERMINAL = frozenset(
    {OperationStatus.PROVISIONING, OperationStatus.RUNNING, OperationStatus.RETIRING}
)

E = TypeVar("E", bound=enum.Enum)


def _enum(enum_type: type[E], value: object, what: str) -> E:
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum_type)
        raise InvalidArgument(f"{what} must be one of {allowed}; got {value!r}") from None


#: The id of an :class:`OperationResult` built without one: ``complete_operation(op, result)``
#: (``OpsRegistry``, ``RegistryClient``) reads it as ``op``'s id before sending.
NO_ID: Final = OperationId("00000000-0000-0000-0000-000000000000")

#: The kind an :class:`OperationSpec` gets when the caller names none: the common case,
#: a piece of work run in the background (what ``WorkerPool`` registers).
DEFAULT_KIND: Final = OperationKind.BACKGROUND_TOOL_OP


class OperationSpec(msgspec.Struct, frozen=True, kw_only=True, metaclass=_DefaultsInPython):
    """What a caller registers: an operation's id, kind, owner and labels.

    Only ``owner_session_id`` must be given (keyword arguments only). Left out:
    ``id`` is a fresh :meth:`OperationId.new`, ``kind`` is ``BACKGROUND_TOOL_OP``,
    ``display_name`` and ``source_label`` are ``""``. These defaults are for Python
    callers: on the wire every field of docs/protocol.md §4 marked required still is,
    and the encoding is unchanged (a map of every field, in declaration order).

    >>> spec = OperationSpec(owner_session_id="s1", display_name="resize images")
    >>> spec.kind.value, spec.id == OperationSpec(id=spec.id, owner_session_id="s1").id
    ('background_tool_op', True)
    """

    #: the operation's id; a fresh UUIDv7 when left out (read it back as ``spec.id``)
    id: OperationId = _python_default("id", OperationId.new)
    #: what kind of operation this is; ``BACKGROUND_TOOL_OP`` when left out
    kind: OperationKind = _python_default("kind", lambda: DEFAULT_KIND)
    #: who owns it: ``terminate_owner`` and ``list_operations(owner_session_id=...)`` use it
    owner_session_id: str
    #: a name for people (listings sort by it); ``""`` when left out
    display_name: str = _python_default("display_name", str)
    #: where it came from (a tool, a pool, a test); ``""`` when left out
    source_label: str = _python_default("source_label", str)
    #: the child session a ``MOB_MEMBER_CHILD`` operation provisions, if any
    child_session_id: str | None = None
    #: whether the operation expects ``peer_ready`` (a peer handoff) before it ends
    expect_peer_channel: bool = False
    #: Tie the operation to the liveness of the client that registers it over a server:
    #: when the server gives up on that client, the operation ends
    #: ``Terminated("owner client went silent")`` if still running (its
    #: ``max_concurrent`` slot is freed). No effect in an in-process ``OpsRegistry``.
    lease: bool = False

    def __post_init__(self) -> None:
        _force(self, "id", OperationId(self.id))
        _force(self, "kind", _enum(OperationKind, self.kind, "kind"))
        check_text(self.owner_session_id, "owner_session_id", MAX_ID_BYTES)
        check_text(self.display_name, "display_name", MAX_NAME_BYTES)
        check_text(self.source_label, "source_label", MAX_ID_BYTES)
        _opt_capped(self.child_session_id, "child_session_id", MAX_ID_BYTES)
        if not isinstance(self.expect_peer_channel, bool):
            raise InvalidArgument("expect_peer_channel must be a bool")
        if not isinstance(self.lease, bool):
            raise InvalidArgument("lease must be a bool")


class OperationResult(msgspec.Struct, frozen=True, kw_only=True, metaclass=_DefaultsInPython):
    """What a completed operation returned: ``content`` (text) and a few counters.

    ``id`` may be left out: ``complete_operation(op, OperationResult(content="ok"))``
    means ``op``'s id. An explicit id that is not the operation's is refused
    (``InvalidArgument``). On the wire ``id`` stays required.

    >>> OperationResult(content="ok").for_operation(OperationId("01890a5d-ac96-774b-bcce-b302099a8057")).id
    OperationId('01890a5d-ac96-774b-bcce-b302099a8057')
    """

    #: the operation's id; :data:`NO_ID` (meaning "the operation's") when left out
    id: OperationId = _python_default("id", lambda: NO_ID)
    #: the result as text (a pool call stores ``repr(value)[:4096]``); at most 128 KiB
    content: str
    #: whether ``content`` describes an error the operation reported as its result
    is_error: bool = False
    #: how long the operation ran, in milliseconds
    duration_ms: int = 0
    #: tokens the operation used, if it counts them
    tokens_used: int = 0

    def __post_init__(self) -> None:
        _force(self, "id", OperationId(self.id))
        check_text(self.content, "content", MAX_CONTENT_BYTES)
        if not isinstance(self.is_error, bool):
            raise InvalidArgument("is_error must be a bool")
        _count(self.duration_ms, "duration_ms")
        _count(self.tokens_used, "tokens_used")

    def for_operation(self, op_id: OperationId) -> OperationResult:
        """This result with ``op_id`` as its id if it was built without one."""
        if self.id != NO_ID:
            return self
        return msgspec.structs.replace(self, id=OperationId(op_id))


class OperationProgressUpdate(msgspec.Struct, frozen=True):
    """One progress report; ``percent`` is a finite number in [0, 100] or None."""

    message: str
    percent: float | None = None

    def __post_init__(self) -> None:
        check_text(self.message, "message", MAX_REASON_BYTES)
        _force(self, "percent", check_percent(self.percent))


def check_percent(p: object) -> float | None:
    """``p`` as a float in [0, 100], or None; InvalidArgument for anything else."""
    if p is None:
        return None
    if isinstance(p, bool) or not isinstance(p, int | float):
        raise InvalidArgument(f"percent must be a number or None, got {p!r}")
    if not math.isfinite(p) or not 0.0 <= p <= 100.0:
        raise InvalidArgument(f"percent must be within [0, 100], got {p!r}")
    return float(p)


class OperationPeerHandle(msgspec.Struct, frozen=True):
    """Where a child operation's peer can be reached once it is ready."""

    peer_name: str
    peer_id: str
    address: str

    def __post_init__(self) -> None:
        name = check_text(self.peer_name, "peer_name", MAX_NAME_BYTES)
        if not name.strip():
            raise InvalidArgument("peer_name must not be blank")
        if _has_control(name):
            raise InvalidArgument("peer_name must not contain control characters")
        check_text(self.peer_id, "peer_id", MAX_ID_BYTES)
        check_text(self.address, "address", MAX_ADDRESS_BYTES)


# --- terminal outcomes -------------------------------------------------------


class OperationTerminalOutcome(msgspec.Struct, frozen=True, tag_field="outcome"):
    """How an operation ended: one of the six subclasses below."""

    status: ClassVar[OperationStatus]


class Completed(OperationTerminalOutcome, frozen=True, tag="completed"):
    """The operation completed with ``result`` (``complete_operation``)."""

    result: OperationResult
    status: ClassVar[OperationStatus] = OperationStatus.COMPLETED

    def __post_init__(self) -> None:
        if not isinstance(self.result, OperationResult):
            raise InvalidArgument("Completed needs an OperationResult")


class Failed(OperationTerminalOutcome, frozen=True, tag="failed"):
    """The operation failed; ``error`` is its text (for an exception, its traceback
    ending ``Type: message``; ``fail_operation``, ``provisioning_failed``)."""

    error: str
    status: ClassVar[OperationStatus] = OperationStatus.FAILED

    def __post_init__(self) -> None:
        check_text(self.error, "error", MAX_ERROR_BYTES)


class Aborted(OperationTerminalOutcome, frozen=True, tag="aborted"):
    """Provisioning was abandoned (``abort_provisioning``), with an optional reason."""

    reason: str | None = None
    status: ClassVar[OperationStatus] = OperationStatus.ABORTED

    def __post_init__(self) -> None:
        _opt_capped(self.reason, "reason", MAX_REASON_BYTES)


class Cancelled(OperationTerminalOutcome, frozen=True, tag="cancelled"):
    """The operation was cancelled (``cancel_operation``), with an optional reason."""

    reason: str | None = None
    status: ClassVar[OperationStatus] = OperationStatus.CANCELLED

    def __post_init__(self) -> None:
        _opt_capped(self.reason, "reason", MAX_REASON_BYTES)


class Retired(OperationTerminalOutcome, frozen=True, tag="retired"):
    """The operation retired (``mark_retired``)."""

    status: ClassVar[OperationStatus] = OperationStatus.RETIRED


class Terminated(OperationTerminalOutcome, frozen=True, tag="terminated"):
    """Ended from outside: ``terminate_owner``, a lost lease, a pool closing, a restart."""

    reason: str
    status: ClassVar[OperationStatus] = OperationStatus.TERMINATED

    def __post_init__(self) -> None:
        check_text(self.reason, "reason", MAX_REASON_BYTES)


Outcome = Completed | Failed | Aborted | Cancelled | Retired | Terminated


# --- views ------------------------------------------------------------------------


class OperationLifecycleSnapshot(msgspec.Struct, frozen=True):
    """One operation's state as ``snapshot`` / ``list_operations`` return it.

    ``status`` and ``terminal_outcome`` (``None`` until it ends), progress
    (``progress_count``, ``last_progress``), live ``watcher_count``, the peer handle,
    and times in ms since the epoch (``elapsed_ms`` until now, or until it ended).

    >>> reg.snapshot(op).status  # doctest: +SKIP
    <OperationStatus.RUNNING: 'running'>
    """

    id: OperationId
    kind: OperationKind
    display_name: str
    status: OperationStatus
    peer_ready: bool
    progress_count: int
    watcher_count: int
    terminal_outcome: Outcome | None
    child_session_id: str | None
    peer_handle: OperationPeerHandle | None
    created_at_ms: int
    started_at_ms: int | None
    completed_at_ms: int | None
    elapsed_ms: int | None
    owner_session_id: str = ""
    last_progress: OperationProgressUpdate | None = None


class CompletionEntry(msgspec.Struct, frozen=True):
    """One line of the completion feed; ``seq`` runs 1, 2, 3, ... with no holes."""

    seq: int
    operation_id: OperationId
    kind: OperationKind
    display_name: str
    terminal_outcome: Outcome
    completed_at_ms: int | None


class CompletionBatch(msgspec.Struct, frozen=True):
    """What ``list_since`` returns.

    ``watermark`` is the highest seq published (always durable);
    ``dropped_through`` is the highest seq no longer held: a cursor below it
    has a gap that cannot be repaired from this registry.
    """

    entries: tuple[CompletionEntry, ...]
    watermark: int
    dropped_through: int


class WaitAllSatisfied(msgspec.Struct, frozen=True):
    """How a ``wait_all`` barrier ended: its request id and member ids, in request order."""

    wait_request_id: str
    operation_ids: tuple[OperationId, ...]


class WaitAllResult(msgspec.Struct, frozen=True):
    """Outcomes in request order, and the barrier that was satisfied."""

    outcomes: tuple[tuple[OperationId, Outcome], ...]
    satisfied: WaitAllSatisfied


class DiagnosticSnapshot(msgspec.Struct, frozen=True):
    """The registry's counters and barrier, as the seed's tests read them."""

    operation_count: int
    active_count: int
    wait_active: bool
    wait_request_id: str | None
    wait_operation_ids: tuple[OperationId, ...]
    operations: tuple[OperationLifecycleSnapshot, ...]
    pending_commit_count: int = 0
    #: the ``run_id`` the active barrier was asked for (None when there is none)
    wait_run_id: str | None = None


# --- persisted state (seed wire shape, plus what recovery needs) ------------------


class OperationCanonicalState(msgspec.Struct, frozen=True):
    status: OperationStatus
    kind: OperationKind
    peer_ready: bool
    progress_count: int
    watcher_count: int
    terminal_outcome: Outcome | None
    terminal_buffered: bool
    # Beyond the seed: what a recovered snapshot needs to show the same view.
    created_at_ms: int = 0
    started_at_ms: int | None = None
    completed_at_ms: int | None = None
    peer_handle: OperationPeerHandle | None = None
    last_progress: OperationProgressUpdate | None = None
    completion_seq: int | None = None


class RegistryCanonicalState(msgspec.Struct, frozen=True):
    operations: dict[OperationId, OperationCanonicalState]
    completed_order: tuple[OperationId, ...]
    max_completed: int
    max_concurrent: int | None
    active_count: int
    wait_request_id: str | None
    wait_operation_ids: tuple[OperationId, ...]
    next_completion_seq: int


class PersistedOpsSnapshot(msgspec.Struct, frozen=True):
    """Everything needed to rebuild a registry; round-trips through JSON."""

    epoch_id: str
    authority_state: RegistryCanonicalState
    operation_specs: dict[OperationId, OperationSpec]
    completion_entries: tuple[CompletionEntry, ...]
    cursors: dict[str, int] = msgspec.field(default_factory=dict)
    dropped_through: int = 0


# --- encoding ------------------------------------------------------------------------


def enc_hook(obj: Any) -> Any:
    """msgspec's ``enc_hook`` for opsreg values (the codec and the store use it)."""
    if isinstance(obj, OperationId):
        return str(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def dec_hook(kind: type, obj: Any) -> Any:
    """msgspec's ``dec_hook`` for opsreg values (the codec and the store use it)."""
    if kind is OperationId:
        return OperationId(obj)
    raise NotImplementedError(f"cannot decode {kind!r}")


_json_encoder = msgspec.json.Encoder(enc_hook=enc_hook)
_msgpack_encoder = msgspec.msgpack.Encoder(enc_hook=enc_hook)

T = TypeVar("T")


def encode(value: Any, *, fmt: str = "msgpack") -> bytes:
    """Encode a model value (or a container of them) as msgpack or JSON."""
    if fmt == "json":
        return _json_encoder.encode(value)
    return _msgpack_encoder.encode(value)


def decode(data: bytes, kind: type[T], *, fmt: str = "msgpack") -> T:
    """Decode and validate; bad input raises :class:`InvalidArgument`."""
    try:
        if fmt == "json":
            return msgspec.json.decode(data, type=kind, dec_hook=dec_hook)
        return msgspec.msgpack.decode(data, type=kind, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"cannot decode {getattr(kind, '__name__', kind)}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"malformed {fmt} data: {exc}") from None
