"""What the checks share: the raw connection, the run's registry and owner, and the tallies."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import zmq

from actors.model import (
    OperationId,
    OperationKind,
    OperationLifecycleSnapshot,
    OperationResult,
    OperationSpec,
)
from transport.conformance._wire import FeedWire, Wire, expect

__all__ = ["Session"]


class Session:
    """One run of the suite against one server."""

    def __init__(
        self, endpoint: str, feed_endpoint: str | None, registry: str | None, timeout: float
    ) -> None:
        run = uuid.uuid4().hex[:12]
        self.fresh = registry is None
        self.registry = registry or f"conformance-{run}"
        #: every operation the suite registers belongs to this owner
        self.owner = f"conformance-{run}"
        self.endpoint = endpoint
        self.feed_endpoint = feed_endpoint
        self.timeout = timeout
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.wire = Wire(self.ctx, endpoint, self.registry, timeout)
        self.feed: FeedWire | None = None
        #: methods that got a successful answer (OK, or ACCEPTED and a final OK)
        self.exercised: set[str] = set()
        self._names = itertools.count(1)
        #: operations the suite saw end, with their outcome (checked against the feed)
        self.ended: dict[OperationId, Any] = {}

    def close(self) -> None:
        self.wire.close()
        if self.feed is not None:
            self.feed.close()
        self.ctx.term()

    # --- calls that record what was exercised -----------------------------------------------

    def ok(self, method: str, *args: Any) -> Any:
        value = self.wire.ok(method, *args)
        self.exercised.add(method)
        return value

    def future(self, method: str, *args: Any) -> int:
        return self.wire.future(method, *args)

    def final(self, method: str, rid: int) -> Any:
        value = self.wire.final(method, rid)
        self.exercised.add(method)
        return value

    # --- operations ----------------------------------------------------------------------------

    def spec(
        self,
        kind: OperationKind = OperationKind.BACKGROUND_TOOL_OP,
        *,
        owner: str | None = None,
        name: str | None = None,
    ) -> OperationSpec:
        return OperationSpec(
            id=OperationId.new(),
            kind=kind,
            owner_session_id=owner or self.owner,
            display_name=name or f"conformance-{next(self._names):04d}",
            source_label="conformance",
            expect_peer_channel=kind is OperationKind.MOB_MEMBER_CHILD,
        )

    def registered(self, kind: OperationKind = OperationKind.BACKGROUND_TOOL_OP) -> OperationId:
        spec = self.spec(kind)
        self.ok("register_operation", spec)
        return spec.id

    def running(self, kind: OperationKind = OperationKind.BACKGROUND_TOOL_OP) -> OperationId:
        op = self.registered(kind)
        self.ok("provisioning_succeeded", op)
        return op

    def result(self, op: OperationId, content: str = "done") -> OperationResult:
        return OperationResult(id=op, content=content, duration_ms=5, tokens_used=3)

    def completed(self) -> OperationId:
        op = self.running()
        self.ok("complete_operation", op, self.result(op))
        return op

    def snapshot(self, op: OperationId) -> OperationLifecycleSnapshot:
        snap = self.ok("snapshot", op)
        expect(snap is not None, f"snapshot({op}) is nil for a registered operation")
        assert snap is not None
        expect(snap.id == op, f"snapshot({op}) describes {snap.id}")
        return snap  # type: ignore[no-any-return]

    def status(self, op: OperationId, status: str) -> OperationLifecycleSnapshot:
        snap = self.snapshot(op)
        expect(snap.status == status, f"{op} is {snap.status}, expected {status}")
        return snap
