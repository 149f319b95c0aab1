"""``AsyncRegistryClient``: the table's methods as coroutines, against a real server process."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import pytest

from actors import InvalidArgument, NotFound, calls
from actors.api import RegistryCalls
from actors.model import Cancelled, Completed, OperationId
from tests.conftest import background_spec, result_for
from tests.transport.conftest import ServerProcess
from transport import AsyncRegistryClient, RegistryClient, RegistryServer

pytestmark = pytest.mark.timeout(60)


def _params(func: object) -> list[inspect.Parameter]:
    return list(inspect.signature(func).parameters.values())[1:]  # type: ignore[arg-type]


def test_async_surface_is_the_table() -> None:
    public = {
        name
        for name, value in vars(AsyncRegistryClient).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    }
    assert public - {"aclose"} == calls.METHODS.keys()
    for name, m in calls.METHODS.items():
        params = _params(getattr(AsyncRegistryClient, name))
        assert [p.name for p in params] == [a.name for a in m.args], name
        assert params == _params(getattr(RegistryCalls, name)), name
        for p, a in zip(params, m.args, strict=True):
            assert (p.default is None) == a.optional, (name, p.name)


async def _ticker(stop: asyncio.Event, lags: list[float], period: float = 0.005) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - before - period)


async def _watcher_count(cli: AsyncRegistryClient, op_id: OperationId) -> int:
    snap = await cli.snapshot(op_id)
    assert snap is not None
    return snap.watcher_count


def test_hundreds_of_concurrent_operations_never_block_the_loop(
    server_process: ServerProcess,
) -> None:
    n = 240  # at most max_completed (256): a wait_all member must not be evicted

    async def main() -> float:
        stop, lags = asyncio.Event(), []
        ticker = asyncio.create_task(_ticker(stop, lags))
        async with AsyncRegistryClient(server_process.endpoint, timeout=30) as cli:
            specs = [background_spec(f"aio-{i}") for i in range(n)]
            await asyncio.gather(*(cli.register_operation(s) for s in specs))
            await asyncio.gather(*(cli.provisioning_succeeded(s.id) for s in specs))
            ids = [s.id for s in specs]
            watches = await asyncio.gather(*(cli.register_watcher(i) for i in ids))
            barrier = await cli.wait_all("aio-run", ids)
            cancelled = set(ids[:5])
            ends: list[Awaitable[None]] = [
                cli.cancel_operation(i, "enough")
                if i in cancelled
                else cli.complete_operation(i, result_for(i))
                for i in ids
            ]
            await asyncio.gather(*ends)
            outcomes = await asyncio.gather(*watches)
            for i, outcome in zip(ids, outcomes, strict=True):
                assert isinstance(outcome, Cancelled if i in cancelled else Completed)
            result = await barrier
            assert [i for i, _ in result.outcomes] == ids
            assert await cli.watermark() == n
            # past a default page (256) of feed entries: without a limit, list_since reads
            # every page, as the sync client does
            more = [background_spec(f"aio-more-{i}") for i in range(40)]
            await asyncio.gather(*(cli.register_operation(s) for s in more))
            await asyncio.gather(*(cli.provisioning_succeeded(s.id) for s in more))
            await asyncio.gather(*(cli.complete_operation(s.id, result_for(s.id)) for s in more))
            assert [e.seq for e in (await cli.list_since(0)).entries] == list(range(1, n + 41))
            assert len(await cli.list_operations()) == 256  # max_completed
            assert len((await cli.list_since(0, 10)).entries) == 10
        stop.set()
        await ticker
        return max(lags)

    lag = asyncio.run(main())
    print(f"max loop lag over {n} concurrent operations: {lag * 1000:.1f} ms")
    assert lag < 0.25


def test_errors_are_raised_where_awaited(server_process: ServerProcess) -> None:
    async def main() -> None:
        async with AsyncRegistryClient(server_process.endpoint) as cli:
            with pytest.raises(NotFound):
                await cli.register_watcher(OperationId.new())
            with pytest.raises(NotFound):
                await cli.provisioning_succeeded(OperationId.new())
            with pytest.raises(InvalidArgument):
                await cli.wait_any("not-a-list")  # type: ignore[arg-type]
            assert await cli.snapshot(OperationId.new()) is None

    asyncio.run(main())


def test_cancelling_a_task_awaiting_a_wait_leaves_nothing_on_the_server(
    server_process: ServerProcess,
) -> None:
    async def main() -> None:
        async with AsyncRegistryClient(server_process.endpoint) as cli:
            spec = background_spec("aio-cancel")
            await cli.register_operation(spec)
            await cli.provisioning_succeeded(spec.id)
            mark = await cli.watermark()

            accepted = asyncio.Semaphore(0)

            async def watch() -> object:
                w = await cli.register_watcher(spec.id)
                accepted.release()
                return await w

            async def any_of() -> object:
                w = await cli.wait_any([spec.id])
                accepted.release()
                return await w

            async def advance() -> object:
                w = await cli.wait_for_advance(mark)
                accepted.release()
                return await w

            waits = [asyncio.create_task(f()) for f in (watch, any_of, watch, advance)]
            for _ in waits:
                await accepted.acquire()
            assert await _watcher_count(cli, spec.id) == 2
            for t in waits:
                t.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            # drop_wait goes out on the socket before this read: the registry handles it first.
            assert await _watcher_count(cli, spec.id) == 0
            # A task cancelled before its wait was even accepted drops it once accepted:
            # the next read's reply comes after that ACCEPTED, so the drop is queued by then.
            early = asyncio.create_task(watch())
            await asyncio.sleep(0)
            early.cancel()
            await asyncio.gather(early, return_exceptions=True)
            await cli.snapshot(spec.id)
            # (a batched ACCEPTED may leave the server after a lone reply of the same pass:
            # allow a few more round trips, never a sleep)
            for _ in range(20):
                if not await _watcher_count(cli, spec.id):
                    break
            assert await _watcher_count(cli, spec.id) == 0
            diag = await cli.diagnostic_snapshot()
            assert all(op.watcher_count == 0 for op in diag.operations)
            # The operation still completes; a new watcher still works.
            w = await cli.register_watcher(spec.id)
            await cli.complete_operation(spec.id, result_for(spec.id))
            assert isinstance(await w, Completed)

    asyncio.run(main())


def _until(predicate: Callable[[], bool], within: float = 20.0) -> None:
    """Round trips (never a sleep) until ``predicate()``, within ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"


