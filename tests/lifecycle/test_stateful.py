"""Random call sequences against ``OpsRegistry``, checked step by step against a reference model.

The model is deliberately naive — plain dicts, a list for the completed FIFO,
a list for the feed — and restates docs/semantics.md directly. After every step the
whole visible state of the registry (snapshots, listing, diagnostic counters,
the feed, and every future it has handed out) must equal the model's.

Where docs/semantics.md leaves a detail open, the model pins the choice that
``actors/lifecycle.py`` makes: ``terminate_owner`` ends operations in
registration order; a barrier broken by eviction or collection fails with
``NotFound`` of its first removed member in request order; a commit that
satisfies the barrier satisfies it before evicting. Where docs/semantics.md leaves a choice to the
implementation and no document fixes it (which terminal member an immediate
``wait_any`` reports, which unknown id it names), any correct answer passes.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from actors import (
    Aborted,
    AlreadyPeerReady,
    AlreadyRegistered,
    Cancelled,
    Completed,
    DuplicateWaitOperation,
    Failed,
    InvalidTransition,
    MaxConcurrentExceeded,
    NotFound,
    OperationId,
    OperationKind,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    OperationStatus,
    OpsFuture,
    OpsLifecycleError,
    OpsRegistry,
    PeerNotExpected,
    Retired,
    Terminated,
    WaitAllResult,
    WaitAllSatisfied,
    WaitAlreadyActive,
    WaitCancelled,
)
from actors.testing import MemoryStore

WAIT = 5.0

P = OperationStatus.PROVISIONING
R = OperationStatus.RUNNING
RT = OperationStatus.RETIRING
NON_TERMINAL = frozenset({P, R, RT})

#: docs/semantics.md: action label -> statuses it is legal from
LEGAL_FROM: dict[str, frozenset[OperationStatus]] = {
    "provisioning_succeeded": frozenset({P}),
    "fail_operation": frozenset({P, R, RT}),
    "peer_ready": frozenset({R, RT}),
    "report_progress": frozenset({R, RT}),
    "complete_operation": frozenset({R, RT}),
    "abort_provisioning": frozenset({P}),
    "cancel_operation": frozenset({P, R, RT}),
    "request_retire": frozenset({R}),
    "mark_retired": frozenset({R, RT}),
}

#: terminal method -> (action label, outcome for op with text)
TERMINAL_METHODS: dict[str, tuple[str, Any]] = {
    "provisioning_failed": ("fail_operation", lambda op, text: Failed(f"prov {text}")),
    "fail_operation": ("fail_operation", lambda op, text: Failed(text)),
    "complete_operation": (
        "complete_operation",
        lambda op, text: Completed(OperationResult(id=op, content=text, duration_ms=1)),
    ),
    "abort_provisioning": ("abort_provisioning", lambda op, text: Aborted(text or None)),
    "cancel_operation": ("cancel_operation", lambda op, text: Cancelled(text or None)),
    "mark_retired": ("mark_retired", lambda op, text: Retired()),
}

#: memory only; through the persistence actor with a MemoryStore; a SQLite store on disk
BACKENDS = ("memory", "store", "sqlite")

OTHER_METHODS = ("provisioning_succeeded", "peer_ready", "report_progress", "request_retire")

texts = st.text(alphabet="abcxyz", max_size=3)


def make_id(n: int) -> OperationId:
    return OperationId(f"00000000-0000-7000-8000-{n:012x}")


# --- the reference model ------------------------------------------------------------------------


@dataclass
class Watch:
    future: OpsFuture[Any]
    expected: Any = None  # the outcome once resolved
    resolved: bool = False
    calls: list[int] = field(default_factory=list)


@dataclass
class WaitAny:
    ids: frozenset[OperationId]
    future: OpsFuture[Any]
    resolved: bool = False
    expected: Any = None  # (id, outcome), or a set of acceptable ones
    calls: list[int] = field(default_factory=list)


@dataclass
class Barrier:
    ids: tuple[OperationId, ...]
    future: OpsFuture[Any]
    request_id: str
    result: WaitAllResult | None = None
    error: OpsLifecycleError | None = None
    calls: list[int] = field(default_factory=list)


@dataclass
class MOp:
    spec: OperationSpec
    status: OperationStatus = P
    peer_ready: bool = False
    peer_handle: OperationPeerHandle | None = None
    progress_count: int = 0
    last_progress: OperationProgressUpdate | None = None
    #: every accepted progress update, in order (progress_log keeps the last 32)
    progress: list[OperationProgressUpdate] = field(default_factory=list)
    outcome: Any = None
    watchers: list[Watch] = field(default_factory=list)


def counted(future: OpsFuture[Any]) -> list[int]:
    calls: list[int] = []
    future.add_done_callback(lambda _f: calls.append(1))
    return calls


def expect_error(call: Any, expected: OpsLifecycleError | None) -> Any:
    """Run ``call``; it must succeed when ``expected`` is None, else raise exactly ``expected``."""
    if expected is None:
        return call()
    with pytest.raises(OpsLifecycleError) as info:
        call()
    err = info.value
    assert type(err) is type(expected), f"expected {expected!r}, got {err!r}"
    assert err == expected
    assert str(err) == str(expected)
    return None


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.reg: OpsRegistry | None = None
        self.data_dir: str | None = None
        self.max_completed = 1
        self.max_concurrent: int | None = None
        self.ops: dict[OperationId, MOp] = {}
        self.fifo: list[OperationId] = []
        self.feed: list[tuple[int, OperationId, OperationKind, str, Any]] = []
        self.ids: list[OperationId] = []  # every id ever handed to the registry
        self.ghosts: list[OperationId] = [make_id(0)]  # never successfully registered
        self.next_id = 1
        self.next_name = 1
        self.watches: list[Watch] = []
        self.wait_anys: list[WaitAny] = []
        self.barriers: list[Barrier] = []
        self.barrier: Barrier | None = None

    # --- setup / teardown ---------------------------------------------------------------------

    @initialize(
        max_completed=st.integers(1, 3),
        max_concurrent=st.none() | st.integers(1, 4),
        backend=st.sampled_from(BACKENDS),
        kinds=st.lists(st.sampled_from(list(OperationKind)), max_size=4),
    )
    def open(
        self,
        max_completed: int,
        max_concurrent: int | None,
        backend: str,
        kinds: list[OperationKind],
    ) -> None:
        self.max_completed = max_completed
        self.max_concurrent = max_concurrent
        if backend == "sqlite":
            self.data_dir = tempfile.mkdtemp(prefix="opsreg-stateful-")
            self.reg = OpsRegistry.open(
                self.data_dir,
                synchronous="normal",
                max_completed=max_completed,
                max_concurrent=max_concurrent,
            )
        else:
            store = MemoryStore() if backend == "store" else None
            self.reg = OpsRegistry.start(max_completed, max_concurrent, store=store)
        for kind in kinds:
            self._register_new(kind)

    def teardown(self) -> None:
        try:
            if self.reg is not None:
                self.reg.stop()
        finally:
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- model helpers ------------------------------------------------------------------------

    @property
    def r(self) -> OpsRegistry:
        assert self.reg is not None
        return self.reg

    def active(self) -> int:
        return sum(op.status in NON_TERMINAL for op in self.ops.values())

    def pool(self) -> list[OperationId]:
        return self.ids + self.ghosts

    def pick(self, data: st.DataObject, *, prefer_live: bool = True) -> OperationId:
        live = [i for i, op in self.ops.items() if op.status in NON_TERMINAL]
        if prefer_live and live and data.draw(st.integers(0, 2), label="live?") > 0:
            return data.draw(st.sampled_from(live), label="op")
        return data.draw(st.sampled_from(self.pool()), label="op")

    def pick_many(self, data: st.DataObject, *, min_size: int) -> list[OperationId]:
        """Mostly distinct known ids (so barriers form); sometimes anything, repeats included."""
        known = list(self.ops)
        if known and data.draw(st.integers(0, 3), label="known ids?") > 0:
            size = min(len(known), 4)
            return data.draw(
                st.lists(
                    st.sampled_from(known), min_size=min(min_size, size), max_size=size, unique=True
                ),
                label="ids",
            )
        return data.draw(
            st.lists(st.sampled_from(self.pool()), min_size=min_size, max_size=4), label="ids"
        )

    def spec(self, op_id: OperationId, kind: OperationKind) -> OperationSpec:
        name = f"op-{self.next_name:04d}"
        self.next_name += 1
        return OperationSpec(
            id=op_id,
            kind=kind,
            owner_session_id="owner",
            display_name=name,
            source_label="stateful",
            child_session_id=None,
            expect_peer_channel=kind is OperationKind.MOB_MEMBER_CHILD,
        )

    def capacity_error(self) -> OpsLifecycleError | None:
        limit = self.max_concurrent
        if limit is not None and self.active() >= limit:
            return MaxConcurrentExceeded(limit, self.active())
        return None

    def _register(self, op_id: OperationId, kind: OperationKind) -> None:
        spec = self.spec(op_id, kind)
        if op_id in self.ops:
            error: OpsLifecycleError | None = AlreadyRegistered(op_id)
        else:
            error = self.capacity_error()
        expect_error(lambda: self.r.register_operation(spec), error)
        if error is None:
            self.ops[op_id] = MOp(spec)
            if op_id not in self.ids:
                self.ids.append(op_id)

    def _register_new(self, kind: OperationKind) -> None:
        op_id = make_id(self.next_id)
        self.next_id += 1
        self._register(op_id, kind)
        if op_id not in self.ops:
            self.ghosts.append(op_id)

    def legality(self, op_id: OperationId, label: str) -> OpsLifecycleError | None:
        op = self.ops.get(op_id)
        if op is None:
            return NotFound(op_id)
        if op.status not in LEGAL_FROM[label]:
            return InvalidTransition(op_id, op.status, label)
        return None

    def finish(self, op_id: OperationId, outcome: Any) -> None:
        """docs/semantics.md: a terminal transition becomes visible."""
        op = self.ops[op_id]
        op.status = outcome.status
        op.outcome = outcome
        for w in op.watchers:
            w.resolved, w.expected = True, outcome
        op.watchers = []
        for wa in self.wait_anys:
            if not wa.resolved and op_id in wa.ids:
                wa.resolved, wa.expected = True, (op_id, outcome)
        seq = len(self.feed) + 1
        self.feed.append((seq, op_id, op.spec.kind, op.spec.display_name, outcome))
        self.fifo.append(op_id)
        b = self.barrier
        if b is not None and all(self.ops[m].outcome is not None for m in b.ids):
            b.result = self.wait_result(b.request_id, b.ids)
            self.barrier = None
        evicted = []
        while len(self.fifo) > self.max_completed:
            gone = self.fifo.pop(0)
            del self.ops[gone]
            evicted.append(gone)
        self.break_barrier(evicted)

    def break_barrier(self, removed: list[OperationId]) -> None:
        b = self.barrier
        if b is None:
            return
        for member in b.ids:
            if member in removed:
                b.error = NotFound(member)
                self.barrier = None
                return

    def wait_result(self, request_id: str, ids: tuple[OperationId, ...]) -> WaitAllResult:
        return WaitAllResult(
            outcomes=tuple((i, self.ops[i].outcome) for i in ids),
            satisfied=WaitAllSatisfied(wait_request_id=request_id, operation_ids=ids),
        )

    # --- rules: registration ------------------------------------------------------------------

    @rule(kinds=st.lists(st.sampled_from(list(OperationKind)), min_size=1, max_size=3))
    def register(self, kinds: list[OperationKind]) -> None:
        for kind in kinds:
            self._register_new(kind)

    @rule(data=st.data(), kind=st.sampled_from(list(OperationKind)))
    def register_known_id(self, data: st.DataObject, kind: OperationKind) -> None:
        """A known id is refused; an evicted or collected one may come back."""
        if not self.ids:
            return
        self._register(data.draw(st.sampled_from(self.ids), label="op"), kind)

    # --- rules: lifecycle methods -------------------------------------------------------------

    @rule(data=st.data(), method=st.sampled_from(OTHER_METHODS), text=texts)
    def transition(self, data: st.DataObject, method: str, text: str) -> None:
        self._transition(self.pick(data), method, text)

    def _transition(self, op_id: OperationId, method: str, text: str) -> None:
        reg = self.r
        op = self.ops.get(op_id)
        if method == "provisioning_succeeded":
            error = self.legality(op_id, method)
            expect_error(lambda: reg.provisioning_succeeded(op_id), error)
            if error is None:
                assert op is not None
                op.status = R
        elif method == "peer_ready":
            handle = OperationPeerHandle(peer_name=f"peer{text}", peer_id=text, address="x")
            if op is None:
                error = NotFound(op_id)
            elif op.spec.kind is not OperationKind.MOB_MEMBER_CHILD:
                error = PeerNotExpected(op_id)
            elif op.peer_ready:
                error = AlreadyPeerReady(op_id)
            else:
                error = self.legality(op_id, "peer_ready")
            expect_error(lambda: reg.peer_ready(op_id, handle), error)
            if error is None:
                assert op is not None
                op.peer_ready, op.peer_handle = True, handle
        elif method == "report_progress":
            update = OperationProgressUpdate(message=text, percent=None if not text else 50.0)
            error = self.legality(op_id, method)
            expect_error(lambda: reg.report_progress(op_id, update), error)
            if error is None:
                assert op is not None
                op.progress_count += 1
                op.last_progress = update
                op.progress.append(update)
        else:
            assert method == "request_retire"
            error = self.legality(op_id, method)
            expect_error(lambda: reg.request_retire(op_id), error)
            if error is None:
                assert op is not None
                op.status = RT

    @rule(data=st.data(), method=st.sampled_from(sorted(TERMINAL_METHODS)), text=texts)
    def terminal(self, data: st.DataObject, method: str, text: str) -> None:
        self._terminal(self.pick(data), method, text)

    def _terminal(self, op_id: OperationId, method: str, text: str) -> None:
        label, make = TERMINAL_METHODS[method]
        outcome = make(op_id, text)
        reg = self.r
        calls = {
            "provisioning_failed": lambda: reg.provisioning_failed(op_id, f"prov {text}"),
            "fail_operation": lambda: reg.fail_operation(op_id, text),
            "complete_operation": lambda: reg.complete_operation(op_id, outcome.result),
            "abort_provisioning": lambda: reg.abort_provisioning(op_id, text or None),
            "cancel_operation": lambda: reg.cancel_operation(op_id, text or None),
            "mark_retired": lambda: reg.mark_retired(op_id),
        }
        error = self.legality(op_id, label)
        mark = len(self.feed)
        expect_error(calls[method], error)
        if error is None:
            self.finish(op_id, outcome)
            # The caller's reply comes after the outcome is visible (docs/semantics.md).
            batch = reg.list_since(mark)
            assert [e.seq for e in batch.entries] == [mark + 1]

    @rule(data=st.data(), text=texts, steps=st.integers(1, 3))
    def advance(self, data: st.DataObject, text: str, steps: int) -> None:
        """A few legal steps on live operations, so that runs get somewhere."""
        for _ in range(steps):
            live = [i for i, op in self.ops.items() if op.status in NON_TERMINAL]
            if not live:
                return
            op_id = data.draw(st.sampled_from(live), label="op")
            op = self.ops[op_id]
            methods = [
                m for m, (lbl, _) in TERMINAL_METHODS.items() if op.status in LEGAL_FROM[lbl]
            ]
            methods += [m for m in OTHER_METHODS if op.status in LEGAL_FROM[m]]
            if op.peer_ready or op.spec.kind is not OperationKind.MOB_MEMBER_CHILD:
                methods = [m for m in methods if m != "peer_ready"]
            method = data.draw(st.sampled_from(sorted(methods)), label="method")
            if method in TERMINAL_METHODS:
                self._terminal(op_id, method, text)
            else:
                self._transition(op_id, method, text)

    @rule(reason=texts)
    def terminate_owner(self, reason: str) -> None:
        targets = [i for i, op in self.ops.items() if op.status in NON_TERMINAL]
        self.r.terminate_owner(reason)
        for op_id in targets:
            self.finish(op_id, Terminated(reason))

    @rule()
    def collect_completed(self) -> None:
        drained = [(i, self.ops[i].outcome) for i in self.fifo]
        for i in self.fifo:
            del self.ops[i]
        removed, self.fifo = self.fifo, []
        assert self.r.collect_completed() == drained
        self.break_barrier(removed)

    # --- rules: futures -----------------------------------------------------------------------

    @rule(data=st.data())
    def register_watcher(self, data: st.DataObject) -> None:
        self._watch(self.pick(data))

    def _watch(self, op_id: OperationId) -> None:
        op = self.ops.get(op_id)
        if op is None:
            expect_error(lambda: self.r.register_watcher(op_id), NotFound(op_id))
            return
        future = self.r.register_watcher(op_id)
        w = Watch(future, calls=counted(future))
        self.watches.append(w)
        if op.outcome is not None:
            w.resolved, w.expected = True, op.outcome
        else:
            op.watchers.append(w)

    @rule(data=st.data())
    def wait_any(self, data: st.DataObject) -> None:
        self._wait_any(self.pick_many(data, min_size=1))

    def _wait_any(self, ids: list[OperationId]) -> None:
        unknown = [i for i in ids if i not in self.ops]
        if unknown:
            with pytest.raises(NotFound) as info:
                self.r.wait_any(ids)
            assert type(info.value) is NotFound
            assert info.value.id in unknown  # type: ignore[attr-defined]
            return
        future = self.r.wait_any(ids)
        wa = WaitAny(frozenset(ids), future, calls=counted(future))
        done = {(i, self.ops[i].outcome) for i in ids if self.ops[i].outcome is not None}
        if done:
            wa.resolved, wa.expected = True, done
        self.wait_anys.append(wa)

    @rule(data=st.data(), run_id=texts)
    def wait_all(self, data: st.DataObject, run_id: str) -> None:
        self._wait_all(run_id, self.pick_many(data, min_size=0))

    def _wait_all(self, run_id: str, ids: list[OperationId]) -> None:
        seen: set[OperationId] = set()
        error: OpsLifecycleError | None = None
        for i in ids:
            if i in seen:
                error = DuplicateWaitOperation(i)
                break
            seen.add(i)
        if error is None and self.barrier is not None:
            error = WaitAlreadyActive()
        if error is None:
            error = next((NotFound(i) for i in ids if i not in self.ops), None)
        if error is not None:
            expect_error(lambda: self.r.wait_all(run_id, ids), error)
            return
        future = self.r.wait_all(run_id, ids)
        members = tuple(ids)
        diag = self.r.diagnostic_snapshot()
        if all(self.ops[i].outcome is not None for i in members):
            assert future.done()
            result = future.get(timeout=WAIT)
            assert result.satisfied.operation_ids == members
            assert result == self.wait_result(result.satisfied.wait_request_id, members)
            assert not diag.wait_active
            return
        assert diag.wait_active
        assert diag.wait_request_id is not None
        b = Barrier(members, future, diag.wait_request_id)
        b.calls = counted(future)
        self.barrier = b
        self.barriers.append(b)

    @rule(now=st.integers(0, 3))
    def cancel_wait_all(self, now: int) -> None:
        if now == 0:  # mostly let barriers live long enough to be satisfied or broken
            self._cancel_wait_all()

    def _cancel_wait_all(self) -> None:
        b = self.barrier
        assert self.r.cancel_wait_all() is (b is not None)
        if b is not None:
            b.error = WaitCancelled(b.request_id)
            self.barrier = None

    # --- rules: reads -------------------------------------------------------------------------

    @rule(data=st.data())
    def reads(self, data: st.DataObject) -> None:
        """list_since from any cursor, and one snapshot (the invariant reads everything else)."""
        after = data.draw(st.integers(0, len(self.feed) + 2), label="after")
        batch = self.r.list_since(after)
        assert batch.watermark == len(self.feed)
        assert batch.dropped_through == 0
        assert [e.seq for e in batch.entries] == [s for s, *_ in self.feed[after:]]
        op_id = self.pick(data, prefer_live=False)
        snap = self.r.snapshot(op_id)
        op = self.ops.get(op_id)
        if op is None:
            assert snap is None
        else:
            assert snap is not None and snap.status is op.status

    # --- after every step ---------------------------------------------------------------------

    @invariant()
    def registry_matches_model(self) -> None:
        if self.reg is None:
            return
        reg = self.reg
        for op_id, op in self.ops.items():
            snap = reg.snapshot(op_id)
            assert snap is not None, f"{op_id} vanished"
            assert snap.id == op_id
            assert snap.status is op.status
            assert snap.kind is op.spec.kind
            assert snap.display_name == op.spec.display_name
            assert snap.peer_ready is op.peer_ready
            assert snap.peer_handle == op.peer_handle
            assert snap.progress_count == op.progress_count
            assert snap.last_progress == op.last_progress
            log = reg.progress_log(op_id)
            kept = op.progress[-32:]
            assert [(e.message, e.percent) for e in log] == [(u.message, u.percent) for u in kept]
            assert [e.number for e in log] == list(
                range(len(op.progress) - len(kept) + 1, len(op.progress) + 1)
            )
            assert snap.terminal_outcome == op.outcome
            assert snap.watcher_count == len(op.watchers)
            assert (snap.completed_at_ms is None) is (op.outcome is None)
        for op_id in self.pool():
            if op_id not in self.ops:
                assert reg.snapshot(op_id) is None
                expect_error(lambda i=op_id: reg.progress_log(i), NotFound(op_id))
                expect_error(lambda i=op_id: reg.register_watcher(i), NotFound(op_id))

        listing = reg.list_operations()
        by_name = sorted(self.ops.values(), key=lambda o: o.spec.display_name)
        assert [s.id for s in listing] == [o.spec.id for o in by_name]

        diag = reg.diagnostic_snapshot()
        assert diag.operation_count == len(self.ops)
        assert diag.active_count == self.active()
        assert diag.wait_active is (self.barrier is not None)
        if self.barrier is None:
            assert diag.wait_operation_ids == ()
            assert diag.wait_request_id is None
        else:
            assert diag.wait_operation_ids == self.barrier.ids
            assert diag.wait_request_id == self.barrier.request_id

        batch = reg.list_since(0)
        assert batch.watermark == len(self.feed)
        assert reg.watermark() == len(self.feed)
        assert [e.seq for e in batch.entries] == list(range(1, len(self.feed) + 1))
        for entry, (seq, op_id, kind, name, outcome) in zip(batch.entries, self.feed, strict=True):
            assert entry.seq == seq
            assert entry.operation_id == op_id
            assert entry.kind is kind
            assert entry.display_name == name
            assert entry.terminal_outcome == outcome
            assert entry.completed_at_ms is not None

        self.check_futures()

    def check_futures(self) -> None:
        for w in self.watches:
            if not w.resolved:
                assert not w.future.done()
                assert w.calls == []
                continue
            assert w.future.get(timeout=WAIT) == w.expected
            assert w.calls == [1]
        for wa in self.wait_anys:
            if not wa.resolved:
                assert not wa.future.done()
                continue
            got = wa.future.get(timeout=WAIT)
            if isinstance(wa.expected, set):
                assert got in wa.expected
            else:
                assert got == wa.expected
            assert wa.calls == [1]
        for b in self.barriers:
            if b.result is None and b.error is None:
                assert b is self.barrier
                assert not b.future.done()
                assert b.calls == []
                continue
            assert b.calls == [1]
            if b.result is not None:
                assert b.future.get(timeout=WAIT) == b.result
            else:
                assert b.error is not None
                with pytest.raises(OpsLifecycleError) as info:
                    b.future.get(timeout=WAIT)
                assert type(info.value) is type(b.error)
                assert info.value == b.error


# --- fixed scenarios through the same model -----------------------------------------------
#
# Random runs reach the rarer barrier paths only some of the time; these walk
# them on purpose, with the same model and the same full check after each step.


def scenario_machine(
    backend: str, max_completed: int, kinds: int, max_concurrent: int | None = None
) -> RegistryMachine:
    m = RegistryMachine()
    m.open(max_completed, max_concurrent, backend, [OperationKind.MOB_MEMBER_CHILD] * kinds)
    m.registry_matches_model()
    return m


def run_scenario(m: RegistryMachine, steps: list[Any]) -> None:
    try:
        for step in steps:
            step()
            m.registry_matches_model()
    finally:
        m.teardown()


@pytest.mark.parametrize("backend", BACKENDS)
def test_barrier_member_evicted_while_waiting(backend: str) -> None:
    m = scenario_machine(backend, max_completed=1, kinds=3)
    a, b, c = m.ids
    run_scenario(
        m,
        [
            lambda: m._transition(a, "provisioning_succeeded", ""),
            lambda: m._terminal(a, "complete_operation", "a"),
            lambda: m._wait_all("run", [b, a]),
            lambda: m._terminal(c, "cancel_operation", "c"),  # pushes a out
        ],
    )
    barrier = m.barriers[0]
    assert barrier.error == NotFound(a)
    with pytest.raises(NotFound) as info:
        barrier.future.get(timeout=WAIT)
    assert info.value.id == a  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", BACKENDS)
def test_barrier_member_collected_while_waiting(backend: str) -> None:
    m = scenario_machine(backend, max_completed=3, kinds=3)
    a, b, c = m.ids
    run_scenario(
        m,
        [
            lambda: m._terminal(a, "fail_operation", "a"),
            lambda: m._terminal(b, "abort_provisioning", "b"),
            lambda: m._wait_all("run", [c, b, a]),
            lambda: m._wait_all("again", [c]),  # WaitAlreadyActive
            m.collect_completed,
            lambda: m._wait_all("after", [c]),  # the barrier is free again
        ],
    )
    assert m.barriers[0].error == NotFound(b)  # first removed member in request order
    assert m.barrier is m.barriers[1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_barrier_satisfied_by_the_commit_that_evicts_a_member(backend: str) -> None:
    m = scenario_machine(backend, max_completed=1, kinds=2)
    a, b = m.ids
    run_scenario(
        m,
        [
            lambda: m._terminal(a, "cancel_operation", ""),
            lambda: m._watch(a),  # already terminal: resolved at once, not counted
            lambda: m._watch(b),
            lambda: m._wait_any([a, b]),  # resolved at once with a
            lambda: m._wait_all("run", [a, b]),
            lambda: m._terminal(b, "fail_operation", "b"),  # satisfies, then evicts a
        ],
    )
    result = m.barriers[0].result
    assert result is not None
    assert [i for i, _ in result.outcomes] == [a, b]
    assert a not in m.ops


@pytest.mark.parametrize("backend", BACKENDS)
def test_wait_all_errors_and_terminate_owner_release(backend: str) -> None:
    m = scenario_machine(backend, max_completed=2, kinds=4, max_concurrent=4)
    a, b, c, d = m.ids
    ghost = m.ghosts[0]
    run_scenario(
        m,
        [
            lambda: m._register_new(OperationKind.DETACHED_JOB_WAIT),  # MaxConcurrentExceeded
            lambda: m._wait_all("dup", [a, b, b, a]),  # DuplicateWaitOperation(b)
            lambda: m._wait_all("unknown", [a, ghost, b]),  # NotFound(ghost)
            lambda: m._wait_all("run", [c, d]),
            lambda: m._wait_all("dup while active", [a, a]),  # duplicate is checked first
            lambda: m._wait_all("active", [ghost]),  # then the active barrier
            lambda: m._wait_any([b, c]),
            lambda: m._watch(d),
            lambda: m._watch(d),
            lambda: m._transition(a, "provisioning_succeeded", ""),
            lambda: m._transition(a, "request_retire", ""),
            lambda: m._transition(a, "peer_ready", "p"),
            lambda: m._transition(a, "peer_ready", "q"),  # AlreadyPeerReady
            lambda: m.terminate_owner("gone"),
            lambda: m._register_new(OperationKind.MOB_MEMBER_CHILD),
        ],
    )
    assert m.barriers[0].result is not None
    assert m.wait_anys[0].resolved
    assert len(m.feed) == 4


@pytest.mark.timeout(300)
def test_registry_against_reference_model() -> None:
    run_state_machine_as_test(
        RegistryMachine,
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None),
    )
