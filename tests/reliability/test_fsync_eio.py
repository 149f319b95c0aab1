"""A real ``EIO`` from ``fsync`` (LD_PRELOAD shim) under a real ``opsreg serve``.

SQLite has written the commit frame when ``fdatasync`` fails, so the outcome is
unknown, not "not done": the caller must be told ``OutcomeUnknown``, and once the
disk works again the server must answer from disk — the same thing a restart
after ``kill -9`` answers.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from actors import Completed, OperationStatus, OutcomeUnknown
from tests.conftest import background_spec, result_for
from tests.eio.shim import eio_shim  # noqa: F401 - the fixture
from tests.transport.conftest import ServerProcess
from transport import FeedSubscriber, RegistryClient, Unavailable

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]


def _told(cli: RegistryClient, op) -> tuple[OperationStatus, list[tuple[str, int]]]:  # type: ignore[no-untyped-def]
    snap = cli.snapshot(op)
    assert snap is not None
    return snap.status, [(str(e.operation_id), e.seq) for e in cli.list_since(0).entries]


def _completed_marker(cli: RegistryClient):  # type: ignore[no-untyped-def]
    marker = background_spec("marker")
    cli.register_operation(marker)
    cli.provisioning_succeeded(marker.id)
    cli.complete_operation(marker.id, result_for(marker.id))
    return marker.id


def test_fsync_eio_is_outcome_unknown_and_the_restart_agrees(
    tmp_path: Path,
    eio_shim: Path,  # noqa: F811
) -> None:
    control = tmp_path / "eio-on"
    env = {**os.environ, "LD_PRELOAD": str(eio_shim), "OPSREG_EIO_CONTROL": str(control)}
    data = tmp_path / "data"
    server = ServerProcess(data, env=env).start()
    restarted: ServerProcess | None = None
    try:
        with contextlib.ExitStack() as stack:
            cli = stack.enter_context(RegistryClient(server.endpoint, timeout=20))
            spec = background_spec("eio")
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
            watch = cli.register_watcher(spec.id)
            # Registrations are journaled without waiting; a terminal after them is
            # acknowledged only once they are on disk too, so fsync fails on ours alone.
            marker = _completed_marker(cli)
            sub = stack.enter_context(
                contextlib.closing(
                    FeedSubscriber(server.endpoint, server.feed_endpoint, after_seq=0)
                )
            )
            first = sub.next(timeout=20)
            assert first is not None and first.seq == 1
            control.touch()
            with pytest.raises(OutcomeUnknown):
                cli.complete_operation(spec.id, result_for(spec.id))
            # While fsync keeps failing, the store cannot be reopened: nothing is served
            # from memory.
            with pytest.raises(Unavailable):
                cli.snapshot(spec.id)
            control.unlink()
            assert isinstance(watch.get(timeout=30), Completed)
            told = _told(cli, spec.id)
            entry = sub.next(timeout=20)  # the feed carries what the disk says, once
            assert entry is not None and (entry.operation_id, entry.seq) == (spec.id, 2)
        assert told == (OperationStatus.COMPLETED, [(str(marker), 1), (str(spec.id), 2)])
        server.kill9()

        restarted = ServerProcess(data).start()
        with RegistryClient(restarted.endpoint, timeout=20) as cli:
            assert _told(cli, spec.id) == told
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
