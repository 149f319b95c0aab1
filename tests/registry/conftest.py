"""Shared by the registry tests: a registry on a memory store whose commits can be held or failed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors import OperationId, OpsRegistry
from actors.testing import FaultPlan
from tests.conftest import background_spec


@pytest.fixture
def durable() -> Iterator[tuple[OpsRegistry, FaultPlan]]:
    reg = OpsRegistry.with_memory_store()
    store = reg.store
    assert store is not None
    try:
        yield reg, store.faults
    finally:
        store.faults.release()
        reg.stop()


def running(reg: OpsRegistry, name: str = "op") -> OperationId:
    """A registered, started operation's id."""
    spec = background_spec(name)
    reg.register_operation(spec)
    reg.provisioning_succeeded(spec.id)
    return spec.id
