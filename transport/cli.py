"""The ``opsreg`` command (SPEC §8). The only module that writes to the terminal.

``serve`` and ``example`` run a server or an in-process walk-through; every other
subcommand is a client of a running server::

    opsreg ls [--status S ...] [--kind K ...]     opsreg show ID
    opsreg watch ID                               opsreg wait ID...
    opsreg tail [--from SEQ] [--follow]           opsreg stats
    opsreg keys DIR

Human-readable output by default, ``--json`` for scripts. Tables are plain
fixed-width text rather than ``rich``: the columns are simple, the output is
the same whether stdout is a terminal, a pipe or a test, and the command needs
no dependency beyond the library's own. Text that comes from the registry
(names, results, errors) is printed with control characters escaped, so an
operation's name cannot move the cursor or forge extra lines.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import queue
import shutil
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # an operation ended badly, an unknown id, or another refusal
EXIT_USAGE: Final = 2  # argparse's own code for bad usage
EXIT_UNAVAILABLE: Final = 3  # no server answered within --timeout
EXIT_TIMED_OUT: Final = 4  # --wait-timeout expired before the outcome arrived
EXIT_INTERRUPTED: Final = 130  # Ctrl-C while waiting (128 + SIGINT)

DEFAULT_ENDPOINT: Final = "tcp://127.0.0.1:5555"
DEFAULT_FEED_ENDPOINT: Final = "tcp://127.0.0.1:5556"

EXIT_HELP: Final = """\
exit status:
  0    success; for watch/wait: every operation ended Completed (or Retired)
  1    watch/wait: an operation Failed, was Aborted, Cancelled or Terminated;
       show/watch/wait: no operation with that id (never registered, or
       evicted from retention); any other refusal from the registry
  2    bad usage: unknown option, malformed operation id, unreadable certificate
  3    cannot reach the server (no answer within --timeout)
  4    watch/wait: --wait-timeout expired before the outcome arrived
  130  interrupted (Ctrl-C) while waiting; `tail --follow` exits 0 on Ctrl-C
errors are reported as one line on stderr."""


class _Fail(Exception):
    """A refusal this module raises itself: one line for stderr and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


# --- formatting --------------------------------------------------------------------------------

# C0 and C1 controls, DEL, and the bidirectional overrides/isolates that reorder a line.
_ESCAPES: Final = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *range(0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}


_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})


def _clean(text: object) -> str:
    """Text from the registry, safe to print on one terminal line."""
    return str(text).translate(_ESCAPES)


def _out(line: str = "") -> None:
    print(line, flush=True)


def _warn(command: str, message: str) -> None:
    print(f"opsreg {command}: {_clean(message)}", file=sys.stderr, flush=True)


def _json_line(value: Any) -> None:
    from actors.model import encode

    _out(encode(value, fmt="json").decode())


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:g}%"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    _out(line(headers))
    for row in rows:
        _out(line(row))


