"""Large reads come in bounded pages; callers without a limit still get everything."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from actors import (
    InvalidArgument,
    OperationKind,
    OperationSpec,
    OperationStatus,
    OpsRegistry,
)
from actors.api import RegistryCalls, page_key
from actors.model import CompletionBatch, OperationId, OperationLifecycleSnapshot
from actors.paging import DEFAULT_PAGE, MAX_PAGE
from tests.conftest import result_for
from transport import FeedCursorAhead, FeedSubscriber, RegistryClient, RegistryServer, codec
from transport import feed as feed_module

pytestmark = pytest.mark.timeout(120)

N = DEFAULT_PAGE * 2 + 44  # three default pages


def _spec(i: int) -> OperationSpec:
    return OperationSpec(
        id=OperationId.new(),
        kind=OperationKind.DETACHED_JOB_WAIT if i % 2 == 0 else OperationKind.BACKGROUND_TOOL_OP,
        owner_session_id=f"owner-{i % 2}",
        display_name=f"op-{i % 50:02d}",  # names repeat: the id breaks ties
        source_label="paging",
    )


def _populate(calls: RegistryCalls) -> list[OperationSpec]:
    """N operations, every third one completed (fewer than the 256 a registry retains)."""
    specs = [_spec(i) for i in range(N)]
    for i, spec in enumerate(specs):
        calls.register_operation(spec)
        if i % 3 == 0:
            calls.provisioning_succeeded(spec.id)
            calls.complete_operation(spec.id, result_for(spec.id))
    return specs


def _finish(calls: RegistryCalls, count: int) -> None:
    """``count`` more feed entries (their operations may be evicted: the feed keeps 1,024)."""
    for i in range(count):
        spec = _spec(i)
        calls.register_operation(spec)
        calls.cancel_operation(spec.id)


@pytest.fixture(params=["in_process", "client"])
def calls(request: pytest.FixtureRequest, server: RegistryServer) -> Iterator[RegistryCalls]:
    if request.param == "in_process":
        reg = OpsRegistry.start()
        try:
            yield reg
        finally:
            reg.stop()
    else:
        with RegistryClient(server.endpoint, registry="paging", timeout=30) as cli:
            yield cli


def _order(views: list[OperationLifecycleSnapshot]) -> list[tuple[str, str]]:
    return [(v.display_name, str(v.id)) for v in views]


def test_list_operations_filters_pages_and_reads_everything_without_a_limit(
    calls: RegistryCalls,
) -> None:
    specs = _populate(calls)
    every = calls.list_operations()
    assert len(every) == N
    assert _order(every) == sorted(_order(every))  # (display_name, id), total

    pages: list[OperationLifecycleSnapshot] = []
    after = None
    while True:
        page = calls.list_operations(limit=100, after=after)
        assert len(page) <= 100
        pages += page
        if len(page) < 100:
            break
        after = page_key(page[-1])
    assert pages == every

    mine = calls.list_operations(owner_session_id="owner-1")
    assert {v.id for v in mine} == {s.id for i, s in enumerate(specs) if i % 2 == 1}
    done = calls.list_operations(
        status=OperationStatus.COMPLETED, kind=OperationKind.DETACHED_JOB_WAIT
    )
    assert {v.id for v in done} == {s.id for i, s in enumerate(specs) if i % 6 == 0}
    assert calls.list_operations(owner_session_id="nobody") == []

    for bad in (0, MAX_PAGE + 1, -3):
        with pytest.raises(InvalidArgument, match="limit"):
            calls.list_operations(limit=bad)
    with pytest.raises(InvalidArgument):
        calls.list_operations(limit=5, after=("only-a-name",))  # type: ignore[arg-type]


def test_list_since_is_bounded_per_reply_and_whole_without_a_limit(calls: RegistryCalls) -> None:
    total = DEFAULT_PAGE + 50
    _finish(calls, total)
    whole = calls.list_since(0)
    assert [e.seq for e in whole.entries] == list(range(1, total + 1))
    assert whole.watermark == total
    page = calls.list_since(10, limit=7)
    assert [e.seq for e in page.entries] == list(range(11, 18))
    assert page.watermark == total


def test_the_server_bounds_replies_for_callers_that_name_no_limit(server: RegistryServer) -> None:
    with RegistryClient(server.endpoint, timeout=30) as cli:
        _populate(cli)
        _finish(cli, DEFAULT_PAGE)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(server.endpoint)
    try:
        # Requests as a caller written before paging sends them: no optional arguments.
        sock.send(codec.encode_request(1, "", "default", "list_operations", ()))
        sock.send(codec.encode_request(2, "", "default", "list_since", (0,)))
        got = {}
        for _ in range(2):
            reply = codec.decode_reply(sock.recv())
            assert reply.status == codec.OK
            got[reply.req_id] = codec.decode_value(
                "list_operations" if reply.req_id == 1 else "list_since", reply.payload
            )
    finally:
        sock.close()
    assert len(got[1]) == DEFAULT_PAGE < N
    batch = got[2]
    assert isinstance(batch, CompletionBatch)
    assert len(batch.entries) == DEFAULT_PAGE < batch.watermark


def test_a_subscriber_repairs_across_pages_up_to_the_watermark(
    server: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "_REPAIR_PAGE", 50)
    with RegistryClient(server.endpoint, timeout=30) as cli:
        _finish(cli, 220)
        mark = cli.watermark()
    with FeedSubscriber(server.endpoint, server.feed_endpoint, after_seq=3) as sub:
        seqs = []
        while len(seqs) < mark - 3:
            entry = sub.next(timeout=30)
            assert entry is not None, f"stalled after {len(seqs)}"
            seqs.append(entry.seq)
        assert seqs == list(range(4, mark + 1))
        assert sub.repairs == 1  # one repair, several pages


def test_a_cursor_ahead_of_the_watermark_raises_instead_of_waiting(server: RegistryServer) -> None:
    with RegistryClient(server.endpoint, timeout=30) as cli:
        for i in range(3):
            spec = _spec(i)
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
            cli.complete_operation(spec.id, result_for(spec.id))
    with (
        FeedSubscriber(server.endpoint, server.feed_endpoint, after_seq=1000) as sub,
        pytest.raises(FeedCursorAhead) as caught,
    ):
        sub.next(timeout=20)
    assert (caught.value.after_seq, caught.value.watermark) == (1000, 3)
    # A cursor exactly at the watermark is the normal "caught up" state.
    with FeedSubscriber(server.endpoint, server.feed_endpoint, after_seq=3) as sub:
        assert sub.next(timeout=1.5) is None
