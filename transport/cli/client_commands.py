"""Client subcommands of a running server: ls, show, watch, wait, tail, stats."""

from __future__ import annotations

import argparse
import collections
import queue
import signal
import threading
import time
from typing import Any

from transport.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMED_OUT,
    EXIT_USAGE,
    Fail,
    connect,
    curve_options,
    deadline_in,
    remaining,
)
from transport.cli.output import (
    clean,
    detail,
    duration,
    json_line,
    key_values,
    out,
    percent,
    stamp,
    succeeded,
    table,
    warn,
)

# --- client subcommands ------------------------------------------------------------------------


def ls(args: argparse.Namespace) -> int:
    with connect(args) as client:
        ops = client.list_operations(owner_session_id=args.owner)
    if args.status:
        ops = [s for s in ops if s.status.value in args.status]
    if args.kind:
        ops = [s for s in ops if s.kind.value in args.kind]
    if args.json:
        json_line(ops)
        return EXIT_OK
    if not ops:
        out("no operations" + (" match" if args.status or args.kind or args.owner else ""))
        return EXIT_OK
    now_ms = int(time.time() * 1000)
    rows = []
    for s in ops:
        # A live operation has no elapsed_ms yet: show the time since it was registered,
        # by this machine's clock (the server's created_at_ms is wall-clock milliseconds).
        elapsed = s.elapsed_ms if s.elapsed_ms is not None else max(0, now_ms - s.created_at_ms)
        rows.append(
            [
                str(s.id),
                clean(s.display_name),
                s.kind.value,
                s.status.value,
                str(s.progress_count),
                percent(None if s.last_progress is None else s.last_progress.percent),
                duration(elapsed),
            ]
        )
    table(
        ["ID", "NAME", "KIND", "STATUS", "PROGRESS", "LAST%", "ELAPSED"],
        rows,
        right={4, 5, 6},
        shrink=1,
    )
    return EXIT_OK


def show(args: argparse.Namespace) -> int:
    from actors import Completed, Failed, NotFound

    with connect(args) as client:
        snap = client.snapshot(args.id)
    if snap is None:
        raise NotFound(args.id)
    if args.json:
        json_line(snap)
        return EXIT_OK
    peer = snap.peer_handle
    last = snap.last_progress
    pairs = [
        ("id", str(snap.id)),
        ("display_name", clean(snap.display_name)),
        ("kind", snap.kind.value),
        ("status", snap.status.value),
        ("owner_session_id", clean(snap.owner_session_id) or "-"),
        ("child_session_id", clean(snap.child_session_id or "-")),
        ("peer_ready", "yes" if snap.peer_ready else "no"),
        (
            "peer_handle",
            "-"
            if peer is None
            else clean(f"{peer.peer_name} (id {peer.peer_id}) at {peer.address}"),
        ),
        ("progress_count", str(snap.progress_count)),
        (
            "last_progress",
            "-" if last is None else f"{percent(last.percent)} {clean(last.message)}",
        ),
        ("watcher_count", str(snap.watcher_count)),
        ("created_at", stamp(snap.created_at_ms)),
        ("started_at", stamp(snap.started_at_ms)),
        ("completed_at", stamp(snap.completed_at_ms)),
        ("elapsed", duration(snap.elapsed_ms)),
    ]
    outcome = snap.terminal_outcome
    if outcome is not None:
        pairs.append(("outcome", outcome.status.value))
        if isinstance(outcome, Completed):
            r = outcome.result
            pairs += [
                ("result", clean(r.content)),
                ("result_is_error", "yes" if r.is_error else "no"),
                ("result_duration", duration(r.duration_ms)),
                ("result_tokens_used", str(r.tokens_used)),
            ]
        elif isinstance(outcome, Failed):
            pairs.append(("error", clean(outcome.error)))
        elif detail(outcome):
            pairs.append(("reason", detail(outcome)))
    key_values(pairs)
    return EXIT_OK


def _print_outcome(args: argparse.Namespace, op_id: Any, name: str, outcome: Any) -> None:
    if args.json:
        json_line(
            {
                "operation_id": op_id,
                "display_name": name,
                "status": outcome.status,
                "terminal_outcome": outcome,
            }
        )
        return
    said = detail(outcome)
    line = f"{op_id}  {clean(name)}  {outcome.status.value}"
    out(f"{line}  {said}" if said else line)


def watch(args: argparse.Namespace) -> int:
    import pykka

    from actors import NotFound

    with connect(args) as client:
        snap = client.snapshot(args.id)
        if snap is None:
            raise NotFound(args.id)
        future = client.register_watcher(args.id)
        if not snap.status.is_terminal and not args.json:
            # Printed once the watcher is registered: from here no outcome can be missed.
            out(f"waiting for {clean(snap.display_name)} ({args.id}), {snap.status.value}")
        try:
            outcome = future.get(timeout=args.wait_timeout)
        except pykka.Timeout:
            raise Fail(
                EXIT_TIMED_OUT,
                f"{args.id} has not ended after {args.wait_timeout:g}s (--wait-timeout)",
            ) from None
    _print_outcome(args, args.id, snap.display_name, outcome)
    return EXIT_OK if succeeded(outcome) else EXIT_FAILED


