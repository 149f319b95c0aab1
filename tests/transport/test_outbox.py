"""transport/_outbox.py without sockets: the server's typed messages on their queue."""

from __future__ import annotations

import pytest

from actors import NotFound, OperationId
from transport import codec
from transport._outbox import Outbox, ServerItem, Sink

pytestmark = pytest.mark.timeout(10)


def test_a_sink_is_answered_once_whatever_sets_it_later() -> None:
    box: Outbox[ServerItem] = Outbox()
    try:
        sink = Sink(box, b"client", 7, "snapshot", "default")
        assert not sink.done()
        sink.set(None)
        sink.set("late")
        sink.set_exception(NotFound(OperationId.new()))
        items = box.drain()
        assert items == [sink]
        assert (sink.status, sink.value, sink.done()) == (codec.OK, None, True)
    finally:
        box.close()


def test_an_error_answer_carries_the_error() -> None:
    box: Outbox[ServerItem] = Outbox()
    try:
        sink = Sink(box, b"client", 8, "snapshot", "default", batched=True)
        error = NotFound(OperationId.new())
        sink.set_exception(error)
        assert box.drain() == [sink]
        assert (sink.status, sink.value, sink.batched) == (codec.ERROR, error, True)
        assert box.drain() == []
    finally:
        box.close()
