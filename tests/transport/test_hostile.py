"""Hostile input: the server stays up, answers typed errors, and changes nothing."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import msgspec
import pytest
import zmq
import zmq.auth

from actors import InvalidArgument, OperationStatus
from tests.conftest import background_spec, result_for
from transport import (
    Busy,
    FeedSubscriber,
    RegistryClient,
    RegistryServer,
    ServerConfig,
    ServerRestarted,
    TooLarge,
    Unavailable,
    codec,
)

pytestmark = pytest.mark.timeout(120)


def _state(cli: RegistryClient) -> tuple[object, ...]:
    return (cli.list_operations(), cli.list_since(0), cli.diagnostic_snapshot())


def _raw_dealer(endpoint: str) -> zmq.Socket[bytes]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(endpoint)
    return sock


def _reply(sock: zmq.Socket[bytes]) -> tuple[int, int, object]:
    reply = codec.decode_reply(sock.recv())
    return reply.req_id, reply.status, reply.payload


def _frames(epoch: str) -> list[bytes]:
    """Malformed frames; state-changing ones name the live server (else it refuses on that)."""
    return [
        b"",
        b"\x00",
        os.urandom(64),
        b"\xc1",  # a msgpack byte that is never valid
        msgspec.msgpack.encode([1, 7]),  # truncated envelope
        msgspec.msgpack.encode([99, 7, "", "default", "watermark", []]),  # future version
        msgspec.msgpack.encode([1, 7, "", "default", "no_such_method", []]),
        msgspec.msgpack.encode([1, 7, epoch, "default", "complete_operation", [1, 2, 3]]),
        msgspec.msgpack.encode(
            [1, 7, epoch, "default", "report_progress", ["x", {"percent": "NaN"}]]
        ),
        msgspec.msgpack.encode([1, 7, "", "default", "list_since", [-1]]),
        msgspec.msgpack.encode([1, 7, "", "default", "list_since", ["ten"]]),
        msgspec.msgpack.encode([1, 7, "", "bad registry!", "watermark", []]),
        msgspec.msgpack.encode([1, 7, epoch, "default", "register_operation", [{"id": "x"}]]),
        # A pickle: the server must treat it as bytes it cannot read, never load it.
        b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.",
    ]


def test_malformed_frames_get_error_replies_and_change_nothing(server: RegistryServer) -> None:
    with RegistryClient(server.endpoint, timeout=10) as cli:
        op = background_spec("victim")
        cli.register_operation(op)
        cli.provisioning_succeeded(op.id)
        before = _state(cli)
        sock = _raw_dealer(server.endpoint)
        try:
            for frame in _frames(server.epoch):
                sock.send(frame)
                _req_id, status, payload = _reply(sock)
                assert status == codec.ERROR, frame
                error = codec.decode_error(payload)  # type: ignore[arg-type]
                assert isinstance(error, InvalidArgument), (frame, error)
            # Several frames in one message are not a request either.
            sock.send_multipart([b"a", b"b"])
            assert _reply(sock)[1] == codec.ERROR
        finally:
            sock.close()
        assert _state(cli) == before
        cli.complete_operation(op.id, result_for(op.id))  # and it still works
        assert cli.snapshot(op.id).status is OperationStatus.COMPLETED


def test_oversized_frame_is_refused_with_too_large(server: RegistryServer) -> None:
    sock = _raw_dealer(server.endpoint)
    try:
        big = "x" * (server.config.max_frame + 10)
        sock.send(codec.encode_request(5, "", "default", "terminate_owner", (big,)))
        req_id, status, payload = _reply(sock)
        assert (req_id, status) == (5, codec.ERROR)
        assert isinstance(codec.decode_error(payload), TooLarge)  # type: ignore[arg-type]
    finally:
        sock.close()


def test_flood_beyond_the_in_flight_limit_gets_busy_and_the_server_stays_up(
    tmp_path: Path,
) -> None:
    with (
        RegistryServer(
            ServerConfig(
                endpoint="tcp://127.0.0.1:0",
                feed_endpoint="tcp://127.0.0.1:0",
                data_dir=str(tmp_path / "d"),
                max_inflight=64,
            )
        ) as srv,
        RegistryClient(srv.endpoint, timeout=30) as flood,
        RegistryClient(srv.endpoint, timeout=30) as calm,
    ):
        futures = [flood.submit("list_operations") for _ in range(10_000)]
        answered = busy = 0
        for f in futures:
            try:
                f.get(timeout=60)
                answered += 1
            except Busy as exc:
                assert exc.limit == 64
                busy += 1
        assert answered + busy == 10_000
        assert busy > 0 and answered >= 64
        # Another client is unaffected.
        assert calm.watermark() == 0


@pytest.mark.parametrize("stamp", ["some-older-epoch", ""], ids=["older", "none"])
def test_requests_for_a_previous_server_are_not_executed(
    server: RegistryServer, stamp: str
) -> None:
    sock = _raw_dealer(server.endpoint)
    try:
        spec = background_spec("stale")
        sock.send(codec.encode_request(9, stamp, "default", "register_operation", (spec,)))
        req_id, status, payload = _reply(sock)
        assert (req_id, status) == (9, codec.ERROR)
        error = codec.decode_error(payload)  # type: ignore[arg-type]
        # A definite refusal naming the incarnation to send it to.
        assert isinstance(error, ServerRestarted) and isinstance(error, Unavailable)
        assert error.epoch == server.epoch
        assert "it was not executed" in str(error)
    finally:
        sock.close()
    with RegistryClient(server.endpoint, timeout=10) as cli:
        assert cli.snapshot(spec.id) is None


def test_curve_rejects_unknown_keys_and_accepts_allowed_ones(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    allowed = tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server_public, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, client_secret = zmq.auth.create_certificates(keys, "client")
    os.rename(client_public, allowed / "client.key")
    server_key, _ = zmq.auth.load_certificate(server_public)
    good = zmq.auth.load_certificate(client_secret)
    assert good[1] is not None
    with RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "d"),
            curve_secret_file=str(server_secret),
            curve_allow_dir=str(allowed),
        )
    ) as srv:
        with RegistryClient(
            srv.endpoint, timeout=10, curve_server_key=server_key, curve_keypair=(good[0], good[1])
        ) as ok:
            spec = background_spec("secure")
            ok.register_operation(spec)
        with RegistryClient(srv.endpoint, timeout=1.0, curve_server_key=server_key) as stranger:
            with pytest.raises(Unavailable):
                stranger.watermark()
            with pytest.raises(Unavailable):
                stranger.register_operation(background_spec("intruder"))
        with RegistryClient(srv.endpoint, timeout=1.0) as plain, pytest.raises(Unavailable):
            plain.snapshot(spec.id)
        # Nor can it read the feed: a subscriber with an unknown key receives nothing.
        with (
            RegistryClient(
                srv.endpoint, timeout=10, curve_server_key=server_key, curve_keypair=(good[0], good[1])
            ) as ok,
            FeedSubscriber(
                srv.endpoint, srv.feed_endpoint, timeout=0.5, idle_check=0.2,
                curve_server_key=server_key,
            ) as eavesdropper,
        ):  # fmt: skip
            ok.provisioning_succeeded(spec.id)
            ok.complete_operation(spec.id, result_for(spec.id))
            assert eavesdropper.next(timeout=2.0) is None
        with FeedSubscriber(
            srv.endpoint,
            srv.feed_endpoint,
            after_seq=0,
            curve_server_key=server_key,
            curve_keypair=(good[0], good[1]),
        ) as allowed_sub:
            entry = allowed_sub.next(timeout=10)  # the control: an allowed key reads it
            assert entry is not None and entry.operation_id == spec.id
        with RegistryClient(
            srv.endpoint, timeout=10, curve_server_key=server_key, curve_keypair=(good[0], good[1])
        ) as ok:
            assert ok.diagnostic_snapshot().operation_count == 1


def test_ipc_endpoint_directory_is_owner_only(tmp_path: Path) -> None:
    sock_dir = tmp_path / "sockets"
    with RegistryServer(
        ServerConfig(
            endpoint=f"ipc://{sock_dir}/requests",
            feed_endpoint=f"ipc://{sock_dir}/feed",
            data_dir=str(tmp_path / "d"),
        )
    ) as srv:
        mode = stat.S_IMODE(sock_dir.stat().st_mode)
        assert mode == 0o700, oct(mode)
        with RegistryClient(srv.endpoint, timeout=10) as cli:
            assert cli.watermark() == 0


def _replies(sock: zmq.Socket[bytes], count: int) -> dict[int, tuple[int, object]]:
    """Read single or batch reply frames until ``count`` answers arrived, by request id."""
    got: dict[int, tuple[int, object]] = {}
    while len(got) < count:
        for reply in codec.decode_replies(sock.recv()):
            got[reply.req_id] = (reply.status, reply.payload)
    return got


MALFORMED_BATCHES = [
    b"\x92",  # a batch header and nothing else
    msgspec.msgpack.encode([1, 5]),  # requests is not a list
    msgspec.msgpack.encode([1, [[1, 7]]]),  # a truncated request inside
    msgspec.msgpack.encode([99, []]),  # future batch version
    msgspec.msgpack.encode([1, [[99, 7, "", "default", "watermark", []]]]),  # future request
    msgspec.msgpack.encode([1, ["x", "y"]]),
]


def test_batch_frames_answer_each_request_and_bad_batches_change_nothing(
    server: RegistryServer,
) -> None:
    spec = background_spec("batched")
    sock = _raw_dealer(server.endpoint)
    try:
        sock.send(
            codec.join_requests(
                [
                    codec.encode_request(1, server.epoch, "default", "register_operation", (spec,)),
                    codec.encode_request(2, "", "default", "list_since", (-1,)),
                    codec.encode_request(3, server.epoch, "default", "register_operation", (spec,)),
                    codec.encode_request(4, "", "default", "no_such_method", ()),
                    codec.encode_request(
                        5, server.epoch, "default", "provisioning_succeeded", (spec.id,)
                    ),
                ]
            )
        )
        got = _replies(sock, 5)
        assert got[1][0] == codec.OK and got[5][0] == codec.OK
        errors = {i: codec.decode_error(got[i][1]) for i in (2, 3, 4)}  # type: ignore[arg-type]
        assert isinstance(errors[2], InvalidArgument)
        assert type(errors[3]).__name__ == "AlreadyRegistered"
        assert isinstance(errors[4], InvalidArgument)

        with RegistryClient(server.endpoint, timeout=10) as cli:
            assert cli.snapshot(spec.id).status is OperationStatus.RUNNING
            before = _state(cli)
            for frame in MALFORMED_BATCHES:
                sock.send(frame)
                req_id, status, payload = _reply(sock)
                assert (req_id, status) == (0, codec.ERROR), frame
                assert isinstance(codec.decode_error(payload), InvalidArgument), frame  # type: ignore[arg-type]
            # A batch over the frame limit: every request in it is refused, none runs.
            big = "x" * (server.config.max_frame // 2)
            sock.send(
                codec.join_requests(
                    [
                        codec.encode_request(10 + i, "", "default", "terminate_owner", (big,))
                        for i in range(3)
                    ]
                )
            )
            got = _replies(sock, 3)
            for i in range(3):
                status, payload = got[10 + i]
                assert status == codec.ERROR
                assert isinstance(codec.decode_error(payload), TooLarge)  # type: ignore[arg-type]
            assert _state(cli) == before
    finally:
        sock.close()


@pytest.mark.parametrize("count", [1, 15, 16, 300, 70_000])
def test_joined_requests_decode_as_the_same_requests(count: int) -> None:
    frames = [codec.encode_request(i, "", "default", "watermark", ()) for i in range(count)]
    requests = codec.decode_requests(codec.join_requests(frames))
    assert [r.req_id for r in requests] == list(range(count))
    assert {r.method for r in requests} == {"watermark"}


def test_a_batched_watcher_is_accepted_before_its_value_arrives(server: RegistryServer) -> None:
    """The value of a future already resolved must not overtake its ACCEPTED in a batch."""
    with RegistryClient(server.endpoint, timeout=10) as cli:
        spec = background_spec("done-already")
        cli.register_operation(spec)
        cli.provisioning_succeeded(spec.id)
        cli.complete_operation(spec.id, result_for(spec.id))
    sock = _raw_dealer(server.endpoint)
    try:
        for round_ in range(20):
            base = 100 * round_
            sock.send(
                codec.join_requests(
                    [
                        codec.encode_request(base + i, "", "default", "watermark", ())
                        for i in range(3)
                    ]
                    + [
                        codec.encode_request(
                            base + 9, "", "default", "register_watcher", (spec.id,)
                        )
                    ]
                )
            )
            order: list[tuple[int, int]] = []
            while (base + 9, codec.OK) not in order:
                order += [(r.req_id, r.status) for r in codec.decode_replies(sock.recv())]
            assert order.index((base + 9, codec.ACCEPTED)) < order.index((base + 9, codec.OK))
    finally:
        sock.close()


def test_a_failure_in_the_admission_thread_neither_locks_clients_out_nor_hangs_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Found in CI: stop() blocked forever sending the admission thread its wake-up
    when that thread had already ended (nobody read the pipe); and an ended admission
    thread answers no handshake, so nobody could connect any more."""
    from transport import admission

    failed = threading.Event()
    real = admission.Admission._log_refusals

    def fail_once(self: admission.Admission) -> None:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("admission event failed (test)")
        real(self)

    monkeypatch.setattr(admission.Admission, "_log_refusals", fail_once)
    srv = RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "d"),
        )
    ).start()
    stopped = threading.Event()
    try:
        with RegistryClient(srv.endpoint, timeout=10) as first:
            assert first.watermark() == 0
        assert failed.wait(10)
        with RegistryClient(srv.endpoint, timeout=10) as second:  # a handshake after the failure
            assert second.watermark() == 0
        assert "handling a connection event failed" in caplog.text
        threading.Thread(target=lambda: (srv.stop(), stopped.set()), daemon=True).start()
        assert stopped.wait(30), "stop() hung"
    finally:
        if not stopped.is_set():
            srv.stop()


def test_stopping_a_server_twice_is_harmless(tmp_path: Path) -> None:
    # A second stop() used to read the outbox's closed wake-up pipe (OSError: Bad file
    # descriptor): a caller's `finally: server.stop()` after an explicit stop failed.
    srv = RegistryServer(
        ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=str(tmp_path / "data"),
        )
    ).start()
    srv.stop()
    srv.stop()
