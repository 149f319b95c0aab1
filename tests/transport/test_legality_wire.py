"""The whole exhaustive legality grid again, through ``RegistryClient`` against a server
in another process: same results, same classes, same fields, same messages."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lifecycle.test_legality import *  # noqa: F403 - re-run every grid test here
from tests.transport.conftest import ServerProcess
from transport import RegistryClient

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def wire_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ServerProcess]]:
    """One ``opsreg serve`` process per registry configuration the grid asks for."""
    running: dict[tuple[int, int | None], ServerProcess] = {}

    def server_for(max_completed: int = 256, max_concurrent: int | None = None) -> ServerProcess:
        key = (max_completed, max_concurrent)
        if key not in running:
            extra = ["--max-completed", str(max_completed), "--synchronous", "normal"]
            if max_concurrent is not None:
                extra += ["--max-concurrent", str(max_concurrent)]
            data: Path = tmp_path_factory.mktemp("wire")
            running[key] = ServerProcess(data, *extra).start()
        return running[key]

    try:
        yield server_for
    finally:
        for sp in running.values():
            sp.stop()


@pytest.fixture
def backend() -> str:
    return "wire"


@pytest.fixture
def registry(wire_servers: Callable[..., ServerProcess]) -> Iterator[Callable[..., Any]]:
    """Each registry the grid makes is a fresh named registry on a server process."""
    clients: list[RegistryClient] = []

    def make(**kw: Any) -> RegistryClient:
        sp = wire_servers(**kw)
        cli = RegistryClient(sp.endpoint, registry=f"grid-{uuid.uuid4().hex[:12]}", timeout=30)
        clients.append(cli)
        return cli

    try:
        yield make
    finally:
        for cli in clients:
            cli.close()
