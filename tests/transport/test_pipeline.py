"""``client.pipeline()``: typed, non-blocking calls, one method per table entry."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator

import pytest

from actors import NotFound, calls
from actors.api import RegistryCalls
from actors.futures import OpsFuture
from actors.model import Completed, OperationId, OperationStatus
from tests.conftest import background_spec, result_for
from transport import RegistryClient, RegistryServer
from transport.pipeline import Pipeline

pytestmark = pytest.mark.timeout(60)


def _params(func: object) -> list[inspect.Parameter]:
    return list(inspect.signature(func).parameters.values())[1:]  # type: ignore[arg-type]


def test_pipeline_surface_is_the_table() -> None:
    public = {
        name
        for name, value in vars(Pipeline).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }
    assert public - {"wait"} == calls.METHODS.keys()
    hints_of = typing.get_type_hints
    for name, m in calls.METHODS.items():
        params = _params(getattr(Pipeline, name))
        assert [p.name for p in params] == [a.name for a in m.args], name
        assert params == _params(getattr(RegistryCalls, name)), name
        ret = hints_of(getattr(Pipeline, name))["return"]
        assert typing.get_origin(ret) is OpsFuture, name
        (inner,) = typing.get_args(ret)
        sync = hints_of(getattr(RegistryCalls, name))["return"]
        # the sync call's value; for a future method that is the accepted wait's future
        assert inner == sync, name
        assert (typing.get_origin(inner) is OpsFuture) == m.future, name


@pytest.fixture
def client(server: RegistryServer) -> Iterator[RegistryClient]:
    with RegistryClient(server.endpoint, timeout=10) as cli:
        yield cli


def test_a_pipeline_sends_without_waiting_and_waits_on_exit(client: RegistryClient) -> None:
    specs = [background_spec(f"p{i}") for i in range(100)]
    with client.pipeline() as p:
        for spec in specs:
            p.register_operation(spec)
            p.provisioning_succeeded(spec.id)
        watch = p.register_watcher(specs[0].id)
        done = [p.complete_operation(s.id, result_for(s.id)) for s in specs]
    assert all(f.done() for f in p.futures)
    assert [f.get(timeout=0) for f in done] == [None] * len(specs)
    outcome = watch.get(timeout=0).get(timeout=10)
    assert isinstance(outcome, Completed)
    with client.pipeline() as p:
        listed = p.list_operations(status=OperationStatus.COMPLETED, limit=500)
        mark = p.watermark()
    assert len(listed.get(timeout=0)) == len(specs)
    assert mark.get(timeout=0) == len(specs)


def test_leaving_a_pipeline_raises_its_first_error(client: RegistryClient) -> None:
    spec = background_spec("ok")
    with pytest.raises(NotFound), client.pipeline() as p:
        p.register_operation(spec)
        p.provisioning_succeeded(OperationId.new())
        p.provisioning_succeeded(spec.id)
    assert p.futures[2].get(timeout=0) is None  # the calls after the error still ran


def test_an_error_in_the_block_does_not_wait(client: RegistryClient) -> None:
    with pytest.raises(KeyError), client.pipeline() as p:
        p.watermark()
        raise KeyError("mine")
