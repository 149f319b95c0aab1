"""Operator subcommands that change state: cancel, fail, terminate.

``terminate --owner OWNER`` ends only that owner's non-terminal operations: it lists them
(``list_operations(owner_session_id=OWNER)``) and cancels each with the reason given, so
they end ``Cancelled`` (the wire has no per-operation ``Terminated``; that status is kept
for the registry-wide ``terminate_owner``, a lost lease and a restart). An operation that
ends on its own between the listing and its cancel is counted as already ended, not as an
error. ``terminate --all`` is the registry-wide ``terminate_owner(reason)``: every
non-terminal operation of every owner ends ``Terminated``.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any

from transport.cli.common import EXIT_OK, connect
from transport.cli.output import clean, json_line, out

_DEFAULT_OWNER_REASON = "opsreg terminate --owner {owner}"
_DEFAULT_ALL_REASON = "opsreg terminate --all"


def cancel(args: argparse.Namespace) -> int:
    """Cancel one operation; exit 1 if it is unknown or has already ended."""
    with connect(args) as client:
        client.cancel_operation(args.id, args.reason)
    _done(args, {"operation_id": args.id, "status": "cancelled", "reason": args.reason})
    return EXIT_OK


def fail(args: argparse.Namespace) -> int:
    """Fail one operation with ERROR; exit 1 if it is unknown or has already ended."""
    with connect(args) as client:
        client.fail_operation(args.id, args.error)
    _done(args, {"operation_id": args.id, "status": "failed", "error": args.error})
    return EXIT_OK


def terminate(args: argparse.Namespace) -> int:
    from actors import InvalidTransition, NotFound

    if args.all:
        reason = args.reason or _DEFAULT_ALL_REASON
        with connect(args) as client:
            client.terminate_owner(reason)
        if args.json:
            json_line({"scope": "all", "reason": reason})
        else:
            out(f"terminated every non-terminal operation ({clean(reason)})")
        return EXIT_OK
    owner = args.owner
    reason = args.reason or _DEFAULT_OWNER_REASON.format(owner=owner)
    cancelled: list[Any] = []
    already: list[Any] = []
    with connect(args) as client:
        live = [
            s for s in client.list_operations(owner_session_id=owner) if not s.status.is_terminal
        ]
        for snap in live:
            try:
                client.cancel_operation(snap.id, reason)
            except (InvalidTransition, NotFound):  # ended (or evicted) since the listing
                already.append(snap.id)
            else:
                cancelled.append(snap.id)
    if args.json:
        json_line({"owner": owner, "reason": reason, "cancelled": cancelled, "ended": already})
    else:
        for op_id in cancelled:
            out(f"{op_id}  cancelled")
        tail = f" ({len(already)} had already ended)" if already else ""
        out(f"cancelled {len(cancelled)} operation(s) of owner {clean(owner)}{tail}")
    return EXIT_OK


def _done(args: argparse.Namespace, fields: dict[str, Any]) -> None:
    if args.json:
        json_line(fields)
    else:
        out(f"{fields['operation_id']}  {fields['status']}")


def add_parsers(
    client_command: Callable[
        [str, Callable[[argparse.Namespace], int], str, str], argparse.ArgumentParser
    ],
    parse_operation_id: Callable[[str], Any],
) -> None:
    """The subcommands' entries, through ``__init__``'s ``client_command``."""
    p = client_command(
        "cancel",
        cancel,
        "cancel one operation (it ends Cancelled)",
        "Cancel an operation that has not ended: it ends Cancelled with REASON. Exit 1 if "
        "the id is unknown or the operation has already ended.",
    )
    p.add_argument("id", type=parse_operation_id, metavar="ID", help="operation id")
    p.add_argument("--reason", metavar="TEXT", help="kept in the outcome (default: none)")

    p = client_command(
        "fail",
        fail,
        "fail one operation (it ends Failed)",
        "Fail an operation that has not ended: it ends Failed with ERROR. Exit 1 if the id "
        "is unknown or the operation has already ended.",
    )
    p.add_argument("id", type=parse_operation_id, metavar="ID", help="operation id")
    p.add_argument("--error", required=True, metavar="TEXT", help="the failure's text")

    p = client_command(
        "terminate",
        terminate,
        "end one owner's operations (--owner), or every operation (--all)",
        textwrap.dedent(
            """\
            --owner OWNER cancels every operation of that owner_session_id that has not
            ended (they end Cancelled with REASON); other owners' operations are left
            alone. --all calls the registry-wide terminate_owner: every operation that has
            not ended, whoever owns it, ends Terminated (an admin method when the server
            has --curve-admin). An operation that ends by itself meanwhile is counted as
            already ended."""
        ).replace("\n", " "),
    )
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--owner", metavar="OWNER", help="only this owner_session_id's operations")
    scope.add_argument("--all", action="store_true", help="every owner's (terminate_owner)")
    p.add_argument(
        "--reason",
        metavar="TEXT",
        help=f"kept in each outcome (default: {_DEFAULT_OWNER_REASON!r} or "
        f"{_DEFAULT_ALL_REASON!r})",
    )
