"""Small exactness of the shared call surface, in process and over the wire alike."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest

from actors import Failed, InvalidArgument, OperationId, OpsRegistry
from actors.api import RegistryCalls
from actors.model import MAX_ERROR_BYTES, DiagnosticSnapshot, decode, failure_text
from tests.conftest import background_spec
from transport import RegistryClient, RegistryServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["in_process", "client"])
def calls(request: pytest.FixtureRequest, server: RegistryServer) -> Iterator[RegistryCalls]:
    if request.param == "in_process":
        reg = OpsRegistry.start()
        try:
            yield reg
        finally:
            reg.stop()
    else:
        with RegistryClient(server.endpoint, timeout=10) as cli:
            yield cli


def _running(calls: RegistryCalls, name: str) -> OperationId:
    spec = background_spec(name)
    calls.register_operation(spec)
    calls.provisioning_succeeded(spec.id)
    return spec.id


def _boom() -> None:
    raise ValueError("x")


def test_fail_operation_takes_an_exception_and_stores_its_traceback(calls: RegistryCalls) -> None:
    plain = _running(calls, "plain")
    calls.fail_operation(plain, ValueError("x"))  # never raised: no traceback to show
    assert calls.snapshot(plain).terminal_outcome == Failed("ValueError: x")

    raised = _running(calls, "raised")
    try:
        _boom()
    except ValueError as exc:
        calls.provisioning_failed(raised, exc)
    outcome = calls.snapshot(raised).terminal_outcome
    assert isinstance(outcome, Failed)
    lines = outcome.error.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "in _boom" in outcome.error
    assert lines[-1] == "ValueError: x"


def test_a_huge_traceback_keeps_its_end_within_the_cap() -> None:
    text = failure_text(RuntimeError("m" * (3 * MAX_ERROR_BYTES)))
    assert len(text.encode()) <= MAX_ERROR_BYTES
    assert text.startswith("[... ") and text.endswith("m" * 100)


@pytest.mark.parametrize("ids", ["0190a0a0-0000-7000-8000-000000000000", b"ab"])
def test_wait_all_and_wait_any_refuse_a_string_of_ids(calls: RegistryCalls, ids: object) -> None:
    with pytest.raises(InvalidArgument, match="sequence of operation ids"):
        calls.wait_all("run", ids)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="sequence of operation ids"):
        calls.wait_any(ids)  # type: ignore[arg-type]
    assert not calls.diagnostic_snapshot().wait_active


def test_wait_all_keeps_its_run_id_with_the_barrier(calls: RegistryCalls) -> None:
    op = _running(calls, "member")
    barrier = calls.wait_all("run-7", [op])
    diag = calls.diagnostic_snapshot()
    assert diag.wait_active and diag.wait_run_id == "run-7"
    assert calls.cancel_wait_all()
    assert calls.diagnostic_snapshot().wait_run_id is None
    del barrier


def test_a_diagnostic_snapshot_encoded_before_wait_run_id_still_decodes() -> None:
    old = msgspec.msgpack.encode(
        {
            "operation_count": 0,
            "active_count": 0,
            "wait_active": False,
            "wait_request_id": None,
            "wait_operation_ids": [],
            "operations": [],
        }
    )
    assert decode(old, DiagnosticSnapshot).wait_run_id is None