def _key_values(pairs: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        _out(f"{key.ljust(width)}  {value}")


def _detail(outcome: Any) -> str:
    """The one human fact an outcome carries (a result, an error, a reason)."""
    from actors import Aborted, Cancelled, Completed, Failed, Terminated

    if isinstance(outcome, Completed):
        prefix = "(error result) " if outcome.result.is_error else ""
        return prefix + _clean(outcome.result.content)
    if isinstance(outcome, Failed):
        return _clean(outcome.error)
    if isinstance(outcome, Aborted | Cancelled | Terminated):
        return "" if outcome.reason is None else _clean(outcome.reason)
    return ""


def _succeeded(outcome: Any) -> bool:
    from actors import Completed, Retired

    return isinstance(outcome, Completed | Retired)


# --- arguments -----------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _op_id(text: str) -> Any:
    from actors import InvalidArgument, OperationId

    try:
        return OperationId(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None


def _client_options() -> argparse.ArgumentParser:
    """Options every client subcommand takes (after the subcommand name)."""
    common = argparse.ArgumentParser(add_help=False)
    conn = common.add_argument_group("connection")
    conn.add_argument(
        "--endpoint",
        default=_env("OPSREG_ENDPOINT", DEFAULT_ENDPOINT),
        help="request endpoint (env OPSREG_ENDPOINT; default %(default)s)",
    )
    conn.add_argument(
        "--feed-endpoint",
        default=_env("OPSREG_FEED_ENDPOINT", DEFAULT_FEED_ENDPOINT),
        help="completion feed endpoint (env OPSREG_FEED_ENDPOINT; default %(default)s)",
    )
    conn.add_argument(
        "--registry",
        default=_env("OPSREG_REGISTRY", "default"),
        help="registry name (env OPSREG_REGISTRY; default %(default)s)",
    )
    conn.add_argument(
        "--timeout",
        type=_positive_float,
        default=_env("OPSREG_TIMEOUT", "5"),
        metavar="SECONDS",
        help="give up on an unanswered request after this long (env OPSREG_TIMEOUT; default 5)",
    )
    conn.add_argument(
        "--curve-server",
        metavar="FILE",
        default=os.environ.get("OPSREG_CURVE_SERVER"),
        help="the server's public certificate, enables CURVE (env OPSREG_CURVE_SERVER)",
    )
    conn.add_argument(
        "--curve-cert",
        metavar="FILE",
        default=os.environ.get("OPSREG_CURVE_CERT"),
        help="this client's secret certificate, with --curve-server (env OPSREG_CURVE_CERT)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    return common


def _curve(args: argparse.Namespace) -> dict[str, Any]:
    """RegistryClient/FeedSubscriber keyword arguments for CURVE, from --curve-*."""
    import zmq.auth

    if args.curve_server is None:
        if args.curve_cert is not None:
            raise _Fail(EXIT_USAGE, "--curve-cert needs --curve-server")
        return {}
    if args.curve_cert is None:
        raise _Fail(
            EXIT_USAGE,
            "--curve-server needs --curve-cert (the server admits only clients whose public "
            "certificate is in its --curve-allow directory)",
        )
    try:
        server_public, _ = zmq.auth.load_certificate(args.curve_server)
        public, secret = zmq.auth.load_certificate(args.curve_cert)
    except (OSError, ValueError) as exc:
        raise _Fail(EXIT_USAGE, f"cannot read certificate: {exc}") from None
    if secret is None:
        raise _Fail(EXIT_USAGE, f"{args.curve_cert} holds no secret key")
    return {"curve_server_key": server_public, "curve_keypair": (public, secret)}


@contextmanager
def _connect(args: argparse.Namespace) -> Iterator[Any]:
    """A connected RegistryClient, or Unavailable when no server answers within --timeout."""
    import zmq

    from transport.client import RegistryClient
    from transport.errors import Unavailable

    curve = _curve(args)
    try:
        client = RegistryClient(
            args.endpoint,
            registry=args.registry,
            feed_endpoint=args.feed_endpoint,
            timeout=args.timeout,
            **curve,
        )
    except zmq.ZMQError as exc:
        raise _Fail(EXIT_USAGE, f"cannot use endpoint {args.endpoint!r}: {exc}") from None
    try:
        # The client heartbeats at once; waiting for the first answer turns "nothing is
        # listening" into one clear error instead of a timeout on whatever call comes first.
        if not client.wait_connected(args.timeout):
            raise Unavailable(
                f"no answer from {args.endpoint} within {args.timeout:g}s "
                "(is `opsreg serve` running there?)"
            )
        yield client
    finally:
        client.close()


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


# --- client subcommands ------------------------------------------------------------------------


def _ls(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        ops = client.list_operations()
    if args.status:
        ops = [s for s in ops if s.status.value in args.status]
    if args.kind:
        ops = [s for s in ops if s.kind.value in args.kind]
    if args.json:
        _json_line(ops)
        return EXIT_OK
    if not ops:
        _out("no operations" + (" match" if args.status or args.kind else ""))
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
                _clean(s.display_name),
                s.kind.value,
                s.status.value,
                str(s.progress_count),
                _percent(None if s.last_progress is None else s.last_progress.percent),
                _duration(elapsed),
            ]
        )
    _table(["ID", "NAME", "KIND", "STATUS", "PROGRESS", "LAST%", "ELAPSED"], rows, right={4, 5, 6})
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from actors import Completed, Failed, NotFound

    with _connect(args) as client:
        snap = client.snapshot(args.id)
    if snap is None:
        raise NotFound(args.id)
    if args.json:
        _json_line(snap)
        return EXIT_OK
    peer = snap.peer_handle
    last = snap.last_progress
    pairs = [
        ("id", str(snap.id)),
        ("display_name", _clean(snap.display_name)),
        ("kind", snap.kind.value),
        ("status", snap.status.value),
        ("owner_session_id", _clean(snap.owner_session_id) or "-"),
        ("child_session_id", _clean(snap.child_session_id or "-")),
        ("peer_ready", "yes" if snap.peer_ready else "no"),
        (
            "peer_handle",
            "-"
            if peer is None
            else _clean(f"{peer.peer_name} (id {peer.peer_id}) at {peer.address}"),
        ),
        ("progress_count", str(snap.progress_count)),
        (
            "last_progress",
            "-" if last is None else f"{_percent(last.percent)} {_clean(last.message)}",
        ),
        ("watcher_count", str(snap.watcher_count)),
        ("created_at", _time(snap.created_at_ms)),
        ("started_at", _time(snap.started_at_ms)),
        ("completed_at", _time(snap.completed_at_ms)),
        ("elapsed", _duration(snap.elapsed_ms)),
    ]
    outcome = snap.terminal_outcome
    if outcome is not None:
        pairs.append(("outcome", outcome.status.value))
        if isinstance(outcome, Completed):
            r = outcome.result
            pairs += [
                ("result", _clean(r.content)),
                ("result_is_error", "yes" if r.is_error else "no"),
                ("result_duration", _duration(r.duration_ms)),
                ("result_tokens_used", str(r.tokens_used)),
            ]
        elif isinstance(outcome, Failed):
            pairs.append(("error", _clean(outcome.error)))
        elif _detail(outcome):
            pairs.append(("reason", _detail(outcome)))
    _key_values(pairs)
    return EXIT_OK


def _print_outcome(args: argparse.Namespace, op_id: Any, name: str, outcome: Any) -> None:
    if args.json:
        _json_line(
            {
                "operation_id": op_id,
                "display_name": name,
                "status": outcome.status,
                "terminal_outcome": outcome,
            }
        )
        return
    detail = _detail(outcome)
    line = f"{op_id}  {_clean(name)}  {outcome.status.value}"
    _out(f"{line}  {detail}" if detail else line)


def _watch(args: argparse.Namespace) -> int:
    import pykka

    from actors import NotFound

    with _connect(args) as client:
        snap = client.snapshot(args.id)
        if snap is None:
            raise NotFound(args.id)
        future = client.register_watcher(args.id)
        if not snap.status.is_terminal and not args.json:
            # Printed once the watcher is registered: from here no outcome can be missed.
            _out(f"waiting for {_clean(snap.display_name)} ({args.id}), {snap.status.value}")
        try:
            outcome = future.get(timeout=args.wait_timeout)
        except pykka.Timeout:
            raise _Fail(
                EXIT_TIMED_OUT,
                f"{args.id} has not ended after {args.wait_timeout:g}s (--wait-timeout)",
            ) from None
    _print_outcome(args, args.id, snap.display_name, outcome)
    return EXIT_OK if _succeeded(outcome) else EXIT_FAILED


def _wait(args: argparse.Namespace) -> int:
    from actors import NotFound

    ids = list(dict.fromkeys(args.ids))
    deadline = _deadline(args.wait_timeout)
    with _connect(args) as client:
        snaps = {}
        for op_id in ids:  # every id must exist before anything is awaited
            snap = client.snapshot(op_id)
            if snap is None:
                raise NotFound(op_id)
            snaps[op_id] = snap
        # One watcher per id, not ``wait_all``: a registry holds a single wait_all barrier
        # (SPEC §4), so a CLI taking it would make the application's own wait_all fail with
        # WaitAlreadyActive, or fail itself while the application holds it. Watchers are
        # per caller and unlimited, and each outcome can be printed the moment it arrives.
        arrived: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        for op_id in ids:
            future = client.register_watcher(op_id)
            future.add_done_callback(lambda f, op_id=op_id: arrived.put((op_id, f)))
        running = [op for op in ids if not snaps[op].status.is_terminal]
        if running and not args.json:
            _out(f"waiting for {len(running)} of {len(ids)} operation(s)")
        bad: collections.Counter[str] = collections.Counter()
        for done in range(len(ids)):
            try:
                op_id, future = arrived.get(timeout=_remaining(deadline))
            except queue.Empty:
                raise _Fail(
                    EXIT_TIMED_OUT,
                    f"{len(ids) - done} of {len(ids)} operation(s) have not ended after "
                    f"{args.wait_timeout:g}s (--wait-timeout)",
                ) from None
            outcome = future.get(timeout=0)  # raises what the watcher failed with
            _print_outcome(args, op_id, snaps[op_id].display_name, outcome)
            if not _succeeded(outcome):
                bad[outcome.status.value] += 1
    if not args.json:
        if bad:
            counts = ", ".join(f"{n} {status}" for status, n in sorted(bad.items()))
            _out(f"{sum(bad.values())} of {len(ids)} did not complete: {counts}")
        else:
            _out(f"all {len(ids)} completed")
    return EXIT_FAILED if bad else EXIT_OK


def _print_entry(args: argparse.Namespace, entry: Any) -> None:
    if args.json:
        _json_line(entry)
        return
    outcome = entry.terminal_outcome
    detail = _detail(outcome)
    line = (
        f"{entry.seq:>6}  {_time(entry.completed_at_ms)}  {outcome.status.value:<10}  "
        f"{entry.operation_id}  {_clean(entry.display_name)}"
    )
    _out(f"{line}  {detail}" if detail else line)


def _tail(args: argparse.Namespace) -> int:
    from transport.errors import FeedGap
    from transport.feed import FeedSubscriber

    stop = threading.Event()
    if args.follow:
        # Ctrl-C (or SIGTERM) is the normal way to end --follow: finish the line, exit 0.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    with _connect(args) as client:
        batch = client.list_since(args.from_seq)
        if batch.dropped_through > args.from_seq:
            _warn(
                "tail",
                f"warning: entries {args.from_seq + 1}..{batch.dropped_through} are no longer "
                "retained by the registry; starting after them",
            )
        for entry in batch.entries:
            _print_entry(args, entry)
        if not args.follow:
            return EXIT_OK
        cursor = (
            batch.entries[-1].seq if batch.entries else max(args.from_seq, batch.dropped_through)
        )
        curve = _curve(args)
        while not stop.is_set():
            sub = FeedSubscriber(
                args.feed_endpoint,
                args.endpoint,
                args.registry,
                after_seq=cursor,
                timeout=args.timeout,
                **curve,
            )
            try:
                while not stop.is_set():
                    # Short slices so a signal is noticed promptly.
                    entry = sub.next(timeout=0.2)
                    if entry is not None:
                        _print_entry(args, entry)
                        cursor = entry.seq
            except FeedGap as gap:
                # The follower fell behind retention: say what was lost and carry on.
                _warn("tail", f"warning: {gap}; skipping to {gap.dropped_through + 1}")
                cursor = gap.dropped_through
            finally:
                sub.close()
    return EXIT_OK


def _stats(args: argparse.Namespace) -> int:
    from actors import OperationKind, OperationStatus

    with _connect(args) as client:
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
        _json_line(stats)
        return EXIT_OK
    wait = "no"
    if diag.wait_active:
        wait = f"yes ({len(diag.wait_operation_ids)} operations, {diag.wait_request_id})"
    _key_values(
        [
            ("registry", _clean(args.registry)),
            ("operation_count", str(diag.operation_count)),
            ("active_count", str(diag.active_count)),
            ("wait_active", wait),
            ("pending_commits", str(diag.pending_commit_count)),
            ("watermark", str(feed.watermark)),
            ("dropped_through", str(feed.dropped_through)),
        ]
    )
    _out("by status:")
    for name, n in by_status.items():
        if n:
            _out(f"  {name:<12} {n:>8}")
    _out("by kind:")
    for name, n in by_kind.items():
        if n:
            _out(f"  {name:<30} {n:>8}")
    return EXIT_OK


def _keys(args: argparse.Namespace) -> int:
    import zmq.auth

    root = Path(args.dir)
    server_dir, client_dir, allow_dir = root / "server", root / "client", root / "allowed"
    server_public, server_secret = server_dir / "server.key", server_dir / "server.key_secret"
    name = args.client
    client_secret = client_dir / f"{name}.key_secret"
    for path in (client_dir / f"{name}.key", client_secret, allow_dir / f"{name}.key"):
        if path.exists():
            raise _Fail(EXIT_FAILED, f"{path} already exists; refusing to overwrite keys")
    if server_public.exists() != server_secret.exists():
        raise _Fail(EXIT_FAILED, f"{server_dir} holds only half a key pair; remove it first")
    new_server = not server_secret.exists()
    old_umask = os.umask(0o077)  # secret keys are readable by their owner only
    try:
        for d in (server_dir, client_dir, allow_dir):
            d.mkdir(parents=True, exist_ok=True)
        if new_server:
            zmq.auth.create_certificates(server_dir, "server")
        public, _secret = zmq.auth.create_certificates(client_dir, name)
        shutil.copyfile(public, allow_dir / f"{name}.key")
    finally:
        os.umask(old_umask)
    for path in (server_public, Path(public), allow_dir / f"{name}.key"):
        path.chmod(0o644)  # public halves are meant to be handed out
    paths = {
        "server_secret": str(server_secret),
        "server_public": str(server_public),
        "client_secret": str(client_secret),
        "client_public": str(public),
        "allow_dir": str(allow_dir),
        "new_server_key": new_server,
    }
    if args.json:
        _json_line(paths)
        return EXIT_OK
    made = "created" if new_server else "kept the existing"
    _out(f"{made} server key pair in {server_dir}")
    _out(f"created client key pair {name!r} in {client_dir}; its public key is in {allow_dir}")
    _out("")
    _out("start the server (keep server.key_secret on the server only):")
    _out(f"  opsreg serve --curve-secret {server_secret} --curve-allow {allow_dir}")
    _out("connect a client (give it server.key and its own key_secret):")
    _out(f"  opsreg ls --curve-server {server_public} --curve-cert {client_secret}")
    _out("  or export OPSREG_CURVE_SERVER and OPSREG_CURVE_CERT with those paths")
    _out(f"add another client with `opsreg keys {root} --client NAME`, then restart the server")
    return EXIT_OK


# --- server and example ---------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from actors import StoreError
    from transport.logsetup import install as install_logging
    from transport.server import RegistryServer, ServerConfig

    config = ServerConfig(
        endpoint=args.endpoint,
        feed_endpoint=args.feed_endpoint,
        data_dir=None if args.memory else args.data,
        synchronous=args.synchronous,
        max_completed=args.max_completed,
        max_concurrent=args.max_concurrent,
        curve_secret_file=args.curve_secret,
        curve_allow_dir=args.curve_allow,
        curve_admin_dir=args.curve_admin,
        max_clients=args.max_clients,
        heartbeat_interval=args.heartbeat,
        client_timeout=args.client_timeout,
        max_waits_per_client=args.max_waits_per_client,
        metrics=args.metrics,
        inject_commit_failures=args.inject_commit_failures,
        max_registries=args.max_registries,
        registries=tuple(args.registry) if args.registry else None,
        feed_hwm_bytes=args.feed_hwm_bytes,
    )
    install_logging(args.log_level, args.log_format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = RegistryServer(config).start()
    except StoreError as exc:
        print(f"opsreg serve: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. address in use
        print(f"opsreg serve: cannot start: {exc}", file=sys.stderr)
        return 1
    where = "memory (not durable)" if config.data_dir is None else os.path.abspath(config.data_dir)
    metrics = f", metrics on http://{server.metrics_address}/metrics" if args.metrics else ""
    print(
        f"opsreg serving requests on {server.endpoint}, feed on {server.feed_endpoint}, "
        f"data in {where}{metrics}, up to {server.max_clients} connections "
        f"(fd limit {server.fd_limit})",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        server.stop()
    print("opsreg stopped cleanly", flush=True)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """A server, a 4-process pool and a subscriber; a live progress bar, then a summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from transport.demo import run_demo

    console = Console(stderr=args.json)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=args.json,
    ) as bar:
        task = bar.add_task("completions on the feed", total=args.operations)
        report = run_demo(
            args.operations,
            args.processes,
            on_progress=lambda done, total: bar.update(task, completed=done),
        )
    if args.json:
        print(
            json.dumps(
                {
                    "operations": report.operations,
                    "outcomes": dict(report.outcomes),
                    "seconds": round(report.seconds, 3),
                    "throughput_per_s": round(report.throughput, 1),
                    "watcher_latency_ms": {
                        "p50": report.latency(0.5),
                        "p99": report.latency(0.99),
                    },
                    "feed_entries": report.feed_entries,
                    "feed_in_order": report.feed_in_order,
                    "wait_all_members": report.wait_all_members,
                }
            )
        )
    else:
        table = Table(title="opsreg demo")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for name, value in report.rows():
            table.add_row(name, value)
        console.print(table)
    return EXIT_OK if report.feed_in_order else EXIT_FAILED


def _bench(args: argparse.Namespace) -> int:
    """Run ``bench/run_all.py`` from a source checkout (JSON, table and chart)."""
    import subprocess

    script = Path(__file__).resolve().parents[1] / "bench" / "run_all.py"
    if not script.exists():
        raise _Fail(EXIT_FAILED, f"{script} not found (benchmarks live in a source checkout)")
    cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
    done = subprocess.run(cmd, cwd=script.parents[1], check=False)
    return EXIT_OK if done.returncode == 0 else EXIT_FAILED


def _example(_: argparse.Namespace) -> int:
    from transport.example import run_example

    run_example(print)
    return 0


# --- parser and entry point -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    from actors import OperationKind, OperationStatus
    from transport.logsetup import FORMATS as LOG_FORMATS
    from transport.logsetup import LEVELS as LOG_LEVELS

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="opsreg",
        description="operation-lifecycle registry",
        epilog=EXIT_HELP,
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a registry server")
    serve.add_argument("--endpoint", default=_env("OPSREG_ENDPOINT", DEFAULT_ENDPOINT))
    serve.add_argument(
        "--feed-endpoint", default=_env("OPSREG_FEED_ENDPOINT", DEFAULT_FEED_ENDPOINT)
    )
    serve.add_argument("--data", default=_env("OPSREG_DATA", "./var"), help="data directory")
    serve.add_argument("--memory", action="store_true", help="keep nothing on disk (not durable)")
    serve.add_argument(
        "--synchronous",
        choices=("full", "normal"),
        default="full",
        help="full: fsync every commit (default); normal: acknowledges terminal outcomes "
        "with no fsync at all, so a power cut can lose acknowledged outcomes",
    )
    serve.add_argument("--max-completed", type=int, default=256)
    serve.add_argument("--max-concurrent", type=int, default=None)
    serve.add_argument("--heartbeat", type=float, default=1.0, help="feed heartbeat, seconds")
    serve.add_argument(
        "--client-timeout",
        type=float,
        default=5.0,
        help="seconds of silence after which a client's waits are cancelled",
    )
    serve.add_argument(
        "--max-waits-per-client",
        type=int,
        default=10_000,
        help="pending watchers and waits one client may hold",
    )
    serve.add_argument("--curve-secret", help="server secret certificate (enables CURVE)")
    serve.add_argument("--curve-allow", help="directory of allowed client public certificates")
    serve.add_argument(
        "--curve-admin",
        metavar="DIR",
        help="public certificates that may call terminate_owner, collect_completed and "
        "cancel_wait_all (default: every allowed key)",
    )
    serve.add_argument(
        "--max-clients",
        type=int,
        metavar="N",
        help="live connections beyond which new ones are refused "
        "(default: the fd limit less an eighth, at least 64 kept back)",
    )
    serve.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus /metrics there")
    serve.add_argument(
        "--max-registries", type=int, default=512, metavar="N", help="open at once (idle close)"
    )
    serve.add_argument(
        "--registry", action="append", metavar="NAME", help="serve only NAME (repeatable)"
    )
    serve.add_argument("--feed-hwm-bytes", type=int, default=64 << 20, metavar="N", help="per SUB")
    serve.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    serve.add_argument("--log-format", choices=LOG_FORMATS, default="text", help="stderr lines")
    serve.add_argument(
        "--inject-commit-failures",
        type=float,
        default=0.0,
        metavar="RATE",
        help="chaos testing only: fail this share of journal commits on purpose",
    )
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="server, worker pool and subscriber in one command")
    demo.add_argument("--operations", type=int, default=2000)
    demo.add_argument("--processes", type=int, default=4)
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(func=_demo)

    bench = sub.add_parser("bench", help="run the benchmarks in bench/ (source checkout)")
    bench.add_argument("--quick", action="store_true", help="small sizes, under a minute each")
    bench.set_defaults(func=_bench)

    ex = sub.add_parser("example", help="run a short in-process example and print the feed")
    ex.set_defaults(func=_example)

    common = [_client_options()]

    def client_command(
        name: str, func: Callable[[argparse.Namespace], int], help: str, description: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=common,
            help=help,
            description=textwrap.fill(description, 78),
            epilog=EXIT_HELP,
            formatter_class=fmt,
        )
        p.set_defaults(func=func)
        return p

    ls = client_command(
        "ls",
        _ls,
        "list operations",
        "List operations: id, name, kind, status, progress reports, last progress percent "
        "and elapsed time, in the registry's order (by name, then id). Repeated --status "
        "or --kind options widen the filter; --status and --kind together narrow it. "
        "--json prints a JSON array of snapshots.",
    )
    ls.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in OperationStatus],
        metavar="STATUS",
        help="only operations with this status (repeatable): %(choices)s",
    )
    ls.add_argument(
        "--kind",
        action="append",
        choices=[k.value for k in OperationKind],
        metavar="KIND",
        help="only operations of this kind (repeatable): %(choices)s",
    )

    show = client_command(
        "show",
        _show,
        "show one operation",
        "Print one operation's full snapshot; --json prints it as a JSON object. "
        "An unknown id is an error (exit 1).",
    )
    show.add_argument("id", type=_op_id, metavar="ID", help="operation id")

    watch = client_command(
        "watch",
        _watch,
        "wait for one operation's outcome",
        "Wait until the operation ends and print its outcome. Exit 0 if it Completed "
        "(or Retired), 1 if it Failed, was Aborted, Cancelled or Terminated, or is unknown.",
    )
    watch.add_argument("id", type=_op_id, metavar="ID", help="operation id")
    watch.add_argument(
        "--wait-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="give up (exit 4) if the outcome has not arrived by then; default: wait forever",
    )

    wait = client_command(
        "wait",
        _wait,
        "wait for several operations' outcomes",
        "Wait until every operation ends, printing each outcome as it arrives. Exit 0 if "
        "all Completed (or Retired), 1 if any did not or an id is unknown. Uses one watcher "
        "per operation, never the registry's single wait_all barrier.",
    )
    wait.add_argument("ids", type=_op_id, nargs="+", metavar="ID", help="operation ids")
    wait.add_argument(
        "--wait-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="give up (exit 4) if not all outcomes have arrived by then; default: wait forever",
    )

    tail = client_command(
        "tail",
        _tail,
        "print the completion feed",
        "Print completion-feed entries after SEQ; with --follow keep printing new ones "
        "until Ctrl-C (exit 0). --json prints one JSON object per line.",
    )
    tail.add_argument(
        "--from",
        dest="from_seq",
        type=_seq,
        default=0,
        metavar="SEQ",
        help="print entries with seq > SEQ (default 0: everything retained)",
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")

    client_command(
        "stats",
        _stats,
        "print the registry's counters",
        "Print operation_count, active_count, the wait_all barrier, the feed watermark and "
        "retention, and counts by status and by kind; --json prints one JSON object.",
    )

    keys = sub.add_parser(
        "keys",
        help="generate CURVE key pairs for serve --curve-secret/--curve-allow",
        description=textwrap.fill(
            "Create DIR/server/server.key{,_secret} (unless present), "
            "DIR/client/NAME.key{,_secret} and DIR/allowed/NAME.key, and print how to use "
            "them. Existing client keys are never overwritten (exit 1).",
            78,
        ),
        epilog=EXIT_HELP,
        formatter_class=fmt,
    )
    keys.add_argument("dir", metavar="DIR", help="directory for the certificates")
    keys.add_argument("--client", default="client", metavar="NAME", help="client key name")
    keys.add_argument("--json", action="store_true", help="print the paths as a JSON object")
    keys.set_defaults(func=_keys)

    from transport import conformance

    conf = sub.add_parser("conformance", help="run the wire-level conformance suite on a server")
    conformance.add_arguments(conf)
    conf.set_defaults(func=lambda a: conformance.command(a, lambda line: _out(_clean(line))))
    return parser


class _OneLine(logging.Formatter):
    """Log records as one line each: a library warning must not print a traceback."""

    def formatException(self, ei: Any) -> str:
        return ""


def _quiet_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("opsreg: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    from actors import InvalidArgument, NotFound, OpsLifecycleError
    from transport.errors import Unavailable

    args = _parser().parse_args(argv)
    if args.command in ("serve", "example", "demo", "bench"):
        return int(args.func(args))
    _quiet_logging()
    try:
        return int(args.func(args))
    except _Fail as exc:
        _warn(args.command, str(exc))
        return exc.code
    except Unavailable as exc:
        _warn(args.command, str(exc))
        return EXIT_UNAVAILABLE
    except NotFound as exc:
        _warn(args.command, str(exc))
        return EXIT_FAILED
    except InvalidArgument as exc:  # e.g. a registry name the server refuses
        _warn(args.command, str(exc))
        return EXIT_USAGE
    except OpsLifecycleError as exc:
        _warn(args.command, str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _warn(args.command, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`opsreg ls | head`): stop quietly, and keep Python from
        # complaining about the unflushable stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        _warn(args.command, str(exc))
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("OPSREG_DEBUG"):
            raise
        _warn(
            args.command,
            f"unexpected error: {type(exc).__name__}: {exc} (OPSREG_DEBUG=1 for a traceback)",
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
