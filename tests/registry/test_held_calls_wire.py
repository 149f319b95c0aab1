"""Held competing calls over a real server (in-process ``RegistryServer``, real sockets, SQLite)."""

from __future__ import annotations

from typing import Any

import pytest

from actors import Internal, InvalidTransition, OperationStatus
from actors.testing import FaultPlan
from tests.conftest import background_spec, result_for
from tests.transport.conftest import server  # noqa: F401 - the fixture
from transport import RegistryClient, RegistryServer

pytestmark = pytest.mark.timeout(60)


def _faults(srv: RegistryServer) -> FaultPlan:
    assert srv._persistence is not None
    store: Any = srv._persistence.proxy().store.get(timeout=10)
    return store.faults  # type: ignore[no-any-return]


def _running(cli: RegistryClient, name: str):  # type: ignore[no-untyped-def]
    spec = background_spec(name)
    cli.register_operation(spec)
    cli.provisioning_succeeded(spec.id)
    return spec.id


@pytest.mark.parametrize("commit_fails", [False, True], ids=["committed", "rolled-back"])
def test_another_clients_cancel_is_answered_from_the_durable_outcome(
    server: RegistryServer,  # noqa: F811
    commit_fails: bool,
) -> None:
    faults = _faults(server)
    with (
        RegistryClient(server.endpoint, timeout=20) as completer,
        RegistryClient(server.endpoint, timeout=20) as canceller,
    ):
        op = _running(completer, "contested")
        if commit_fails:
            faults.fail_next(1, "disk full")
        faults.hold()
        try:
            completion = completer.submit("complete_operation", op, result_for(op))
            assert faults.entered.wait(10), "the commit should be in flight"
            cancel = canceller.submit("cancel_operation", op, "from another client")
            # The other client's read is answered at once, from the durable state.
            assert canceller.snapshot(op).status is OperationStatus.RUNNING
            assert not cancel.done()
        finally:
            faults.release()
        if commit_fails:
            with pytest.raises(Internal, match="disk full"):
                completion.get(timeout=10)
            assert cancel.get(timeout=10) is None
            assert canceller.snapshot(op).status is OperationStatus.CANCELLED
        else:
            assert completion.get(timeout=10) is None
            with pytest.raises(InvalidTransition) as err:
                cancel.get(timeout=10)
            assert err.value.status is OperationStatus.COMPLETED
