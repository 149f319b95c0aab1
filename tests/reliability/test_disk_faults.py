"""A full disk costs no CPU: a real ``opsreg serve`` whose data directory is a full tmpfs.

Before: every failed journal append was retried at once, so an idle server with
a full disk burned a whole core. Now appends back off (5 ms doubling to 1 s).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import Internal, OutcomeUnknown
from tests.conftest import background_spec, result_for
from tests.transport.conftest import ServerProcess
from transport import RegistryClient, Unavailable

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

#: the share of one core an idle server with a failing disk may use
IDLE_CPU_LIMIT = 0.20


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (skips when mounting is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> None:
    """Write a filler file until the file system says ENOSPC."""
    chunk = b"\0" * 4096
    with open(directory / "filler", "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return


def cpu_share(pid: int, window: float = 2.0) -> float:
    """The process's CPU time (user + system) over ``window`` seconds, as a share of one core."""

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)

    start = ticks()
    threading.Event().wait(window)  # the measuring window itself, not a synchronisation
    return (ticks() - start) / os.sysconf("SC_CLK_TCK") / window


def _fail_a_terminal(cli: RegistryClient) -> BaseException:
    """Complete operations until a commit fails (the WAL may first reuse space it holds)."""
    for i in range(2000):
        spec = background_spec(f"op-{i}")
        cli.register_operation(spec)
        cli.provisioning_succeeded(spec.id)
        try:
            cli.complete_operation(spec.id, result_for(spec.id, "x" * 2000))
        except (Internal, Unavailable) as exc:
            return exc
    raise AssertionError("the full disk never failed a commit")


def test_idle_server_on_a_full_disk_uses_little_cpu(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        server = ServerProcess(disk / "data").start()
        try:
            with RegistryClient(server.endpoint, timeout=20) as cli:
                cli.register_operation(background_spec("warm-up"))
                fill(disk)
                failure = _fail_a_terminal(cli)
                assert not isinstance(failure, OutcomeUnknown), failure
                # A registration now waits in the journal buffer, its append failing.
                cli.register_operation(background_spec("pending append"))
                assert server.proc is not None
                share = cpu_share(server.proc.pid)
                print(f"idle CPU on a full disk: {share:.1%} of a core ({failure!r})")
                assert share < IDLE_CPU_LIMIT, f"idle server used {share:.0%} of a core"
                # Space comes back: the buffered appends are written, terminals succeed.
                (disk / "filler").unlink()
                spec = background_spec("after")
                cli.register_operation(spec)
                cli.provisioning_succeeded(spec.id)
                cli.complete_operation(spec.id, result_for(spec.id))
        finally:
            server.stop()
