"""What every subcommand shares: exit codes, refusals, argument types, connecting."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
       show/watch/wait/cancel/fail: no operation with that id (never
       registered, or evicted from retention); cancel/fail: it has already
       ended; any other refusal from the registry
  2    bad usage: unknown option, malformed operation id, unreadable certificate
  3    cannot reach the server (no answer within --timeout)
  4    watch/wait: --wait-timeout expired before the outcome arrived
  130  interrupted (Ctrl-C) while waiting; `tail --follow` exits 0 on Ctrl-C
errors are reported as one line on stderr."""


class Fail(Exception):
    """A refusal the command raises itself: one line for stderr and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that names every option's default: ``(default: X)`` appended unless the help
    already says it; a flag's default is ``off``. An option whose default is None must
    say in its help what happens without it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or action.default is argparse.SUPPRESS
            or action.default is None
        ):
            return text
        if action.default is False:
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


# --- arguments -----------------------------------------------------------------------------------


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def parse_seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def host_port(text: str) -> str:
    """``HOST:PORT`` with a numeric port in 0..65535 (0: any free port; no HOST: 127.0.0.1)."""
    _host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT with a port number 0..65535, got {text!r}"
        )
    return text


def parse_operation_id(text: str) -> Any:
    from actors import InvalidArgument, OperationId

    try:
        return OperationId(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None


def client_options() -> argparse.ArgumentParser:
    """Options every client subcommand takes (after the subcommand name)."""
    common = argparse.ArgumentParser(add_help=False)
    conn = common.add_argument_group("connection")
    conn.add_argument(
        "--endpoint",
        default=env("OPSREG_ENDPOINT", DEFAULT_ENDPOINT),
        help="request endpoint (env OPSREG_ENDPOINT; default %(default)s)",
    )
    conn.add_argument(
        "--feed-endpoint",
        default=env("OPSREG_FEED_ENDPOINT", DEFAULT_FEED_ENDPOINT),
        help="completion feed endpoint (env OPSREG_FEED_ENDPOINT; default %(default)s)",
    )
    conn.add_argument(
        "--registry",
        default=env("OPSREG_REGISTRY", "default"),
        help="registry name (env OPSREG_REGISTRY; default %(default)s)",
    )
    conn.add_argument(
        "--timeout",
        type=positive_float,
        default=env("OPSREG_TIMEOUT", "5"),
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


def curve_options(args: argparse.Namespace) -> dict[str, Any]:
    """RegistryClient/FeedSubscriber keyword arguments for CURVE, from --curve-*."""
    import zmq.auth

    if args.curve_server is None:
        if args.curve_cert is not None:
            raise Fail(EXIT_USAGE, "--curve-cert needs --curve-server")
        return {}
    if args.curve_cert is None:
        raise Fail(
            EXIT_USAGE,
            "--curve-server needs --curve-cert (the server admits only clients whose public "
            "certificate is in its --curve-allow directory)",
        )
    try:
        server_public, _ = zmq.auth.load_certificate(args.curve_server)
        public, secret = zmq.auth.load_certificate(args.curve_cert)
    except (OSError, ValueError) as exc:
        raise Fail(EXIT_USAGE, f"cannot read certificate: {exc}") from None
    if secret is None:
        raise Fail(EXIT_USAGE, f"{args.curve_cert} holds no secret key")
    return {"curve_server_key": server_public, "curve_keypair": (public, secret)}


@contextmanager
def connect(args: argparse.Namespace) -> Iterator[Any]:
    """A connected RegistryClient, or Unavailable when no server answers within --timeout."""
    import zmq

    from transport.client import RegistryClient
    from transport.errors import Unavailable

    curve = curve_options(args)
    try:
        client = RegistryClient(
            args.endpoint,
            registry=args.registry,
            timeout=args.timeout,
            **curve,
        )
    except zmq.ZMQError as exc:
        raise Fail(EXIT_USAGE, f"cannot use endpoint {args.endpoint!r}: {exc}") from None
    try:
        # The client heartbeats at once; waiting for the first answer turns "nothing is
        # listening" into one clear error instead of a timeout on whatever call comes first.
        if not client.wait_connected(args.timeout):
            from transport.cli.probe import handshake_hint

            # A refused connection ends the look at once; a slow handshake gets 2-5 s.
            hint = handshake_hint(args.endpoint, curve, min(5.0, max(2.0, args.timeout)))
            raise Unavailable(
                f"no answer from {args.endpoint} within {args.timeout:g}s: {hint}"
                if hint
                else f"no answer from {args.endpoint} within {args.timeout:g}s "
                "(is `opsreg serve` running there?)"
            )
        yield client
    finally:
        client.close()


def deadline_in(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


def remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
