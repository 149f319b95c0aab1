"""The server's I/O thread stays responsive and its memory and threads stay bounded
whatever one client or subscriber does: registries opened off the I/O thread, reply
bytes budgeted per client, feed frames bounded in bytes, registries bounded in number."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import zmq

from actors import InvalidArgument, LimitExceeded
from tests.conftest import background_spec, result_for
from tests.transport.conftest import ROOT, ServerProcess
from transport import RegistryClient, RegistryServer, codec

pytestmark = pytest.mark.timeout(120)

#: generous: the machine is shared and loaded; a stalled I/O thread never answers at all
ANSWER_WITHIN = 5.0


def _status(pid: int, field: str) -> int:
    """A number from /proc/PID/status (``VmRSS`` in kB, ``Threads``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _dealer(endpoint: str, rcvhwm: int = 1000) -> zmq.Socket[bytes]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.RCVTIMEO, 30_000)
    sock.connect(endpoint)
    return sock


def _answers(sock: zmq.Socket[bytes], count: int) -> list[codec.Reply]:
    out: list[codec.Reply] = []
    while len(out) < count:
        out.extend(codec.decode_replies(sock.recv()))
    return out


def _timed_ping(sock: zmq.Socket[bytes], req_id: int) -> float:
    started = time.monotonic()
    sock.send(codec.encode_request(req_id, "", "default", "ping", ()))
    assert codec.decode_reply(sock.recv()).req_id == req_id
    return time.monotonic() - started


class _Peak:
    """The highest value of a /proc/PID/status field, sampled while the block runs."""

    def __init__(self, pid: int, field: str) -> None:
        self.pid, self.field, self.peak = pid, field, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, _status(self.pid, self.field))
            if self._done.wait(0.02):
                return

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _status(self.pid, self.field))


