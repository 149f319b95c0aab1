"""Every registry method, once: name, arguments, reply, future or not, read-only or not.

This table is the contract's method list. Everything else is derived from it
and checked against it by ``tests/test_calls_table.py``:

- the wire codec (``transport/codec.py``) builds its argument and reply
  decoders from ``METHODS`` and refuses any other method name;
- the shared surface ``actors.api.RegistryCalls`` (so ``OpsRegistry`` and
  ``RegistryClient``) has one method per entry with these argument names, and
  the optional ones default to ``None``;
- the registry actor dispatches ``METHODS`` (plus the server-only ``INTERNAL``
  messages) to ``_do_<name>`` handlers, and refuses to start if one is missing;
- the server refuses a stale epoch for ``CHANGES_STATE`` and a non-admin for
  ``ADMIN``; clients stamp and never retry what ``changes_state``;
- docs/protocol.md §6 is ``method_table_markdown()`` (``opsreg methods``
  prints it), and the conformance suite exercises every entry.

Read-only methods are listed by name (``READ_ONLY``): a method missing from
that list is treated as state-changing, so forgetting an entry costs a retry,
never at-most-once. Adding a method is this entry, its rule in
``actors/lifecycle.py``, its handler in ``actors/registry.py`` and its tests
(docs/development.md, "Adding a method").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from actors.model import (
    CompletionBatch,
    DiagnosticSnapshot,
    OperationId,
    OperationKind,
    OperationLifecycleSnapshot,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    OperationStatus,
    Outcome,
    PersistedOpsSnapshot,
    WaitAllResult,
)

__all__ = [
    "ADMIN",
    "CHANGES_STATE",
    "FUTURE",
    "INTERNAL",
    "METHODS",
    "READ_ONLY",
    "Arg",
    "Ids",
    "Method",
    "PageKey",
    "changes_state",
    "method_table_markdown",
]

#: a list of operation ids
Ids = list[OperationId]
#: what ``list_operations`` pages by: the ``(display_name, id)`` of a page's last item
PageKey = tuple[str, OperationId]


class Arg(NamedTuple):
    """One positional argument: its name (as in ``RegistryCalls``), type, how the docs write
    its wire form, and whether a caller may leave it off the end (it then arrives as None)."""

    name: str
    type: Any
    wire: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Method:
    """One registry method. ``reply`` is the value's type (a future's eventual value)."""

    name: str
    args: tuple[Arg, ...]
    reply: Any
    reply_wire: str
    future: bool = False
    admin: bool = False

    @property
    def changes_state(self) -> bool:
        return changes_state(self.name)

    @property
    def optional_tail(self) -> int:
        """How many trailing arguments may be omitted."""
        n = 0
        for arg in reversed(self.args):
            if not arg.optional:
                break
            n += 1
        return n

    @property
    def arg_types(self) -> tuple[Any, ...]:
        return tuple(a.type for a in self.args)


#: The methods that change nothing. Every other name — including one missing from
#: this list by mistake — is state-changing: stamped with the server's incarnation,
#: refused by a restarted server, never retried by a client.
READ_ONLY: Final = frozenset(
    {
        "register_watcher",
        "snapshot",
        "list_operations",
        "wait_any",
        "list_since",
        "watermark",
        "wait_for_advance",
        "capture_persistence_snapshot",
        "diagnostic_snapshot",
    }
)


def changes_state(method: str) -> bool:
    """Whether ``method`` may change state (anything not listed in ``READ_ONLY``)."""
    return method not in READ_ONLY


_ID: Final = Arg("op_id", OperationId, "`id`")

_TABLE: Final = (
    Method(
        "register_operation", (Arg("spec", OperationSpec, "`spec: OperationSpec`"),), None, "nil"
    ),
    Method("provisioning_succeeded", (_ID,), None, "nil"),
    Method("provisioning_failed", (_ID, Arg("error", str, "`error: str`")), None, "nil"),
    Method(
        "peer_ready",
        (_ID, Arg("peer", OperationPeerHandle, "`peer: OperationPeerHandle`")),
        None,
        "nil",
    ),
    Method("register_watcher", (_ID,), Outcome, "outcome", future=True),
    Method(
        "report_progress",
        (_ID, Arg("update", OperationProgressUpdate, "`update: OperationProgressUpdate`")),
        None,
        "nil",
    ),
    Method(
        "complete_operation",
        (_ID, Arg("result", OperationResult, "`result: OperationResult`")),
        None,
        "nil",
    ),
    Method("fail_operation", (_ID, Arg("error", str, "`error: str`")), None, "nil"),
    Method(
        "abort_provisioning",
        (_ID, Arg("reason", str | None, "`reason: str \\| nil`", optional=True)),
        None,
        "nil",
    ),
    Method(
        "cancel_operation",
        (_ID, Arg("reason", str | None, "`reason: str \\| nil`", optional=True)),
        None,
        "nil",
    ),
    Method("request_retire", (_ID,), None, "nil"),
    Method("mark_retired", (_ID,), None, "nil"),
    Method(
        "snapshot",
        (_ID,),
        OperationLifecycleSnapshot | None,
        "`OperationLifecycleSnapshot` \\| nil (nil: unknown id)",
    ),
    Method(
        "list_operations",
        (
            Arg("owner_session_id", str | None, "`owner_session_id: str \\| nil`", True),
            Arg("status", OperationStatus | None, "`status: OperationStatus \\| nil`", True),
            Arg("kind", OperationKind | None, "`kind: OperationKind \\| nil`", True),
            Arg("limit", int | None, "`limit: int \\| nil`", True),
            Arg("after", PageKey | None, "`after: PageKey \\| nil`", True),
            Arg("name_prefix", str | None, "`name_prefix: str \\| nil`", True),
            Arg("order", str | None, '`order: "name" \\| "newest" \\| "oldest" \\| nil`', True),
        ),
        list[OperationLifecycleSnapshot],
        "array of `OperationLifecycleSnapshot`",
    ),
    Method("terminate_owner", (Arg("reason", str, "`reason: str`"),), None, "nil", admin=True),
    Method(
        "collect_completed",
        (),
        list[tuple[OperationId, Outcome]],
        "array of `[id, outcome]`",
        admin=True,
    ),
    Method(
        "wait_all",
        (Arg("run_id", str, "`run_id: str`"), Arg("ids", Ids, "`ids: [id, ...]`")),
        WaitAllResult,
        "`WaitAllResult`",
        future=True,
    ),
    Method("cancel_wait_all", (), bool, "bool (false: no barrier)", admin=True),
    Method(
        "wait_any",
        (Arg("ids", Ids, "`ids: [id, ...]` (non-empty)"),),
        tuple[OperationId, Outcome],
        "`[id, outcome]`",
        future=True,
    ),
    Method(
        "list_since",
        (
            Arg("after_seq", int, "`after_seq: int`"),
            Arg("limit", int | None, "`limit: int \\| nil`", optional=True),
        ),
        CompletionBatch,
        "`CompletionBatch`",
    ),
    Method("watermark", (), int, "int"),
    Method(
        "wait_for_advance",
        (Arg("after_seq", int, "`after_seq: int`"),),
        int,
        "int (the new watermark)",
        future=True,
    ),
    Method("capture_persistence_snapshot", (), PersistedOpsSnapshot, "`PersistedOpsSnapshot`"),
    Method("diagnostic_snapshot", (), DiagnosticSnapshot, "`DiagnosticSnapshot`"),
)

#: name -> method, in the order of docs/protocol.md §6
METHODS: Final[dict[str, Method]] = {m.name: m for m in _TABLE}
#: methods whose answer is a future: ``ACCEPTED`` first, the value later
FUTURE: Final = frozenset(m.name for m in _TABLE if m.future)
#: methods only a client with an admin key may call when the server has ``--curve-admin``
ADMIN: Final = frozenset(m.name for m in _TABLE if m.admin)
#: the state-changing methods of the table (``changes_state`` also covers unknown names)
CHANGES_STATE: Final = frozenset(m.name for m in _TABLE if changes_state(m.name))

#: Messages a server's shell sends a registry actor that never travel on the wire
#: (metrics, and the waits and leases of a client the server gave up on).
INTERNAL: Final = frozenset(
    {
        "operation_counts",
        "cancel_waits",
        "register_leased",
        "release_leases",
        "terminate_operations",
    }
)


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def method_table_markdown() -> str:
    """docs/protocol.md §6's table, from ``METHODS`` (plus the transport's ``ping``)."""
    rows = [
        "| method | args | reply value | future | changes state | admin |",
        "|---|---|---|---|---|---|",
    ]
    for m in _TABLE:
        args = ", ".join(("*optional* " if a.optional else "") + a.wire for a in m.args) or "—"
        state = "yes" if m.changes_state else "no"
        rows.append(
            f"| `{m.name}` | {args} | {m.reply_wire} | {_yes(m.future)} | {state} | {_yes(m.admin)} |"
        )
    rows.append("| `ping` | — | (status `PONG`) | | no | |")
    return "\n".join(rows) + "\n"
