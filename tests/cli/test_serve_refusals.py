"""``opsreg serve`` refusing to start: one line naming the cause (real processes)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.transport.conftest import ROOT

pytestmark = pytest.mark.timeout(90)

LOCAL = ["--endpoint", "tcp://127.0.0.1:0", "--feed-endpoint", "tcp://127.0.0.1:0"]


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transport.cli", "serve", *LOCAL, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def the_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("opsreg serve:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_a_busy_metrics_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        proc = serve("--memory", "--metrics", address)
    assert proc.returncode == 1
    line = the_error(proc)
    assert f"cannot serve metrics on {address}" in line and "in use" in line


def test_a_data_path_that_is_a_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    proc = serve("--data", str(path))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"opsreg serve: --data {path} is a file, not a directory "
        "(give a directory, or a path to create one at)"
    ]
