"""Server restarts against a real ``opsreg serve`` process: what a client may re-send.

A state-changing request the new incarnation refused (``ServerRestarted``) was
definitely not executed, so the client sends it again while its caller waits;
one whose fate is unknown raises ``Unavailable`` and is never re-sent; and
nothing state-changing leaves a client before it knows an incarnation.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from actors import OperationStatus
from tests.conftest import background_spec, result_for
from tests.transport.conftest import ServerProcess
from transport import RegistryClient, Unavailable

pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entries_for(cli: RegistryClient, *ids: object) -> dict[object, int]:
    batch = cli.list_since(0)
    return {i: sum(1 for e in batch.entries if e.operation_id == i) for i in ids}


def test_the_first_calls_after_a_restart_succeed_and_run_once(tmp_path: Path) -> None:
    sp = ServerProcess(tmp_path / "data").start()
    # A long heartbeat: neither client learns the new incarnation from a heartbeat, so
    # their first requests after the restart are stamped with the old one.
    direct = RegistryClient(sp.endpoint, timeout=20, heartbeat=60)
    piped = RegistryClient(sp.endpoint, timeout=20, heartbeat=60, direct=False)
    try:
        assert direct.wait_connected(20) and piped.wait_connected(20)
        old = direct.server_epoch
        assert piped.server_epoch == old
        sp.kill9()
        sp.start()  # same ports, same data directory

        a = background_spec("direct-after-restart")
        direct.register_operation(a)  # first state-changing call: refused, re-sent
        direct.provisioning_succeeded(a.id)  # the second one
        b = background_spec("pipelined-after-restart")
        first = piped.submit("register_operation", b)
        second = piped.submit("provisioning_succeeded", b.id)
        assert first.get(timeout=20) is None
        assert second.get(timeout=20) is None

        assert direct.snapshot(a.id).status is OperationStatus.RUNNING
        assert direct.snapshot(b.id).status is OperationStatus.RUNNING
        # Exactly once: a second registration would have been AlreadyRegistered, a second
        # start InvalidTransition; and each operation ends with exactly one feed entry.
        direct.complete_operation(a.id, result_for(a.id))
        piped.submit("complete_operation", b.id, result_for(b.id)).get(timeout=20)
        assert _entries_for(direct, a.id, b.id) == {a.id: 1, b.id: 1}
    finally:
        direct.close()
        piped.close()
        sp.stop()


def test_a_call_whose_fate_is_unknown_is_unavailable_and_never_resent(tmp_path: Path) -> None:
    sp = ServerProcess(tmp_path / "data", "--memory").start()
    try:
        with RegistryClient(sp.endpoint, timeout=1.0, heartbeat=0.2) as cli:
            assert cli.wait_connected(20)
            assert sp.proc is not None
            os.kill(sp.proc.pid, signal.SIGSTOP)  # the request reaches a server that dies
            lost = background_spec("lost")
            with pytest.raises(Unavailable, match="may or may not have happened"):
                cli.register_operation(lost)
            sp.kill9()
            sp.start()
            assert cli.wait_connected(20)
            later = background_spec("later")
            cli.register_operation(later)  # same thread, same socket: queued after `lost`
            assert cli.snapshot(later.id) is not None
            assert cli.snapshot(lost.id) is None
    finally:
        sp.stop()


def test_a_call_made_before_any_server_answered_is_never_executed(tmp_path: Path) -> None:
    sp = ServerProcess(tmp_path / "data", "--memory")
    sp.endpoint = f"tcp://127.0.0.1:{_free_port()}"
    with RegistryClient(sp.endpoint, timeout=1.0, heartbeat=0.2) as cli:
        early = background_spec("early")
        with pytest.raises(Unavailable, match="register_operation was not sent"):
            cli.register_operation(early)
        queued = background_spec("early-pipelined")
        with pytest.raises(Unavailable, match="was not sent"):
            cli.submit("register_operation", queued).get(timeout=10)
        sp.start()
        try:
            assert cli.wait_connected(20)
            # Anything the client had queued on either socket reaches the server (and its
            # registry) before these later requests on the same sockets.
            probe = background_spec("probe")
            cli.submit("register_operation", probe).get(timeout=20)
            cli.register_operation(background_spec("probe-direct"))
            assert cli.snapshot(early.id) is None
            assert cli.snapshot(queued.id) is None
            with RegistryClient(sp.endpoint, timeout=10) as other:
                names = {s.display_name for s in other.list_operations()}
            assert names == {"probe", "probe-direct"}
        finally:
            sp.stop()