@pytest.mark.timeout(60)
def test_opening_a_registry_while_the_disk_stalls_leaves_other_clients_answered(
    server: RegistryServer,
) -> None:
    assert server._persistence is not None
    store = server._persistence.proxy().store.get(timeout=10)
    with RegistryClient(server.endpoint, timeout=30) as cli:
        spec = background_spec("held")
        cli.register_operation(spec)
        cli.provisioning_succeeded(spec.id)
        store.faults.hold()
        try:
            completing = cli.submit("complete_operation", spec.id, result_for(spec.id))
            assert store.faults.entered.wait(10)  # the commit is now stuck in the store
            # Opening "fresh" must recover it from the store, which waits behind that commit.
            raw = _dealer(server.endpoint)
            raw.send(codec.encode_request(1, "", "fresh", "watermark", ()))
            # The same connection's next request is read after it, by the same thread.
            waited = _timed_ping(raw, 2)
            print(f"ping answered in {waited * 1000:.1f} ms while the registry opens")
            assert waited < ANSWER_WITHIN
            with RegistryClient(server.endpoint, timeout=ANSWER_WITHIN) as other:
                started = time.monotonic()
                assert [s.id for s in other.list_operations()] == [spec.id]
                assert time.monotonic() - started < ANSWER_WITHIN
        finally:
            store.faults.release()
        completing.get(timeout=30)
        reply = codec.decode_reply(raw.recv())
        assert (reply.req_id, reply.status) == (1, codec.OK)  # handed over once it opened
        raw.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_client_that_never_reads_its_replies_cannot_grow_the_server(tmp_path: Path) -> None:
    sp = ServerProcess(tmp_path / "data", "--memory", "--metrics", "127.0.0.1:0").start()
    assert sp.proc is not None
    found = re.search(r"metrics on (http://\S+/metrics)", sp.banner)
    assert found is not None, sp.banner
    metrics_url = found.group(1)

    def hog_requests_settled() -> float:
        """list_operations answered plus requests refused over budget (the hog's only)."""
        text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
        total = 0.0
        for line in text.splitlines():
            if (line.startswith("opsreg_calls_total{") and '"list_operations"' in line) or (
                line.startswith("opsreg_rejected_calls_total{") and "LimitExceeded" in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    try:
        with RegistryClient(sp.endpoint, timeout=60) as cli:
            # Names near their 1 KiB cap: each list_operations page (256 snapshots) is ~300 KB,
            # so 1,500 unread pages would be ~450 MB without the reply budget.
            futures = [
                cli.submit("register_operation", background_spec(f"{i:05d}" + "n" * 1000))
                for i in range(1500)
            ]
            for f in futures:
                f.get(timeout=60)
            baseline = _status(sp.proc.pid, "VmRSS")
            hog = _dealer(sp.endpoint, rcvhwm=1)
            hog.setsockopt(zmq.RCVBUF, 4096)
            with _Peak(sp.proc.pid, "VmRSS") as rss:
                for req_id in range(1500):
                    hog.send(codec.encode_request(req_id, "", "default", "list_operations", ()))
                slowest = 0.0
                deadline = time.monotonic() + 90
                with RegistryClient(sp.endpoint, registry="other", timeout=30) as other:
                    # Until the server has answered or refused every one of the hog's requests
                    # (its own counters), another client's calls keep being timed.
                    while hog_requests_settled() < 1500:
                        assert time.monotonic() < deadline, "the hog's requests never settled"
                        started = time.monotonic()
                        other.watermark()
                        slowest = max(slowest, time.monotonic() - started)
                    cli.watermark()  # every reply to the hog has been through the I/O thread
            grown_mb = (rss.peak - baseline) / 1024
            print(f"server RSS {baseline / 1024:.0f} MB -> peak {rss.peak / 1024:.0f} MB")
            print(f"slowest call of another client: {slowest:.3f} s")
            assert grown_mb < 200, f"server grew {grown_mb:.0f} MB for a client that never reads"
            assert slowest < ANSWER_WITHIN
            # The hog is refused once over budget, and the refusal says why.
            hog.setsockopt(zmq.RCVTIMEO, 30_000)
            seen = set()
            # (replies beyond the budget are dropped: read until one refusal or silence)
            while LimitExceeded not in seen:
                reply = codec.decode_reply(hog.recv())
                if reply.status == codec.ERROR:
                    seen.add(type(codec.decode_error(reply.payload)))
            hog.close()
    finally:
        sp.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_subscriber_that_never_reads_cannot_grow_the_server(tmp_path: Path) -> None:
    sp = ServerProcess(tmp_path / "data", "--memory", "--feed-hwm-bytes", str(4 << 20)).start()
    assert sp.proc is not None
    try:
        stalled = zmq.Context.instance().socket(zmq.SUB)
        stalled.setsockopt(zmq.LINGER, 0)
        stalled.setsockopt(zmq.RCVHWM, 1)
        stalled.setsockopt(zmq.RCVBUF, 4096)
        stalled.setsockopt(zmq.SUBSCRIBE, codec.topic("default"))
        stalled.connect(sp.feed_endpoint)
        with RegistryClient(sp.endpoint, timeout=60) as cli:
            cli.watermark()  # opens "default", whose heartbeats then go out
            assert stalled.poll(10_000)  # the subscription is in place
            baseline = _status(sp.proc.pid, "VmRSS")
            with _Peak(sp.proc.pid, "VmRSS") as rss:
                for _ in range(10):
                    specs = [background_spec(f"{i:05d}") for i in range(300)]
                    futures = []
                    big = "x" * 16_000  # feed entries carry the outcome: 16 KB results
                    for spec in specs:
                        futures.append(cli.submit("register_operation", spec))
                        futures.append(cli.submit("provisioning_succeeded", spec.id))
                        futures.append(
                            cli.submit("complete_operation", spec.id, result_for(spec.id, big))
                        )
                    for f in futures:
                        f.get(timeout=60)
                cli.watermark()
            grown_mb = (rss.peak - baseline) / 1024
            print(f"server RSS {baseline / 1024:.0f} MB -> peak {rss.peak / 1024:.0f} MB")
            # ~48 MB of entries went out; the PUB queue may hold 4 MB of them, the
            # registry's own feed buffer keeps the last 1,024 entries (~16 MB).
            assert grown_mb < 45, f"server grew {grown_mb:.0f} MB for a stalled subscriber"
        stalled.close()
    finally:
        sp.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_registries_by_name_are_bounded_and_idle_ones_close(tmp_path: Path) -> None:
    sp = ServerProcess(tmp_path / "data", "--max-registries", "8").start()
    assert sp.proc is not None
    try:
        raw = _dealer(sp.endpoint)
        ping = _dealer(sp.endpoint)
        outcomes: dict[str, int] = {}
        slowest = 0.0
        with _Peak(sp.proc.pid, "Threads") as threads:
            for start in range(0, 2000, 20):
                for i in range(start, start + 20):
                    raw.send(codec.encode_request(i, "", f"name-{i}", "watermark", ()))
                for reply in _answers(raw, 20):
                    what = (
                        "ok"
                        if reply.status == codec.OK
                        else type(codec.decode_error(reply.payload)).__name__
                    )
                    outcomes[what] = outcomes.get(what, 0) + 1
                slowest = max(slowest, _timed_ping(ping, start))
        print(f"threads peak {threads.peak}, outcomes {outcomes}, slowest ping {slowest:.3f} s")
        assert set(outcomes) <= {"ok", "LimitExceeded"}
        assert outcomes["ok"] >= 200  # each window gets some in as older ones close
        assert threads.peak < 60
        assert slowest < ANSWER_WITHIN
        # A durable registry closed for room comes back with its state.
        with RegistryClient(sp.endpoint, registry="name-0", timeout=30) as cli:
            spec = background_spec("kept")
            cli.register_operation(spec)
        for i in range(2000, 2040):
            raw.send(codec.encode_request(i, "", f"name-{i}", "watermark", ()))
            _answers(raw, 1)
        with RegistryClient(sp.endpoint, registry="name-0", timeout=30) as cli:
            snap = cli.snapshot(spec.id)
            assert snap is not None and snap.display_name == "kept"
        raw.close()
        ping.close()
    finally:
        sp.stop()


@pytest.mark.timeout(60)
def test_allow_list_refuses_a_typo_and_logs_json_lines(tmp_path: Path) -> None:
    sp = ServerProcess(
        tmp_path / "data", "--registry", "default", "--registry", "jobs", "--log-format", "json"
    ).start()
    log = sp.log
    try:
        with RegistryClient(sp.endpoint, registry="jobs", timeout=30) as cli:
            assert cli.watermark() == 0
        with (
            RegistryClient(sp.endpoint, registry="jbos", timeout=30) as cli,
            pytest.raises(InvalidArgument, match="'jbos' is not served here"),
        ):
            cli.watermark()
    finally:
        assert sp.stop() == 0
    lines = [json.loads(line) for line in log]
    messages = [line["message"] for line in lines]
    assert any(m.startswith("registry jobs opened") for m in messages), messages
    assert {"event": "registry_opened", "registry": "jobs"}.items() <= next(
        line.items() for line in lines if line.get("event") == "registry_opened"
    )
    refusal = next(line for line in lines if line.get("event") == "refused")
    assert (refusal["error_class"], refusal["count"]) == ("InvalidArgument", 1)
    assert "'jbos' is not served here" in refusal["example"]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)


