"""The registry over the wire: same methods, same errors, same messages."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from actors import (
    AlreadyRegistered,
    Completed,
    Failed,
    InvalidArgument,
    InvalidTransition,
    NotFound,
    OperationId,
    OperationProgressUpdate,
    OperationStatus,
    WaitCancelled,
)
from tests.conftest import background_spec, result_for
from transport import RegistryClient, RegistryServer, TooLarge, Unavailable

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(server: RegistryServer):  # type: ignore[no-untyped-def]
    with RegistryClient(server.endpoint, timeout=10) as cli:
        yield cli


def _running(cli: RegistryClient, name: str = "op") -> OperationId:
    spec = background_spec(name)
    cli.register_operation(spec)
    cli.provisioning_succeeded(spec.id)
    return spec.id


def test_lifecycle_round_trip_with_identical_errors(client: RegistryClient) -> None:
    op = _running(client)
    client.report_progress(op, OperationProgressUpdate("half", 50.0))
    watch = client.register_watcher(op)
    assert client.snapshot(op).watcher_count == 1
    client.complete_operation(op, result_for(op, "wire"))
    assert watch.get(timeout=5) == Completed(result_for(op, "wire"))
    snap = client.snapshot(op)
    assert snap.status is OperationStatus.COMPLETED
    assert snap.last_progress == OperationProgressUpdate("half", 50.0)

    with pytest.raises(InvalidTransition) as err:
        client.cancel_operation(op)
    assert err.value.id == op and isinstance(err.value.id, OperationId)
    assert err.value.status is OperationStatus.COMPLETED
    assert err.value.action == "cancel_operation"
    assert str(err.value) == f"invalid lifecycle transition for {op}: Completed -> cancel_operation"

    unknown = OperationId.new()
    with pytest.raises(NotFound) as nf:
        client.provisioning_succeeded(unknown)
    assert str(nf.value) == f"operation not found: {unknown}"
    duplicate = msgspec.structs.replace(background_spec("again"), id=op)
    with pytest.raises(AlreadyRegistered) as dup:
        client.register_operation(duplicate)
    assert str(dup.value) == f"operation already registered: {op}"
    assert client.snapshot(unknown) is None


def test_wait_all_wait_any_and_advance_over_the_wire(client: RegistryClient) -> None:
    a, b = _running(client, "a"), _running(client, "b")
    barrier = client.wait_all("run", [a, b])
    first = client.wait_any([a, b])
    advance = client.wait_for_advance(0)
    assert not barrier.done() and not first.done() and not advance.done()
    assert client.diagnostic_snapshot().wait_active
    client.fail_operation(b, "nope")
    assert first.get(timeout=5) == (b, Failed("nope"))
    assert advance.get(timeout=5) == 1
    client.complete_operation(a, result_for(a))
    result = barrier.get(timeout=5)
    assert [i for i, _ in result.outcomes] == [a, b]
    assert client.collect_completed() == [(b, Failed("nope")), (a, Completed(result_for(a)))]
    batch = client.list_since(0)
    assert [e.seq for e in batch.entries] == [1, 2] and batch.watermark == 2
    assert client.watermark() == 2
    snap = client.capture_persistence_snapshot()
    assert snap.authority_state.next_completion_seq == 2


def test_cancel_wait_all_over_the_wire(client: RegistryClient) -> None:
    a = _running(client, "a")
    barrier = client.wait_all("run", [a])
    assert client.cancel_wait_all() is True
    with pytest.raises(WaitCancelled):
        barrier.get(timeout=5)


def test_futures_and_submit_work_with_asyncio(client: RegistryClient) -> None:
    op = _running(client)

    async def scenario() -> object:
        watch = await client.submit("register_watcher", op)
        await client.submit("complete_operation", op, result_for(op))
        return await watch

    assert isinstance(asyncio.run(asyncio.wait_for(scenario(), 10)), Completed)


def test_bad_arguments_are_typed_errors(client: RegistryClient) -> None:
    op = _running(client)
    with pytest.raises(InvalidArgument):
        client.submit("complete_operation", op, "not a result").get(timeout=5)
    with pytest.raises(InvalidArgument):
        client.submit("list_since", -3).get(timeout=5)
    with pytest.raises(InvalidArgument):
        client.submit("nonexistent")
    with pytest.raises(TooLarge):
        client.fail_operation(op, "x" * (2 << 20))
    assert client.snapshot(op).status is OperationStatus.RUNNING


def test_bad_registry_name_is_refused(server: RegistryServer) -> None:
    with (
        RegistryClient(server.endpoint, registry="no spaces allowed", timeout=5) as cli,
        pytest.raises(InvalidArgument, match="registry name"),
    ):
        cli.watermark()


def test_registries_are_separate(server: RegistryServer) -> None:
    with (
        RegistryClient(server.endpoint, registry="left", timeout=5) as left,
        RegistryClient(server.endpoint, registry="right", timeout=5) as right,
    ):
        op = _running(left)
        left.complete_operation(op, result_for(op))
        assert left.watermark() == 1
        assert right.watermark() == 0
        assert right.snapshot(op) is None


def test_unreachable_server_is_a_clear_error() -> None:
    with RegistryClient("tcp://127.0.0.1:9", timeout=0.5) as cli:
        # Never sent: no server has named an incarnation yet (so it cannot run later).
        with pytest.raises(Unavailable, match="register_operation was not sent"):
            cli.register_operation(background_spec("x"))
        with pytest.raises(Unavailable, match="no answer to watermark"):
            cli.watermark()
