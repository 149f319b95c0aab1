"""The completion feed over PUB: late joiners, slow consumers, dropped messages, gaps."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from actors import OperationSpec
from tests.conftest import background_spec, result_for
from transport import FeedGap, FeedSubscriber, RegistryClient, RegistryServer, ServerConfig

pytestmark = pytest.mark.timeout(180)


def _complete_many(cli: RegistryClient, n: int, name: str = "op") -> list[OperationSpec]:
    """Pipelined: n lifecycles in windows of 500, within the server's in-flight limit."""
    specs = [background_spec(f"{name}-{i}") for i in range(n)]
    for start in range(0, n, 500):
        futures = []
        for spec in specs[start : start + 500]:
            futures.append(cli.submit("register_operation", spec))
            futures.append(cli.submit("provisioning_succeeded", spec.id))
            futures.append(cli.submit("complete_operation", spec.id, result_for(spec.id)))
        for f in futures:
            f.get(timeout=120)
    return specs


def _collect(sub: FeedSubscriber, n: int, timeout: float = 60) -> list[int]:
    seqs = []
    for _ in range(n):
        entry = sub.next(timeout=timeout)
        assert entry is not None, f"feed stalled after {len(seqs)} entries"
        seqs.append(entry.seq)
    return seqs


@pytest.fixture
def big_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "data"),
            synchronous="normal",
            max_completed=16384,  # the feed keeps 65,536 entries
            heartbeat_interval=0.2,
        )
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_late_joiner_receives_everything_in_order(big_server: RegistryServer) -> None:
    with RegistryClient(big_server.endpoint, timeout=30) as cli:
        specs = _complete_many(cli, 5000)
        with FeedSubscriber(big_server.endpoint, big_server.feed_endpoint, start="oldest") as sub:
            seqs = _collect(sub, 5000)
            assert seqs == list(range(1, 5001))
            names = []
            # Live entries keep flowing after the catch-up.
            more = _complete_many(cli, 10, "live")
            for _ in range(10):
                entry = sub.next(timeout=30)
                assert entry is not None
                names.append(entry.display_name)
            assert names == [s.display_name for s in more]
            assert sub.next(timeout=0.3) is None
    assert len(specs) == 5000


def test_resubscribing_from_a_cursor_skips_what_was_seen(big_server: RegistryServer) -> None:
    with RegistryClient(big_server.endpoint, timeout=30) as cli:
        _complete_many(cli, 50)
        with FeedSubscriber(big_server.endpoint, big_server.feed_endpoint, after_seq=42) as sub:
            assert _collect(sub, 8) == list(range(43, 51))


def test_tiny_high_water_mark_under_a_burst_stays_gap_free(tmp_path: Path) -> None:
    total = 20_000  # enough for many drops and repairs with a 4-message HWM
    srv = RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "data"),
            synchronous="normal",
            max_completed=16384,
            feed_hwm=4,  # PUB drops early: the subscriber must repair what it lost
            heartbeat_interval=0.2,
        )
    )
    with srv, FeedSubscriber(srv.endpoint, srv.feed_endpoint, after_seq=0, rcvhwm=1) as sub:
        seqs: list[int] = []
        reader = threading.Thread(target=lambda: seqs.extend(_collect(sub, total, timeout=120)))
        with RegistryClient(srv.endpoint, timeout=60) as cli:
            _complete_many(cli, total // 2)
            reader.start()  # a slow consumer: it starts reading in the middle of the burst
            _complete_many(cli, total // 2)
        reader.join(timeout=170)
        assert not reader.is_alive()
        assert seqs == list(range(1, total + 1))
        assert sub.repairs > 1, "a one-message HWM must have dropped something"


def test_cursor_older_than_retention_raises_feed_gap(tmp_path: Path) -> None:
    with RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "d"),
            synchronous="normal",
            max_completed=1,  # the feed keeps 1,024 entries
        )
    ) as srv:
        with RegistryClient(srv.endpoint, timeout=30) as cli:
            _complete_many(cli, 1100)
        with FeedSubscriber(srv.endpoint, srv.feed_endpoint, after_seq=10) as sub:
            with pytest.raises(FeedGap) as err:
                sub.next(timeout=10)
            assert (err.value.after_seq, err.value.dropped_through) == (10, 76)
            assert err.value.watermark == 1100
        with FeedSubscriber(srv.endpoint, srv.feed_endpoint, after_seq=76) as sub:
            assert _collect(sub, 3) == [77, 78, 79]


def test_topics_do_not_leak_between_prefix_named_registries(big_server: RegistryServer) -> None:
    with (
        RegistryClient(big_server.endpoint, registry="default2", timeout=30) as other,
        FeedSubscriber(big_server.endpoint, big_server.feed_endpoint, registry="default") as sub,
    ):
        _complete_many(other, 20)
        assert sub.next(timeout=1.0) is None
