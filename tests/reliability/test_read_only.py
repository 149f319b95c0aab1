"""A data directory that turns read-only under a running server (EROFS from the shim).

The store cannot even be reopened while it lasts: the server must refuse calls
with ``Unavailable``, retry with capped backoff (cheap: measured from
``/proc/PID/stat``), and once writes work again answer from disk — what a
restart after ``kill -9`` answers too.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from actors import Internal, OperationStatus
from tests.conftest import background_spec, result_for
from tests.eio.shim import eio_shim  # noqa: F401 - the fixture
from tests.reliability.test_disk_faults import IDLE_CPU_LIMIT, cpu_share
from tests.reliability.test_fsync_eio import _completed_marker
from tests.transport.conftest import ServerProcess
from transport import RegistryClient, Unavailable

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]


def _snapshot_when_served(cli: RegistryClient, op, within: float = 20.0):  # type: ignore[no-untyped-def]
    """The snapshot once the server serves again (it says ``Unavailable`` until then)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return cli.snapshot(op)
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            threading.Event().wait(0.05)  # the server asked us to retry later


def test_read_only_data_directory_is_cheap_and_recovers_from_disk(
    tmp_path: Path,
    eio_shim: Path,  # noqa: F811
) -> None:
    control = tmp_path / "erofs-on"
    env = {**os.environ, "LD_PRELOAD": str(eio_shim), "OPSREG_EROFS_CONTROL": str(control)}
    data = tmp_path / "data"
    server = ServerProcess(data, env=env).start()
    restarted: ServerProcess | None = None
    try:
        with RegistryClient(server.endpoint, timeout=20) as cli:
            spec = background_spec("read-only")
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
            _completed_marker(cli)  # the registration is on disk before the disk turns
            control.touch()
            with pytest.raises((Unavailable, Internal)) as told_caller:
                cli.complete_operation(spec.id, result_for(spec.id))
            assert server.proc is not None
            share = cpu_share(server.proc.pid)
            print(f"read-only: caller told {told_caller.value!r}; idle CPU {share:.1%} of a core")
            assert share < IDLE_CPU_LIMIT, f"idle server used {share:.0%} of a core"
            control.unlink()
            snap = _snapshot_when_served(cli, spec.id)
            told = snap.status, [e.seq for e in cli.list_since(0).entries]
            if snap.status is OperationStatus.RUNNING:
                cli.complete_operation(spec.id, result_for(spec.id, "after"))
                told = OperationStatus.COMPLETED, [1, 2]
                assert cli.snapshot(spec.id).status is OperationStatus.COMPLETED
        server.kill9()
        restarted = ServerProcess(data).start()
        with RegistryClient(restarted.endpoint, timeout=20) as cli:
            snap = cli.snapshot(spec.id)
            assert snap is not None
            assert (snap.status, [e.seq for e in cli.list_since(0).entries]) == told
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
