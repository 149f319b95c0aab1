"""The ``opsreg`` command. The only module that writes to the terminal."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _serve(args: argparse.Namespace) -> int:
    from actors import StoreError
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
        heartbeat_interval=args.heartbeat,
        client_timeout=args.client_timeout,
    )
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
    print(
        f"opsreg serving requests on {server.endpoint}, feed on {server.feed_endpoint}, "
        f"data in {where}",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        server.stop()
    print("opsreg stopped cleanly", flush=True)
    return 0


def _example(_: argparse.Namespace) -> int:
    from transport.example import run_example

    run_example(print)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opsreg", description="operation-lifecycle registry")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a registry server")
    serve.add_argument("--endpoint", default=_env("OPSREG_ENDPOINT", "tcp://127.0.0.1:5555"))
    serve.add_argument(
        "--feed-endpoint", default=_env("OPSREG_FEED_ENDPOINT", "tcp://127.0.0.1:5556")
    )
    serve.add_argument("--data", default=_env("OPSREG_DATA", "./var"), help="data directory")
    serve.add_argument("--memory", action="store_true", help="keep nothing on disk (not durable)")
    serve.add_argument("--synchronous", choices=("full", "normal"), default="full")
    serve.add_argument("--max-completed", type=int, default=256)
    serve.add_argument("--max-concurrent", type=int, default=None)
    serve.add_argument("--heartbeat", type=float, default=1.0, help="feed heartbeat, seconds")
    serve.add_argument(
        "--client-timeout",
        type=float,
        default=5.0,
        help="seconds of silence after which a client's waits are cancelled",
    )
    serve.add_argument("--curve-secret", help="server secret certificate (enables CURVE)")
    serve.add_argument("--curve-allow", help="directory of allowed client public certificates")
    serve.set_defaults(func=_serve)

    ex = sub.add_parser("example", help="run a short in-process example and print the feed")
    ex.set_defaults(func=_example)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
