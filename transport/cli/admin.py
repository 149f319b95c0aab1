"""Administration subcommands: serve, keys, bench."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from transport.cli import web as web_cli
from transport.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Fail
from transport.cli.output import json_line, out
from transport.cli.ready import write_ready_file


def keys(args: argparse.Namespace) -> int:
    import zmq.auth

    root = Path(args.dir)
    server_dir, client_dir, allow_dir = root / "server", root / "client", root / "allowed"
    server_public, server_secret = server_dir / "server.key", server_dir / "server.key_secret"
    name = args.client
    client_secret = client_dir / f"{name}.key_secret"
    for path in (client_dir / f"{name}.key", client_secret, allow_dir / f"{name}.key"):
        if path.exists():
            raise Fail(EXIT_FAILED, f"{path} already exists; refusing to overwrite keys")
    if server_public.exists() != server_secret.exists():
        raise Fail(EXIT_FAILED, f"{server_dir} holds only half a key pair; remove it first")
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
        json_line(paths)
        return EXIT_OK
    made = "created" if new_server else "kept the existing"
    out(f"{made} server key pair in {server_dir}")
    out(f"created client key pair {name!r} in {client_dir}; its public key is in {allow_dir}")
    out("")
    out("start the server (keep server.key_secret on the server only):")
    out(f"  opsreg serve --curve-secret {server_secret} --curve-allow {allow_dir}")
    out("connect a client (give it server.key and its own key_secret):")
    out(f"  opsreg ls --curve-server {server_public} --curve-cert {client_secret}")
    out("  or export OPSREG_CURVE_SERVER and OPSREG_CURVE_CERT with those paths")
    out(f"add another client with `opsreg keys {root} --client NAME`, then restart the server")
    return EXIT_OK


# --- server and example ---------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
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
    if not args.memory and os.path.exists(args.data) and not os.path.isdir(args.data):
        print(
            f"opsreg serve: --data {args.data} is a file, not a directory "
            "(give a directory, or a path to create one at)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    gateway_args = None
    if args.http is not None:
        if args.curve_secret is not None:
            print(
                "opsreg serve: --http with CURVE: run `opsreg web` with a client key instead",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            gateway_args = web_cli.gateway_config(args, config.endpoint, config.feed_endpoint)
        except Fail as exc:
            print(f"opsreg serve: {exc}", file=sys.stderr)
            return exc.code
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
    gateway = None
    if gateway_args is not None:
        gateway_args.endpoint, gateway_args.feed_endpoint = server.endpoint, server.feed_endpoint
        try:
            gateway = web_cli.start(gateway_args)
        except Fail as exc:
            server.stop()
            print(f"opsreg serve: {exc}", file=sys.stderr)
            return exc.code
    data = None if config.data_dir is None else os.path.abspath(config.data_dir)
    if args.ready_file is not None:
        ready = {
            "endpoint": server.endpoint,
            "feed_endpoint": server.feed_endpoint,
            "pid": os.getpid(),
            "data": data,
            "metrics": server.metrics_address if args.metrics else None,
            "http": None if gateway is None else gateway.url,
        }
        try:
            write_ready_file(args.ready_file, ready)
        except OSError as exc:
            if gateway is not None:
                gateway.stop()
            server.stop()
            print(f"opsreg serve: cannot write --ready-file: {exc}", file=sys.stderr)
            return 1
    where = "memory (not durable)" if data is None else data
    metrics = f", metrics on http://{server.metrics_address}/metrics" if args.metrics else ""
    if gateway is not None:
        metrics += f", dashboard on {gateway.url}/"
    print(
        f"opsreg serving requests on {server.endpoint}, feed on {server.feed_endpoint}, "
        f"data in {where}{metrics}, up to {server.max_clients} connections "
        f"(fd limit {server.fd_limit})",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        if gateway is not None:
            gateway.stop()
        server.stop()
    print("opsreg stopped cleanly", flush=True)
    return 0


def bench(args: argparse.Namespace) -> int:
    """Run ``bench/run_all.py`` from a source checkout (JSON, table and chart)."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"
    if not script.exists():
        raise Fail(EXIT_FAILED, f"{script} not found (benchmarks live in a source checkout)")
    cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
    done = subprocess.run(cmd, cwd=script.parents[1], check=False)
    return EXIT_OK if done.returncode == 0 else EXIT_FAILED
