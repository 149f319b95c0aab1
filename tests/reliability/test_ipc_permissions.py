"""An ipc endpoint is not reachable by another user: its directory is the owner's alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from transport import RegistryClient, RegistryServer, ServerConfig

pytestmark = pytest.mark.timeout(60)

NOBODY = 65534


def _as_nobody(script: str) -> str:
    done = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip()


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A parent directory every user may traverse, so only opsreg's own mode protects."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    parent = Path(tempfile.mkdtemp(prefix="opsreg-ipc-"))
    parent.chmod(0o755)
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_another_user_cannot_reach_the_ipc_socket(open_parent: Path) -> None:
    control = open_parent / "control"
    control.mkdir(mode=0o755)
    (control / "probe").touch()
    assert _as_nobody(f"test -e {control}/probe && echo visible || echo hidden") == "visible"

    sockets = open_parent / "sockets"
    config = ServerConfig(
        endpoint=f"ipc://{sockets}/requests",
        feed_endpoint=f"ipc://{sockets}/feed",
        data_dir=str(open_parent / "data"),
    )
    with RegistryServer(config) as srv, RegistryClient(srv.endpoint, timeout=10) as owner:
        assert owner.watermark() == 0
        seen = _as_nobody(f"test -e {sockets}/requests && echo visible || echo hidden")
        assert seen == "hidden"
        assert oct(sockets.stat().st_mode & 0o777) == oct(0o700)
