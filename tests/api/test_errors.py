"""One root for opsreg's errors, and every timeout a built-in ``TimeoutError``.

The client's timeouts are checked against a real ROUTER socket that never answers
(127.0.0.1, port 0); the registry's against a store commit held by ``FaultPlan.hold``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pykka
import pytest
import zmq

import actors
import transport
from actors import (
    CallTimeout,
    Failed,
    OperationId,
    OperationProgressUpdate,
    OpsFuture,
    OpsLifecycleError,
    OpsregError,
    OpsRegistry,
    OpsTimeout,
    StoreError,
    Terminated,
    Unavailable,
)
from actors.testing import MemoryStore
from tests.conftest import result_for
from tests.registry.conftest import running
from transport import OperationError, RegistryClient, RegistryServer, WorkerPool
from transport.errors import OperationError as ErrorsOperationError

pytestmark = pytest.mark.timeout(30)


def _exception_classes(module: object) -> list[type[BaseException]]:
    names = getattr(module, "__all__", [])
    objs = [getattr(module, n) for n in names]
    return [o for o in objs if isinstance(o, type) and issubclass(o, BaseException)]


def test_every_public_exception_derives_from_one_root() -> None:
    classes = _exception_classes(actors) + _exception_classes(transport)
    assert len(classes) > 20
    stray = [c.__name__ for c in classes if not issubclass(c, OpsregError)]
    # CallCancelled is raised inside a worker's own call by ``progress()`` (the pool's file).
    assert set(stray) <= {"CallCancelled"}, stray
    assert issubclass(OpsLifecycleError, OpsregError)
    assert issubclass(StoreError, OpsregError)
    assert transport.OpsregError is actors.OpsregError


def test_timeout_classes_are_builtin_timeouts() -> None:
    assert issubclass(OpsTimeout, TimeoutError) and issubclass(OpsTimeout, pykka.Timeout)
    assert issubclass(CallTimeout, TimeoutError) and issubclass(CallTimeout, Unavailable)
    err = CallTimeout("no answer to snapshot")
    assert str(err) == "registry unavailable: no answer to snapshot"
    assert err == CallTimeout("no answer to snapshot")
    assert err.detail == "no answer to snapshot"


def test_future_get_timeout_is_a_timeout_error_and_the_future_stays_pending() -> None:
    f: OpsFuture[int] = OpsFuture()
    with pytest.raises(TimeoutError) as err:
        f.get(timeout=0.01)
    assert isinstance(err.value, OpsTimeout)
    assert not f.done()
    with pytest.raises(pykka.Timeout):  # code written for pykka still catches it
        f.get(timeout=0)
    f.set(3)
    assert f.get(timeout=1) == 3


def test_a_timeout_set_as_the_futures_error_is_raised_as_it_is() -> None:
    f: OpsFuture[int] = OpsFuture()
    f.set_exception(pykka.Timeout("from elsewhere"))
    with pytest.raises(pykka.Timeout) as err:
        f.get(timeout=1)
    assert not isinstance(err.value, OpsTimeout)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A ROUTER that takes requests and never answers."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind("tcp://127.0.0.1:0")
    try:
        yield sock.getsockopt_string(zmq.LAST_ENDPOINT)
    finally:
        sock.close(linger=0)


@pytest.mark.parametrize("direct", [True, False])
def test_a_client_call_without_answer_is_a_timeout_and_still_unavailable(
    silent_endpoint: str, direct: bool
) -> None:
    with RegistryClient(silent_endpoint, timeout=0.3, direct=direct) as cli:
        op = OperationId.new()
        with pytest.raises(TimeoutError) as read:
            cli.snapshot(op)
        assert isinstance(read.value, CallTimeout)
        assert isinstance(read.value, Unavailable)
        assert "no answer to snapshot" in str(read.value)
        with pytest.raises(Unavailable) as change:  # never sent: no server answered
            cli.report_progress(op, OperationProgressUpdate("x"))
        assert isinstance(change.value, TimeoutError)


def test_an_in_process_call_without_answer_is_a_timeout() -> None:
    store = MemoryStore()
    with OpsRegistry.start(store=store, call_timeout=0.3) as reg:
        op = running(reg)
        store.faults.hold()
        try:
            with pytest.raises(TimeoutError) as err:
                reg.complete_operation(op, result_for(op))
            assert isinstance(err.value, CallTimeout)
            assert "did not answer complete_operation" in str(err.value)
        finally:
            store.faults.release()


def test_operation_error_keeps_the_remote_exception_type_and_message() -> None:
    op = OperationId.new()
    err = ErrorsOperationError(op, Failed("KeyError: 'x'\nTraceback (most recent call last):"))
    assert (err.error_type, err.error_message) == ("KeyError", "'x'")
    assert str(err) == f"operation {op} ended failed: KeyError: 'x'"
    dotted = ErrorsOperationError(op, Failed("mod.sub.Boom: it broke: badly"))
    assert (dotted.error_type, dotted.error_message) == ("mod.sub.Boom", "it broke: badly")
    bare = ErrorsOperationError(op, Failed("StopIteration"))
    assert (bare.error_type, bare.error_message) == ("StopIteration", "")
    for outcome in (Failed("worker process died: exit code 1"), Terminated("shut down")):
        other = ErrorsOperationError(op, outcome)
        assert other.error_type is None and other.error_message is None
    assert isinstance(err, OpsregError)


def test_transport_exports_the_operation_error_with_fields() -> None:
    """Fails until transport/workers.py imports OperationError from transport.errors."""
    assert OperationError is ErrorsOperationError


def _hang() -> None:
    threading.Event().wait(60)  # ended by the pool's close


def test_a_pool_calls_result_timeout_is_a_timeout_error(server: RegistryServer) -> None:
    with WorkerPool(server.endpoint, processes=1, timeout=10, cancel_grace=0.5) as pool:
        handle = pool.submit(_hang)
        with pytest.raises(TimeoutError) as err:
            handle.result(timeout=0.2)
        assert isinstance(err.value, OpsTimeout)
        assert not handle.done()
