"""The persistence actor's typed requests, and the one recovery owner
(:class:`actors.durable.DurableStore`) that ``OpsRegistry.open`` and the server share."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from actors import OperationId, OperationStatus, OpsRegistry, Terminated
from actors.durable import DurableStore
from actors.persistence import Flush, OpenStore, PersistenceActor, Recover, Recovered
from actors.registry import RESTART_REASON
from actors.testing import MemoryStore
from tests.conftest import background_spec, result_for
from transport import RegistryClient, RegistryServer

pytestmark = pytest.mark.timeout(120)


def _running(reg: Any, name: str) -> OperationId:
    spec = background_spec(name)
    reg.register_operation(spec)
    reg.provisioning_succeeded(spec.id)
    return spec.id


def test_an_unknown_message_is_refused_and_logged_and_the_actor_keeps_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="actors.persistence")
    pers = PersistenceActor.start(MemoryStore())
    try:
        pers.ask(OpenStore(), timeout=10)
        strays: list[Any] = [("flush",), ("recover", "default"), "open", object()]
        for stray in strays:
            with pytest.raises(ValueError, match="unknown persistence request"):
                pers.ask(stray, timeout=10)
        refused = [r for r in caplog.records if "refused an unknown message" in r.getMessage()]
        assert len(refused) == len(strays)
        assert pers.is_alive()
        # It still commits and recovers.
        reg = OpsRegistry.attach(pers, "default")
        op = _running(reg, "after the strays")
        reg.complete_operation(op, result_for(op))
        reg.stop()  # not its owner: the persistence actor keeps running
        pers.ask(Flush(), timeout=10)
        recovered = pers.ask(Recover("default"), timeout=10)
        assert isinstance(recovered, Recovered)
        assert [seq for _, seq in recovered.journal if seq is not None] == [1]
    finally:
        pers.stop()


def test_ops_registry_open_and_the_server_recover_each_others_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attached: list[str] = []
    original = DurableStore.attach

    def spy(self: DurableStore, registry: str = "default", *args: Any, **kw: Any) -> OpsRegistry:
        attached.append(registry)
        return original(self, registry, *args, **kw)

    monkeypatch.setattr(DurableStore, "attach", spy)

    with OpsRegistry.open(tmp_path) as reg:
        done = _running(reg, "done")
        reg.complete_operation(done, result_for(done))
        stray = _running(reg, "in flight at the first stop")
    with (
        RegistryServer(
            endpoint="tcp://127.0.0.1:0", feed_endpoint="tcp://127.0.0.1:0", data_dir=str(tmp_path)
        ) as srv,
        RegistryClient(srv.endpoint, timeout=20) as cli,
    ):
        assert [e.seq for e in cli.list_since(0).entries] == [1, 2]
        snap = cli.snapshot(stray)
        assert snap is not None and snap.terminal_outcome == Terminated(RESTART_REASON)
        served = _running(cli, "served")
        cli.complete_operation(served, result_for(served))
        stray2 = _running(cli, "in flight at the second stop")
    with OpsRegistry.open(tmp_path) as reg:
        entries = reg.list_since(0).entries
        assert [e.seq for e in entries] == [1, 2, 3, 4]
        assert [e.display_name for e in entries] == [
            "done",
            "in flight at the first stop",
            "served",
            "in flight at the second stop",
        ]
        snap = reg.snapshot(stray2)
        assert snap is not None and snap.status is OperationStatus.TERMINATED
    assert attached == ["default", "default", "default"]
