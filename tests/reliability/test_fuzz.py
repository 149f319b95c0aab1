"""Fuzzing a live server: random frames and well-formed requests with hostile values.

Every request here must be refused; afterwards the registry must be exactly as before,
and the server must still answer.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import OperationId, calls
from tests.conftest import background_spec, result_for
from transport import RegistryClient, RegistryServer, codec

pytestmark = pytest.mark.timeout(300)

METHODS = sorted(calls.METHODS)
UNKNOWN = str(OperationId.new())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=200),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), max_size=50),
    st.binary(max_size=200),
    st.just("x" * 100_000),
    st.just(UNKNOWN),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


@pytest.fixture
def live(
    server: RegistryServer,
) -> Iterator[tuple[RegistryServer, RegistryClient, zmq.Socket[bytes]]]:
    with RegistryClient(server.endpoint, timeout=10) as cli:
        for i in range(3):
            spec = background_spec(f"keep-{i}")
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
            if i == 0:
                cli.complete_operation(spec.id, result_for(spec.id))
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)
        sock.connect(server.endpoint)
        try:
            yield server, cli, sock
        finally:
            sock.close()


def _state(cli: RegistryClient) -> tuple[object, ...]:
    return (cli.list_operations(), cli.list_since(0), cli.diagnostic_snapshot())


def _refused(sock: zmq.Socket[bytes], frame: bytes) -> None:
    sock.send(frame)
    reply = codec.decode_reply(sock.recv())
    assert reply.status == codec.ERROR, frame[:80]


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(frame=st.binary(max_size=2048))
def test_random_frames_are_refused_and_change_nothing(live, frame: bytes) -> None:  # type: ignore[no-untyped-def]
    _, cli, sock = live
    before = _state(cli)
    sock.send(frame)
    reply = codec.decode_reply(sock.recv())
    # A random frame can only be valid by accident if it decodes as a request; it can
    # still never name an existing operation, so nothing may change either way.
    assert reply.status in (codec.ERROR, codec.OK, codec.PONG, codec.ACCEPTED)
    assert _state(cli) == before


@SETTINGS
@given(method=st.sampled_from(METHODS), args=st.lists(values, max_size=4))
def test_wrong_types_and_extreme_values_are_typed_errors(live, method: str, args: list) -> None:  # type: ignore[no-untyped-def, type-arg]
    server, cli, sock = live
    before = _state(cli)
    # Stamped with the live server's epoch, so state-changing methods reach validation.
    frame = msgspec.msgpack.encode([codec.VERSION, 1, server.epoch, "default", method, args])
    sock.send(frame)
    reply = codec.decode_reply(sock.recv())
    if reply.status == codec.ERROR:
        error = codec.decode_error(reply.payload)
        assert type(error).__name__ in {
            "InvalidArgument",
            "NotFound",
            "TooLarge",
            "InvalidTransition",
            "AlreadyRegistered",
        }, error
        assert _state(cli) == before
    # A request that happened to be valid (e.g. watermark()) is answered normally.


def test_huge_payload_and_control_characters(live) -> None:  # type: ignore[no-untyped-def]
    server, cli, sock = live
    before = _state(cli)
    op = str(OperationId.new())
    # Above max_frame: a TooLarge answer. Far above it (10 MB): ZeroMQ's MAXMSGSIZE drops
    # the connection before the frame is read; no answer, and the server stays up.
    _refused(sock, codec.encode_request(3, "", "default", "fail_operation", (op, "y" * (2 << 20))))
    flood = zmq.Context.instance().socket(zmq.DEALER)
    flood.setsockopt(zmq.LINGER, 0)
    flood.connect(server.endpoint)
    try:
        flood.send(codec.encode_request(9, "", "default", "fail_operation", (op, "z" * (10 << 20))))
        assert not flood.poll(1000), "a 10 MB frame must not be answered"
    finally:
        flood.close()
    _refused(
        sock,
        msgspec.msgpack.encode(
            [
                codec.VERSION,
                4,
                server.epoch,
                "default",
                "peer_ready",
                [op, ["bad\x07name", "p", "a"]],
            ]
        ),
    )
    _refused(
        sock,
        msgspec.msgpack.encode(
            [
                codec.VERSION,
                5,
                server.epoch,
                "default",
                "report_progress",
                [op, ["m", float("nan")]],
            ]
        ),
    )
    assert _state(cli) == before
    assert cli.watermark() == 1
