"""Shared fixtures: every registry a test starts is stopped, whatever happens."""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest

from actors import OperationId, OperationKind, OperationResult, OperationSpec, OpsRegistry


def background_spec(
    name: str, kind: OperationKind = OperationKind.BACKGROUND_TOOL_OP
) -> OperationSpec:
    return OperationSpec(
        id=OperationId.new(),
        kind=kind,
        owner_session_id=str(OperationId.new()),
        display_name=name,
        source_label="test",
        child_session_id=None,
        expect_peer_channel=False,
    )


def result_for(op_id: OperationId, content: str = "done") -> OperationResult:
    return OperationResult(id=op_id, content=content, is_error=False, duration_ms=1, tokens_used=0)


@pytest.fixture
def registry() -> Iterator[OpsRegistry]:
    reg = OpsRegistry.start()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(autouse=True)
def _no_leaked_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=10)
