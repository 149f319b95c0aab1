"""``progress_log`` over the wire, against a real ``opsreg serve`` process."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors import NotFound, OperationId, OperationProgressUpdate, ProgressEntry
from tests.conftest import background_spec, result_for
from tests.transport.conftest import ServerProcess
from transport import AsyncRegistryClient, RegistryClient

pytestmark = pytest.mark.timeout(60)


def test_every_client_reads_the_log_and_unknown_ids_are_not_found(
    server_process: ServerProcess,
) -> None:
    with RegistryClient(server_process.endpoint, timeout=20) as cli:
        spec = background_spec("progress over the wire")
        cli.register_operation(spec)
        cli.provisioning_succeeded(spec.id)
        before = time.time_ns() // 1_000_000
        for n in range(1, 36):
            cli.report_progress(spec.id, OperationProgressUpdate(f"step {n}", n))
        log = cli.progress_log(spec.id)
        assert [e.number for e in log] == list(range(4, 36))
        assert log[-1] == ProgressEntry(
            at_ms=log[-1].at_ms, message="step 35", percent=35.0, number=35
        )
        assert all(before <= e.at_ms <= time.time_ns() // 1_000_000 for e in log)
        with pytest.raises(NotFound):
            cli.progress_log(OperationId.new())
        with cli.pipeline() as p:
            piped = p.progress_log(spec.id)
        assert piped.get(timeout=20) == log

        async def main() -> list[ProgressEntry]:
            async with AsyncRegistryClient(server_process.endpoint, timeout=20) as aio:
                with pytest.raises(NotFound):
                    await aio.progress_log(OperationId.new())
                return await aio.progress_log(spec.id)

        assert asyncio.run(main()) == log
        cli.complete_operation(spec.id, result_for(spec.id))
        assert cli.progress_log(spec.id) == log


def test_after_a_server_restart_the_log_is_the_last_progress_only(
    server_process: ServerProcess,
) -> None:
    spec = background_spec("survives a restart")
    with RegistryClient(server_process.endpoint, timeout=20) as cli:
        cli.register_operation(spec)
        cli.provisioning_succeeded(spec.id)
        for n in (1, 2):
            cli.report_progress(spec.id, OperationProgressUpdate(f"step {n}"))
        cli.complete_operation(spec.id, result_for(spec.id))
        snap = cli.snapshot(spec.id)
        assert snap is not None and snap.completed_at_ms is not None
    server_process.kill9()
    server_process.start()
    with RegistryClient(server_process.endpoint, timeout=20) as cli:
        assert cli.progress_log(spec.id) == [
            ProgressEntry(at_ms=snap.completed_at_ms, message="step 2", percent=None, number=2)
        ]
