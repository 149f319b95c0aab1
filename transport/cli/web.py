"""``opsreg web`` (a gateway to a running server) and ``serve --http`` (one beside it).

The gateway's contract is docs/http.md. Both commands take the same HTTP options
(:func:`add_http_options`) and build the same ``GatewayConfig`` (:func:`gateway_config`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from transport.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    DefaultsFormatter,
    Fail,
    curve_options,
    host_port,
)
from transport.cli.ready import write_ready_file

__all__ = ["add_http_options", "gateway_config", "web"]


def add_http_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    """The options of the HTTP gateway (``--http`` is optional for ``serve``)."""
    g = p.add_argument_group("HTTP gateway (docs/http.md)")
    g.add_argument(
        "--http",
        metavar="HOST:PORT",
        type=host_port,
        default="127.0.0.1:8080" if required else None,
        help="serve the JSON API, the SSE feed and the dashboard there"
        + ("" if required else " (default: no HTTP)"),
    )
    g.add_argument(
        "--http-token-file",
        metavar="PATH",
        help="bearer token (first line) needed to change state; required off loopback "
        "(default: none, loopback only)",
    )
    g.add_argument(
        "--http-reads",
        choices=("open", "token"),
        default="open",
        help="whether reads (GETs, the feed) need the token too",
    )
    g.add_argument(
        "--http-registry",
        action="append",
        metavar="NAME",
        help="offer NAME in the dashboard (repeatable; default: default)",
    )
    g.add_argument(
        "--sse-heartbeat",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="seconds between the SSE feed's heartbeat comments",
    )


def gateway_config(
    args: argparse.Namespace, endpoint: str, feed_endpoint: str, **curve: Any
) -> Any:
    """The ``GatewayConfig`` the options describe (Fail with exit 2 when refused)."""
    from transport.web.config import GatewayConfig, read_token

    host, _, port = args.http.rpartition(":")
    token = None
    if args.http_token_file is not None:
        try:
            token = read_token(args.http_token_file)
        except (OSError, ValueError) as exc:
            raise Fail(EXIT_USAGE, f"--http-token-file: {exc}") from None
    config = GatewayConfig(
        endpoint=endpoint,
        feed_endpoint=feed_endpoint,
        host=host.strip("[]") or "127.0.0.1",
        port=int(port),
        registries=tuple(args.http_registry) if args.http_registry else ("default",),
        token=token,
        reads_need_token=args.http_reads == "token",
        sse_heartbeat=args.sse_heartbeat,
        **curve,
    )
    try:
        config.check()
    except ValueError as exc:
        raise Fail(EXIT_USAGE, str(exc)) from None
    return config


def start(config: Any) -> Any:
    """Start the gateway thread, or Fail (exit 1) saying why it could not listen."""
    from transport.web.run import start_gateway_thread

    try:
        return start_gateway_thread(config)
    except OSError as exc:
        raise Fail(
            EXIT_FAILED, f"cannot serve HTTP on {config.host}:{config.port}: {exc}"
        ) from None


def web(args: argparse.Namespace) -> int:
    """Run a gateway to the server at --endpoint until SIGTERM or SIGINT."""
    from transport.logsetup import install as install_logging

    config = gateway_config(args, args.endpoint, args.feed_endpoint, **curve_options(args))
    config.call_timeout = args.timeout
    install_logging(args.log_level, "text")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    handle = start(config)
    if args.ready_file is not None:
        write_ready_file(args.ready_file, {"http": handle.url, "pid": os.getpid()})
    print(
        f"opsreg web: dashboard on {handle.url}/ (API {handle.url}/docs), "
        f"registry server {config.endpoint}",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            if not handle.running:
                print("opsreg web: the gateway stopped (see the log above)", file=sys.stderr)
                return EXIT_FAILED
    finally:
        handle.stop()
    print("opsreg web stopped cleanly", flush=True)
    return EXIT_OK


def add_web_parser(sub: Any) -> None:
    """``opsreg web``'s parser."""
    import textwrap

    from transport.cli.common import DEFAULT_ENDPOINT, DEFAULT_FEED_ENDPOINT, env, positive_float

    p = sub.add_parser(
        "web",
        help="serve the JSON API, the SSE feed and the dashboard for a running server",
        description=textwrap.fill(
            "Run an HTTP gateway to the registry server at --endpoint (docs/http.md): every "
            "method over JSON, reads as GETs, the feed as Server-Sent Events, and the "
            "dashboard at /. Runs until SIGTERM or SIGINT.",
            78,
        ),
        epilog="exit status: 0 after a clean stop, 1 if it cannot listen, 2 on bad usage "
        "(a non-loopback --http without --http-token-file, an unreadable token file)",
        formatter_class=DefaultsFormatter,
    )
    conn = p.add_argument_group("registry server")
    conn.add_argument(
        "--endpoint",
        default=env("OPSREG_ENDPOINT", DEFAULT_ENDPOINT),
        help="its request endpoint (env OPSREG_ENDPOINT)",
    )
    conn.add_argument(
        "--feed-endpoint",
        default=env("OPSREG_FEED_ENDPOINT", DEFAULT_FEED_ENDPOINT),
        help="its completion feed endpoint (env OPSREG_FEED_ENDPOINT)",
    )
    conn.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="a call the server does not answer by then is 503 CallTimeout",
    )
    conn.add_argument(
        "--curve-server",
        metavar="FILE",
        default=os.environ.get("OPSREG_CURVE_SERVER"),
        help="the server's public certificate, enables CURVE (env OPSREG_CURVE_SERVER; "
        "default: none)",
    )
    conn.add_argument(
        "--curve-cert",
        metavar="FILE",
        default=os.environ.get("OPSREG_CURVE_CERT"),
        help="the gateway's secret certificate, with --curve-server (env OPSREG_CURVE_CERT; "
        "default: none)",
    )
    add_http_options(p, required=True)
    p.add_argument(
        "--ready-file",
        metavar="PATH",
        help="once listening, write the address and pid there as JSON (default: none)",
    )
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="stderr lines at this level",
    )
    p.set_defaults(func=web)