def test_serve_help_says_what_synchronous_normal_gives_up() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "transport.cli", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "no fsync at all" in " ".join(out.split())


@pytest.mark.timeout(60)
def test_a_registry_closed_for_room_in_the_same_pass_as_its_request_reopens_for_it(
    tmp_path: Path,
) -> None:
    with RegistryServer(
        endpoint="tcp://127.0.0.1:0",
        feed_endpoint="tcp://127.0.0.1:0",
        data_dir=str(tmp_path / "data"),
        max_registries=1,
    ) as server:
        raw = _dealer(server.endpoint)
        raw.send(codec.encode_request(1, "", "a", "watermark", ()))
        assert _answers(raw, 1)[0].status == codec.OK
        # One frame, so one pass: "a" is open when its request is read, then "b" needs room.
        raw.send(
            codec.join_requests(
                [
                    codec.encode_request(2, "", "a", "watermark", ()),
                    codec.encode_request(3, "", "b", "watermark", ()),
                ]
            )
        )
        replies = {r.req_id: r.status for r in _answers(raw, 2)}
        assert replies == {2: codec.OK, 3: codec.OK}
        assert _timed_ping(raw, 4) < ANSWER_WITHIN  # the I/O thread is still there
        raw.close()


class _Closed(logging.Handler):
    """Sets an event per registry as the opener thread logs its closing."""

    def __init__(self) -> None:
        super().__init__()
        self.events: dict[str, threading.Event] = {}

    def event(self, name: str) -> threading.Event:
        return self.events.setdefault(name, threading.Event())

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "registry_closed":
            self.event(record.__dict__["registry"]).set()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("durable", [True, False], ids=["durable", "memory"])
