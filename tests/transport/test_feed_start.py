"""Where a ``FeedSubscriber`` starts: now (the default), after a saved seq, or the oldest entry.

Against a real ``opsreg serve`` process that keeps 1,024 feed entries and has completed
more than that before any subscriber starts (the README's subscriber used to raise
``FeedGap`` there). Also ``opsreg tail`` with the same words, and ``async with`` /
``async for`` from one event loop.
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from actors import CompletionEntry
from tests.conftest import background_spec, result_for
from tests.transport.conftest import ROOT, ServerProcess
from transport import FeedGap, FeedSubscriber, RegistryClient

pytestmark = pytest.mark.timeout(120)

BEFORE = 1100  # completed before any subscriber starts; the registry keeps 1,024


def _complete(cli: RegistryClient, n: int, name: str = "op") -> None:
    """n lifecycles, pipelined."""
    futures = []
    for i in range(n):
        spec = background_spec(f"{name}-{i}")
        futures.append(cli.submit("register_operation", spec))
        futures.append(cli.submit("provisioning_succeeded", spec.id))
        futures.append(cli.submit("complete_operation", spec.id, result_for(spec.id)))
    for f in futures:
        f.get(timeout=60)


def _collect(sub: FeedSubscriber, n: int) -> list[CompletionEntry]:
    got = []
    for _ in range(n):
        entry = sub.next(timeout=30)
        assert entry is not None, f"feed stalled after {len(got)} entries"
        got.append(entry)
    return got


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server process with more completions than it retains."""
    data = tmp_path_factory.mktemp("feedstart") / "data"
    sp = ServerProcess(
        data, "--max-completed", "1", "--synchronous", "normal", "--heartbeat", "0.2"
    )
    sp.start()
    try:
        with RegistryClient(sp.endpoint, timeout=30) as cli:
            _complete(cli, BEFORE)
        yield sp
    finally:
        sp.stop()


def test_the_default_starts_now_even_after_more_completions_than_retained(
    busy: ServerProcess,
) -> None:
    with RegistryClient(busy.endpoint, timeout=30) as cli:
        mark = cli.watermark()
        assert mark >= BEFORE
        with FeedSubscriber(busy.endpoint, busy.feed_endpoint) as sub:
            assert sub.cursor == mark  # "now" is read when the subscriber is built
            _complete(cli, 5, "now")
            got = _collect(sub, 5)
            assert [e.seq for e in got] == list(range(mark + 1, mark + 6))
            assert [e.display_name for e in got] == [f"now-{i}" for i in range(5)]
            assert sub.next(timeout=0.5) is None
        with FeedSubscriber(busy.endpoint, busy.feed_endpoint, start="now") as sub:
            assert sub.next(timeout=0.5) is None  # nothing from before


def test_oldest_starts_at_the_oldest_retained_entry(busy: ServerProcess) -> None:
    with RegistryClient(busy.endpoint, timeout=30) as cli:
        batch = cli.list_since(0, 1)
        assert batch.dropped_through > 0  # retention has dropped the first entries
        first, mark = batch.dropped_through + 1, batch.watermark
    with FeedSubscriber(busy.endpoint, busy.feed_endpoint, start="oldest") as sub:
        seqs = [e.seq for e in _collect(sub, mark - first + 1)]
        assert seqs == list(range(first, mark + 1))
        assert sub.cursor == mark


