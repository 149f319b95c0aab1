"""The conformance suite passes against this project's server and fails against a broken one."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from tests.transport.conftest import ROOT, ServerProcess
from transport import RegistryServer, ServerConfig, codec
from transport.conformance import CHECKS, add_arguments, command, run

pytestmark = pytest.mark.timeout(120)

SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$")


def test_the_suite_passes_against_the_server_in_process(tmp_path: Path) -> None:
    with RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "data"),
            heartbeat_interval=0.2,
            max_concurrent=64,  # so the MaxConcurrentExceeded check runs instead of skipping
        )
    ) as server:
        report = run(server.endpoint, server.feed_endpoint, timeout=10)
    problems = [f"{r.name}: {r.detail}" for r in report.results if r.result != "pass"]
    assert problems == []
    assert report.passed == len(CHECKS)
    assert report.registry.startswith("conformance-")


def test_opsreg_conformance_exits_0_against_a_server_process(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--heartbeat", "0.2").start()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "transport.cli",
                "conformance",
                server.endpoint,
                "--feed-endpoint",
                server.feed_endpoint,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )
    finally:
        server.stop()
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines) == len(CHECKS) + 1  # one line per check, then the summary
    match = SUMMARY.match(lines[-1])
    assert match is not None, lines[-1]
    # Without --max-concurrent the server has no limit: that one check is skipped.
    assert match.groups() == (str(len(CHECKS) - 1), "0", "1")
    assert [line for line in lines if line.startswith("skip")] == [
        "skip MaxConcurrentExceeded at the server's limit: the server sets no max_concurrent limit"
    ]


class BrokenServer:
    """A ROUTER that answers pings like a server but says OK (nil) to everything else."""

    def __init__(self) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(20):
                continue
            identity, *frames = self.sock.recv_multipart()
            try:
                requests = codec.decode_requests(frames[0])
            except Exception:
                continue  # a malformed frame goes unanswered
            for req in requests:
                if req.method == "ping":
                    reply = codec.encode_reply(req.req_id, codec.PONG, "broken-epoch")
                else:
                    reply = codec.encode_reply(req.req_id, codec.OK, None)
                self.sock.send_multipart([identity, reply])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def broken() -> Iterator[BrokenServer]:
    srv = BrokenServer()
    try:
        yield srv
    finally:
        srv.close()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_suite_fails_against_a_server_giving_wrong_replies(broken: BrokenServer) -> None:
    lines: list[str] = []
    code = command(_args(broken.endpoint, "--timeout", "0.2"), lines.append)
    assert code == 1
    match = SUMMARY.match(lines[-1])
    assert match is not None, lines[-1]
    assert int(match.group(1)) + int(match.group(2)) + int(match.group(3) or 0) == len(CHECKS)
    assert int(match.group(2)) > len(CHECKS) // 2
    failures = [line for line in lines if line.startswith("FAIL")]
    assert any(
        line.startswith("FAIL NotFound for an unknown id: expected NotFound") for line in failures
    )
    assert any("method table: every method answered" in line for line in failures)
    assert lines[0].startswith("ok   ping: PONG echoes the req_id")  # pings are right


def test_json_summary_names_each_failure(broken: BrokenServer) -> None:
    lines: list[str] = []
    code = command(_args(broken.endpoint, "--timeout", "0.2", "--json"), lines.append)
    assert code == 1
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["failed"] > 0 and summary["passed"] >= 1
    by_name = {c["name"]: c for c in summary["checks"]}
    assert len(by_name) == len(CHECKS)
    assert by_name["AlreadyRegistered"]["result"] == "fail"
    assert by_name["AlreadyRegistered"]["detail"]