def test_idle_registries_close_but_not_those_holding_waits_or_memory_state(
    tmp_path: Path, durable: bool
) -> None:
    closed = _Closed()
    logger = logging.getLogger("transport.registries")
    logger.addHandler(closed)
    logger.setLevel(logging.INFO)
    try:
        with (
            RegistryServer(
                endpoint="tcp://127.0.0.1:0",
                feed_endpoint="tcp://127.0.0.1:0",
                data_dir=str(tmp_path / "data") if durable else None,
                heartbeat_interval=0.05,
                registry_idle=0.2,
            ) as server,
            RegistryClient(server.endpoint, registry="held", timeout=30) as held,
        ):
            spec = background_spec("watched")
            held.register_operation(spec)
            watch = held.register_watcher(spec.id)
            with RegistryClient(server.endpoint, registry="later", timeout=30) as later:
                later.watermark()
            # "later" was opened after "held", so once it is closed for idleness the
            # sweep has passed "held" too.
            assert closed.event("later").wait(20)
            assert not closed.event("held").is_set()
            assert "held" in server.registries
            held.provisioning_succeeded(spec.id)
            held.complete_operation(spec.id, result_for(spec.id))
            assert watch.get(timeout=10).result.content == "done"
            if durable:  # nothing pending any more: it closes, and reopens as it was
                assert closed.event("held").wait(20)
                assert held.snapshot(spec.id).status.value == "completed"
            else:  # closing it would lose the operation
                with RegistryClient(server.endpoint, registry="later2", timeout=30) as c:
                    c.watermark()
                assert closed.event("later2").wait(20)
                assert not closed.event("held").is_set()
    finally:
        logger.removeHandler(closed)


@pytest.mark.timeout(60)
def test_an_idle_durable_registry_with_operations_in_flight_stays_open(tmp_path: Path) -> None:
    """Reopening a registry ends its in-flight operations ("registry restarted"), so a
    registry whose operations are still running is never closed for idleness."""
    closed = _Closed()
    logger = logging.getLogger("transport.registries")
    logger.addHandler(closed)
    logger.setLevel(logging.INFO)
    try:
        with (
            RegistryServer(
                endpoint="tcp://127.0.0.1:0",
                feed_endpoint="tcp://127.0.0.1:0",
                data_dir=str(tmp_path / "data"),
                heartbeat_interval=0.05,
                registry_idle=0.2,
            ) as server,
            RegistryClient(server.endpoint, registry="busy", timeout=30) as busy,
        ):
            spec = background_spec("long job")
            busy.register_operation(spec)
            busy.provisioning_succeeded(spec.id)
            with RegistryClient(server.endpoint, registry="later", timeout=30) as later:
                later.watermark()
            # "later" was opened after "busy": once it is closed, the sweep passed "busy".
            assert closed.event("later").wait(20)
            assert not closed.event("busy").is_set()
            assert busy.snapshot(spec.id).status.value == "running"
            busy.complete_operation(spec.id, result_for(spec.id))
            assert closed.event("busy").wait(20)
            assert busy.snapshot(spec.id).status.value == "completed"
    finally:
        logger.removeHandler(closed)


@pytest.mark.timeout(60)
def test_a_forgotten_client_that_never_reads_lets_go_of_its_held_replies(
    tmp_path: Path,
) -> None:
    """Without this, a connected peer that stopped reading kept its reply backlog (and the
    I/O loop's 2 ms retries) for as long as its connection lived."""
    with RegistryServer(
        endpoint="tcp://127.0.0.1:0",
        feed_endpoint="tcp://127.0.0.1:0",
        data_dir=None,
        heartbeat_interval=0.05,
        client_timeout=0.5,
    ) as server:
        with RegistryClient(server.endpoint, timeout=30) as cli:
            futures = [
                cli.submit("register_operation", background_spec(f"{i:05d}" + "n" * 1000))
                for i in range(600)
            ]
            for f in futures:
                f.get(timeout=30)
        replies = server._replies
        assert replies is not None
        hog = _dealer(server.endpoint, rcvhwm=1)
        hog.setsockopt(zmq.RCVBUF, 4096)
        for req_id in range(200):
            hog.send(codec.encode_request(req_id, "", "default", "list_operations", ()))
        pace = threading.Event()
        deadline = time.monotonic() + 30
        while not replies.backlog:
            assert time.monotonic() < deadline, "the hog's replies never backed up"
            pace.wait(0.02)
        # The hog sends nothing more: it is forgotten after client_timeout, and its
        # backlog goes with it although its connection stays open.
        while replies.backlog or replies.total:
            assert time.monotonic() < deadline, f"{replies.total} bytes still held"
            pace.wait(0.02)
        hog.close()