def test_after_a_saved_seq_resumes_or_raises_feed_gap(busy: ServerProcess) -> None:
    with RegistryClient(busy.endpoint, timeout=30) as cli:
        batch = cli.list_since(0, 1)
        mark = batch.watermark
    with FeedSubscriber(busy.endpoint, busy.feed_endpoint, after_seq=mark - 3) as sub:
        assert [e.seq for e in _collect(sub, 3)] == [mark - 2, mark - 1, mark]
    # A cursor older than retention is a gap the subscriber cannot repair: it says so.
    with FeedSubscriber(busy.endpoint, busy.feed_endpoint, after_seq=0) as sub:
        with pytest.raises(FeedGap) as gap:
            sub.next(timeout=10)
        assert gap.value.after_seq == 0 and gap.value.dropped_through >= batch.dropped_through


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"start": "now", "after_seq": 3}, ValueError),
        ({"start": "oldest", "after_seq": 0}, ValueError),
        ({"start": "latest"}, ValueError),
        ({"after_seq": -1}, ValueError),
        ({"after_seq": "3"}, TypeError),
        ({"after_seq": True}, TypeError),
    ],
)
def test_a_bad_start_is_refused_before_connecting(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        FeedSubscriber("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", **kwargs)  # type: ignore[arg-type]


# --- opsreg tail --------------------------------------------------------------------------------


def _tail(busy: ServerProcess, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "transport.cli",
        "tail",
        "--endpoint",
        busy.endpoint,
        "--feed-endpoint",
        busy.feed_endpoint,
        "--json",
        *args,
    ]


def _readline(proc: subprocess.Popen[str], timeout: float) -> str | None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else None


def test_tail_uses_the_same_start_words(busy: ServerProcess) -> None:
    with RegistryClient(busy.endpoint, timeout=30) as cli:
        batch = cli.list_since(0, 1)
    # Without --follow the default is oldest: what is retained, no warning.
    done = subprocess.run(_tail(busy), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    seqs = [json.loads(line)["seq"] for line in done.stdout.splitlines()]
    assert seqs[0] == batch.dropped_through + 1 and seqs[-1] >= batch.watermark
    done = subprocess.run(
        _tail(busy, "--after", str(batch.watermark - 2)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seqs = [json.loads(line)["seq"] for line in done.stdout.splitlines()]
    assert seqs[:2] == [batch.watermark - 1, batch.watermark]
    done = subprocess.run(
        _tail(busy, "--start", "now"), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "--follow" in done.stderr


def test_tail_follow_starts_now(busy: ServerProcess) -> None:
    with RegistryClient(busy.endpoint, timeout=30) as cli:
        mark = cli.watermark()
        proc = subprocess.Popen(
            _tail(busy, "--follow"),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Complete one operation at a time until tail (started "now") prints one:
            # nothing completed before it started may appear.
            line = None
            deadline = time.monotonic() + 60
            while line is None and time.monotonic() < deadline:
                _complete(cli, 1, "live")
                line = _readline(proc, 0.5)
            assert line is not None, "tail --follow printed nothing"
            first = json.loads(line)["seq"]
            assert first > mark
            _complete(cli, 1, "next")
            nxt = _readline(proc, 30)
            assert nxt is not None
            assert json.loads(nxt)["seq"] == cli.watermark()
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    assert proc.returncode == 0


# --- asyncio -----------------------------------------------------------------------------------


def test_async_with_and_async_for_do_not_block_the_loop(busy: ServerProcess) -> None:
    async def main() -> tuple[list[int], float, int]:
        lag = 0.0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal lag
            while not stop.is_set():
                t = time.monotonic()
                await asyncio.sleep(0.01)
                lag = max(lag, time.monotonic() - t - 0.01)

        tick = asyncio.create_task(ticker())
        cli = await asyncio.to_thread(RegistryClient, busy.endpoint, "default", 30)
        try:
            mark = await asyncio.to_thread(cli.watermark)
            async with FeedSubscriber(busy.endpoint, busy.feed_endpoint, after_seq=mark) as feed:
                # A reader cancelled while its read is in flight in the executor, or
                # after a while of nothing arriving, loses nothing.
                for pause in (0.0, 0.3):
                    waiting = asyncio.ensure_future(feed.__anext__())
                    await asyncio.sleep(pause)
                    waiting.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await waiting
                await asyncio.to_thread(_complete, cli, 20, "async")
                seqs = []
                async for entry in feed:
                    seqs.append(entry.seq)
                    if len(seqs) == 20:
                        break
        finally:
            await asyncio.to_thread(cli.close)
            stop.set()
            await tick
        return seqs, lag, mark

    seqs, lag, mark = asyncio.run(main())
    assert seqs == list(range(mark + 1, mark + 21))
    assert lag < 0.5, f"the event loop was blocked for {lag:.3f} s"


def test_tail_follow_with_no_server_exits_3() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "transport.cli",
            "tail",
            "--follow",
            "--endpoint",
            f"tcp://127.0.0.1:{port}",
            "--feed-endpoint",
            f"tcp://127.0.0.1:{port}",
            "--timeout",
            "0.5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
