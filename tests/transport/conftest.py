"""Servers for transport tests: in-process (threads) or a real ``opsreg serve`` process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from transport import RegistryServer, ServerConfig
from transport.cli.ready import await_ready

ROOT = Path(__file__).resolve().parents[2]
#: The banner's shape (tests that start ``opsreg serve`` themselves check it); a
#: ``ServerProcess`` learns its endpoints from ``--ready-file`` instead.
BANNER = re.compile(r"serving requests on (\S+), feed on (\S+),")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RegistryServer]:
    srv = RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "data"),
            heartbeat_interval=0.2,
            client_timeout=1.0,
        )
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


class ServerProcess:
    """``opsreg serve`` in a child process; endpoints read from its ``--ready-file``.

    Its stdout and stderr are drained by threads from the start (the server logs at
    ``info``: an unread pipe would fill and block it); the log lines are kept in ``log``.
    """

    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra = list(extra)
        self.env = env
        self.endpoint = "tcp://127.0.0.1:0"
        self.feed_endpoint = "tcp://127.0.0.1:0"
        self.proc: subprocess.Popen[str] | None = None
        self.ready_file = data_dir.parent / f"{data_dir.name}.ready.json"
        #: every line the server wrote to stderr, across restarts
        self.log: list[str] = []
        #: the ready line of the last start
        self.banner = ""

    def start(self) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "transport.cli",
            "serve",
            "--endpoint",
            self.endpoint,
            "--feed-endpoint",
            self.feed_endpoint,
            "--data",
            str(self.data_dir),
            "--ready-file",
            str(self.ready_file),
            *self.extra,
        ]
        self.ready_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )
        ready, line = await_ready(self.proc, self.ready_file)
        if ready is None:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"server did not start: {line!r} {err!r}")
        self.banner = line
        # Keep the same ports on restart.
        self.endpoint, self.feed_endpoint = ready["endpoint"], ready["feed_endpoint"]
        for stream, into in ((self.proc.stdout, []), (self.proc.stderr, self.log)):
            threading.Thread(target=_drain, args=(stream, into), daemon=True).start()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


def _drain(stream: Any, into: list[str]) -> None:
    for line in stream:
        into.append(line)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    sp = ServerProcess(tmp_path / "data").start()
    try:
        yield sp
    finally:
        sp.stop()
