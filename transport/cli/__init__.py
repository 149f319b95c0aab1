"""The ``opsreg`` command (the README). The only module that writes to the terminal.

``serve`` and ``example`` run a server or an in-process walk-through; every other
subcommand is a client of a running server::

    opsreg ls [--status S ...] [--kind K ...]     opsreg show ID
    opsreg watch ID                               opsreg wait ID...
    opsreg tail [--start now|oldest | --after SEQ] [--follow]
    opsreg stats                                  opsreg keys DIR
    opsreg cancel ID [--reason TEXT]              opsreg fail ID --error TEXT
    opsreg terminate (--owner OWNER | --all)      opsreg ls --owner OWNER
    opsreg web [--http HOST:PORT]                 (the JSON API and dashboard, docs/http.md)

Human-readable output by default, ``--json`` for scripts. Tables are plain
fixed-width text rather than ``rich``: the columns are simple and the command
needs no dependency beyond the library's own. On a terminal (or with ``COLUMNS``
set) a table is cut to its width, long names first, with an ellipsis, and never
wraps; a pipe gets whole lines, and ``--json`` is never cut. Text that comes from the registry
(names, results, errors) is printed with control characters escaped, so an
operation's name cannot move the cursor or forge extra lines.

The package, by concern (only this package writes to the terminal):

- ``__init__``: the parser and ``main`` (dispatch and the exit status of each error);
- ``output``: escaping, times, durations, tables;
- ``common``: exit codes, ``Fail``, argument types, the client options, ``connect``;
- ``probe``: why a handshake failed (CURVE keys missing or refused), for ``connect``;
- ``client_commands``: ls, show, watch, wait, tail, stats;
- ``operator``: cancel, fail, terminate;
- ``admin``: serve, keys, bench;
- ``web``: web, and serve's ``--http`` options;
- ``demo``: demo and example.

A new subcommand is a function ``(args) -> exit status`` in its own module, one
``sub.add_parser`` entry in ``_parser`` below, and, if it reports its own errors
rather than through ``main``'s one-line refusals, its name in ``_SELF_REPORTING``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from transport import conformance
from transport.cli import admin, client_commands, demo, operator
from transport.cli import web as web_cli
from transport.cli.common import (
    DEFAULT_ENDPOINT,
    DEFAULT_FEED_ENDPOINT,
    EXIT_FAILED,
    EXIT_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    DefaultsFormatter,
    Fail,
    client_options,
    env,
    host_port,
    parse_operation_id,
    parse_seq,
    positive_float,
)
from transport.cli.output import clean, out, warn

__all__ = ["main"]

# Subcommands that print their own errors; the rest end through main's one-line refusals.
_SELF_REPORTING = frozenset({"serve", "example", "demo", "bench"})

# --- parser and entry point -------------------------------------------------------------------------


class _OneLineErrors(argparse.ArgumentParser):
    """Bad usage is one line on stderr (exit 2), pointing at ``--help`` for the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from actors import OperationKind, OperationStatus
    from transport.logsetup import FORMATS as LOG_FORMATS
    from transport.logsetup import LEVELS as LOG_LEVELS

    fmt = argparse.RawDescriptionHelpFormatter
    parser = _OneLineErrors(
        prog="opsreg",
        description="operation-lifecycle registry",
        epilog=EXIT_HELP,
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run a registry server",
        description="Run a registry server until SIGTERM or SIGINT (README: Configuration). "
        "Exit 0 after a clean shutdown, 1 if it cannot start, 2 on bad usage.",
        formatter_class=DefaultsFormatter,
    )
    serve.add_argument(
        "--endpoint",
        default=env("OPSREG_ENDPOINT", DEFAULT_ENDPOINT),
        help="request endpoint (env OPSREG_ENDPOINT)",
    )
    serve.add_argument(
        "--feed-endpoint",
        default=env("OPSREG_FEED_ENDPOINT", DEFAULT_FEED_ENDPOINT),
        help="completion feed endpoint (env OPSREG_FEED_ENDPOINT)",
    )
    serve.add_argument(
        "--data", default=env("OPSREG_DATA", "./var"), help="data directory (env OPSREG_DATA)"
    )
    serve.add_argument("--memory", action="store_true", help="keep nothing on disk (not durable)")
    serve.add_argument(
        "--synchronous",
        choices=("full", "normal"),
        default="full",
        help="full: fsync every commit (the default); normal: acknowledges terminal outcomes "
        "with no fsync at all, so a power cut can lose acknowledged outcomes",
    )
    serve.add_argument(
        "--max-completed", type=int, default=256, metavar="N", help="terminal operations retained"
    )
    serve.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        metavar="N",
        help="non-terminal operations at once (default: no limit)",
    )
    serve.add_argument(
        "--heartbeat", type=float, default=1.0, metavar="SECONDS", help="feed heartbeat"
    )
    serve.add_argument(
        "--client-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds of silence after which a client's waits are cancelled",
    )
    serve.add_argument(
        "--max-waits-per-client",
        type=int,
        default=10_000,
        metavar="N",
        help="pending watchers and waits one client may hold",
    )
    serve.add_argument(
        "--curve-secret",
        metavar="FILE",
        help="server secret certificate (enables CURVE; default: none, no encryption)",
    )
    serve.add_argument(
        "--curve-allow",
        metavar="DIR",
        help="directory of allowed client public certificates (default: none)",
    )
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
    serve.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        type=host_port,
        help="serve Prometheus /metrics there (default: no metrics)",
    )
    serve.add_argument(
        "--max-registries", type=int, default=512, metavar="N", help="open at once (idle close)"
    )
    serve.add_argument(
        "--registry",
        action="append",
        metavar="NAME",
        help="serve only NAME (repeatable; default: any name)",
    )
    serve.add_argument(
        "--feed-hwm-bytes",
        type=int,
        default=64 << 20,
        metavar="N",
        help="feed bytes queued per subscriber",
    )
    serve.add_argument(
        "--ready-file",
        metavar="PATH",
        help="once serving, write the endpoints, pid, data directory and metrics address "
        "there as JSON (atomically, before the banner line; default: none)",
    )
    serve.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="stderr lines at this level"
    )
    serve.add_argument("--log-format", choices=LOG_FORMATS, default="text", help="stderr lines")
    serve.add_argument(
        "--inject-commit-failures",
        type=float,
        default=0.0,
        metavar="RATE",
        help="chaos testing only: fail this share of journal commits on purpose",
    )
    web_cli.add_http_options(serve, required=False)
    serve.set_defaults(func=admin.serve)

    walkthrough = sub.add_parser(
        "demo",
        help="server, worker pool and subscriber in one command",
        description="Start a server, a worker pool and a subscriber; run OPERATIONS; "
        "print a summary.",
        formatter_class=DefaultsFormatter,
    )
    walkthrough.add_argument(
        "--operations", type=int, default=2000, metavar="N", help="operations to run"
    )
    walkthrough.add_argument(
        "--processes", type=int, default=4, metavar="N", help="worker processes"
    )
    walkthrough.add_argument("--json", action="store_true", help="print the summary as JSON")
    walkthrough.set_defaults(func=demo.demo)

    bench = sub.add_parser("bench", help="run the benchmarks in bench/ (source checkout)")
    bench.add_argument("--quick", action="store_true", help="small sizes, under a minute each")
    bench.set_defaults(func=admin.bench)

    ex = sub.add_parser("example", help="run a short in-process example and print the feed")
    ex.set_defaults(func=demo.example)

    common: list[Any] = [client_options()]  # parents of any parser class

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
        client_commands.ls,
        "list operations",
        "List operations: id, name, kind, status, progress reports, last progress percent "
        "and elapsed time, in the registry's order (by name, then id). Repeated --status "
        "or --kind options widen the filter; --status, --kind and --owner together narrow it. "
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

    ls.add_argument("--owner", metavar="OWNER", help="only operations of this owner_session_id")

    show = client_command(
        "show",
        client_commands.show,
        "show one operation",
        "Print one operation's full snapshot; --json prints it as a JSON object. "
        "An unknown id is an error (exit 1).",
    )
    show.add_argument("id", type=parse_operation_id, metavar="ID", help="operation id")

    watch = client_command(
        "watch",
        client_commands.watch,
        "wait for one operation's outcome",
        "Wait until the operation ends and print its outcome. Exit 0 if it Completed "
        "(or Retired), 1 if it Failed, was Aborted, Cancelled or Terminated, or is unknown.",
    )
    watch.add_argument("id", type=parse_operation_id, metavar="ID", help="operation id")
    watch.add_argument(
        "--wait-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="give up (exit 4) if the outcome has not arrived by then; default: wait forever",
    )

    wait = client_command(
        "wait",
        client_commands.wait,
        "wait for several operations' outcomes",
        "Wait until every operation ends, printing each outcome as it arrives. Exit 0 if "
        "all Completed (or Retired), 1 if any did not or an id is unknown. Uses one watcher "
        "per operation, never the registry's single wait_all barrier.",
    )
    wait.add_argument("ids", type=parse_operation_id, nargs="+", metavar="ID", help="operation ids")
    wait.add_argument(
        "--wait-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="give up (exit 4) if not all outcomes have arrived by then; default: wait forever",
    )

    tail = client_command(
        "tail",
        client_commands.tail,
        "print the completion feed",
        "Print completion-feed entries from a start position: --start oldest (the oldest "
        "entry the registry still holds; the default without --follow), --start now (entries "
        "completed from now on; the default with --follow, like tail -f) or --after SEQ "
        "(resume: entries with seq > SEQ). With --follow keep printing new ones until Ctrl-C "
        "(exit 0). --json prints one JSON object per line.",
    )
    where = tail.add_mutually_exclusive_group()
    where.add_argument(
        "--start",
        choices=["now", "oldest"],
        default=None,
        help="now: entries completed from now on (needs --follow); oldest: from the oldest "
        "retained entry",
    )
    where.add_argument(
        "--after",
        "--from",
        dest="after_seq",
        type=parse_seq,
        default=None,
        metavar="SEQ",
        help="resume after a saved seq: entries with seq > SEQ (a warning names what the "
        "registry no longer holds)",
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")

    client_command(
        "stats",
        client_commands.stats,
        "print the registry's counters",
        "Print operation_count, active_count, the wait_all barrier, the feed watermark and "
        "retention, and counts by status and by kind; --json prints one JSON object.",
    )

    operator.add_parsers(client_command, parse_operation_id)

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
    keys.set_defaults(func=admin.keys)

    conf = sub.add_parser(
        "conformance",
        help="run the wire-level conformance suite against a running server",
        epilog=EXIT_HELP,
        formatter_class=fmt,
    )
    conformance.add_arguments(conf)
    conf.set_defaults(func=lambda a: conformance.command(a, lambda line: out(clean(line))))

    methods = sub.add_parser(
        "methods",
        help="print the registry's method table (docs/protocol.md section 6) as Markdown",
        epilog=EXIT_HELP,
        formatter_class=fmt,
    )
    methods.set_defaults(func=_methods)
    web_cli.add_web_parser(sub)
    return parser


def _methods(_: argparse.Namespace) -> int:
    from actors.calls import method_table_markdown

    out(method_table_markdown().rstrip("\n"))
    return 0


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
    if args.command in _SELF_REPORTING:
        return int(args.func(args))
    _quiet_logging()
    try:
        return int(args.func(args))
    except Fail as exc:
        warn(args.command, str(exc))
        return exc.code
    except Unavailable as exc:
        warn(args.command, str(exc))
        return EXIT_UNAVAILABLE
    except NotFound as exc:
        warn(args.command, str(exc))
        return EXIT_FAILED
    except InvalidArgument as exc:  # e.g. a registry name the server refuses
        warn(args.command, str(exc))
        return EXIT_USAGE
    except OpsLifecycleError as exc:
        warn(args.command, str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        warn(args.command, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`opsreg ls | head`): stop quietly, and keep Python from
        # complaining about the unflushable stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        warn(args.command, str(exc))
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("OPSREG_DEBUG"):
            raise
        warn(
            args.command,
            f"unexpected error: {type(exc).__name__}: {exc} (OPSREG_DEBUG=1 for a traceback)",
        )
        return EXIT_FAILED