def wait(args: argparse.Namespace) -> int:
    from actors import NotFound

    ids = list(dict.fromkeys(args.ids))
    deadline = deadline_in(args.wait_timeout)
    with connect(args) as client:
        snaps = {}
        for op_id in ids:  # every id must exist before anything is awaited
            snap = client.snapshot(op_id)
            if snap is None:
                raise NotFound(op_id)
            snaps[op_id] = snap
        # One watcher per id, not ``wait_all``: a registry holds a single wait_all barrier
        # (docs/semantics.md), so a CLI taking it would make the application's own wait_all fail with
        # WaitAlreadyActive, or fail itself while the application holds it. Watchers are
        # per caller and unlimited, and each outcome can be printed the moment it arrives.
        arrived: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        for op_id in ids:
            future = client.register_watcher(op_id)
            future.add_done_callback(lambda f, op_id=op_id: arrived.put((op_id, f)))
        running = [op for op in ids if not snaps[op].status.is_terminal]
        if running and not args.json:
            out(f"waiting for {len(running)} of {len(ids)} operation(s)")
        bad: collections.Counter[str] = collections.Counter()
        for done in range(len(ids)):
            try:
                op_id, future = arrived.get(timeout=remaining(deadline))
            except queue.Empty:
                raise Fail(
                    EXIT_TIMED_OUT,
                    f"{len(ids) - done} of {len(ids)} operation(s) have not ended after "
                    f"{args.wait_timeout:g}s (--wait-timeout)",
                ) from None
            outcome = future.get(timeout=0)  # raises what the watcher failed with
            _print_outcome(args, op_id, snaps[op_id].display_name, outcome)
            if not succeeded(outcome):
                bad[outcome.status.value] += 1
    if not args.json:
        if bad:
            counts = ", ".join(f"{n} {status}" for status, n in sorted(bad.items()))
            out(f"{sum(bad.values())} of {len(ids)} did not complete: {counts}")
        else:
            out(f"all {len(ids)} completed")
    return EXIT_FAILED if bad else EXIT_OK


def _print_entry(args: argparse.Namespace, entry: Any) -> None:
    if args.json:
        json_line(entry)
        return
    outcome = entry.terminal_outcome
    said = detail(outcome)
    line = (
        f"{entry.seq:>6}  {stamp(entry.completed_at_ms)}  {outcome.status.value:<10}  "
        f"{entry.operation_id}  {clean(entry.display_name)}"
    )
    out(f"{line}  {said}" if said else line)


def tail(args: argparse.Namespace) -> int:
    from transport.errors import FeedGap
    from transport.feed import FeedSubscriber, Start

    # The start position, in FeedSubscriber's words: --start now|oldest or --after SEQ.
    start: Start | None = args.start
    if start is None and args.after_seq is None:
        start = "now" if args.follow else "oldest"
    if start == "now" and not args.follow:
        raise Fail(EXIT_USAGE, "tail --start now prints nothing without --follow")
    stop = threading.Event()
    if args.follow:
        # Ctrl-C (or SIGTERM) is the normal way to end --follow: finish the line, exit 0.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    after_seq: int | None = args.after_seq
    if not args.follow:
        with connect(args) as client:
            batch = client.list_since(after_seq or 0)
        if after_seq is not None and batch.dropped_through > after_seq:
            warn(
                "tail",
                f"warning: entries {after_seq + 1}..{batch.dropped_through} are no longer "
                "retained by the registry; starting after them",
            )
        for entry in batch.entries:
            _print_entry(args, entry)
        return EXIT_OK
    with connect(args) as client:
        client.watermark()  # an unreachable server exits 3 here, as for every command
    curve = curve_options(args)
    while not stop.is_set():
        sub = FeedSubscriber(
            args.endpoint,
            args.feed_endpoint,
            args.registry,
            start=start if after_seq is None else None,
            after_seq=after_seq,
            timeout=args.timeout,
            **curve,
        )
        try:
            while not stop.is_set():
                # Short slices so a signal is noticed promptly.
                entry = sub.next(timeout=0.2)
                if entry is not None:
                    _print_entry(args, entry)
                after_seq = sub.cursor
        except FeedGap as gap:
            # The follower fell behind retention: say what was lost and carry on.
            warn("tail", f"warning: {gap}; skipping to {gap.dropped_through + 1}")
            after_seq = gap.dropped_through
        finally:
            sub.close()
    return EXIT_OK


def stats(args: argparse.Namespace) -> int:
    from actors import OperationKind, OperationStatus

    with connect(args) as client:
        diag = client.diagnostic_snapshot()
        # list_since(watermark) is empty but reports watermark and retention together.
        feed = client.list_since(client.watermark())
    by_status = {s.value: 0 for s in OperationStatus}
    by_kind = {k.value: 0 for k in OperationKind}
    for snap in diag.operations:
        by_status[snap.status.value] += 1
        by_kind[snap.kind.value] += 1
    stats: dict[str, Any] = {
        "registry": args.registry,
        "operation_count": diag.operation_count,
        "active_count": diag.active_count,
        "wait_active": diag.wait_active,
        "wait_request_id": diag.wait_request_id,
        "wait_operation_ids": list(diag.wait_operation_ids),
        "pending_commit_count": diag.pending_commit_count,
        "watermark": feed.watermark,
        "dropped_through": feed.dropped_through,
        "by_status": by_status,
        "by_kind": by_kind,
    }
    if args.json:
        json_line(stats)
        return EXIT_OK
    wait = "no"
    if diag.wait_active:
        wait = f"yes ({len(diag.wait_operation_ids)} operations, {diag.wait_request_id})"
    key_values(
        [
            ("registry", clean(args.registry)),
            ("operation_count", str(diag.operation_count)),
            ("active_count", str(diag.active_count)),
            ("wait_active", wait),
            ("pending_commits", str(diag.pending_commit_count)),
            ("watermark", str(feed.watermark)),
            ("dropped_through", str(feed.dropped_through)),
        ]
    )
    out("by status:")
    for name, n in by_status.items():
        if n:
            out(f"  {name:<12} {n:>8}")
    out("by kind:")
    for name, n in by_kind.items():
        if n:
            out(f"  {name:<30} {n:>8}")
    return EXIT_OK