def test_a_wait_re_established_after_the_server_forgot_the_client_is_dropped(
    server: RegistryServer,
) -> None:
    # heartbeat 60: once idle, the client is forgotten after the server's client_timeout (1 s)
    # and its watcher cancelled; the WaitCancelled reply makes it re-establish the watcher.
    # (No ping: its pong [epoch, false] would re-establish the watcher a second time, see
    # the report of issue 13: RegistryClient._server_forgot_me.)
    observer = RegistryClient(server.endpoint, timeout=20)

    def count(op_id: OperationId) -> int:
        snap = observer.snapshot(op_id)
        assert snap is not None
        return snap.watcher_count

    async def main() -> None:
        async with AsyncRegistryClient(server.endpoint, timeout=20, heartbeat=60) as cli:
            spec = background_spec("aio-forgotten")
            await cli.register_operation(spec)
            await cli.provisioning_succeeded(spec.id)
            watch = await cli.register_watcher(spec.id)
            assert count(spec.id) == 1
            _until(lambda: count(spec.id) == 0)  # forgotten: cancelled by the server
            _until(lambda: count(spec.id) == 1)  # re-established with the same future
            assert not watch.done()
            watch.cancel()
            for _ in range(200):
                if not await _watcher_count(cli, spec.id):
                    break
            assert await _watcher_count(cli, spec.id) == 0

    try:
        asyncio.run(main())
    finally:
        observer.close()
