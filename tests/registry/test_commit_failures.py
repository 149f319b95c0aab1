"""How each kind of commit failure reaches the caller, in-process (memory store + fault plan).

* definite (nothing written): rollback + ``Internal``; failing appends back off;
* indeterminate (``EIO`` from ``fsync``): ``OutcomeUnknown``; calls refused with
  ``Unavailable`` while the store is reopened; then what the disk says is visible;
* store lost: ``Unavailable`` naming the cause, for good, without retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from actors import (
    Completed,
    Internal,
    OperationStatus,
    OpsRegistry,
    OutcomeUnknown,
    Unavailable,
)
from actors.journal import RegisterRecord
from actors.persistence import (
    Append,
    Commit,
    CommitFailure,
    MemoryStore,
    StoreLost,
    classify_failure,
)
from tests.conftest import background_spec, result_for

pytestmark = pytest.mark.timeout(30)


class CountingStore(MemoryStore):
    """A memory store that counts write attempts and can lose its file."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.lost = False

    def write(self, batch: Sequence[Append | Commit]) -> dict[int, tuple[int, ...]]:
        self.attempts += 1
        if self.lost:
            raise StoreLost("store file opsreg.sqlite3 was deleted")
        return super().write(batch)


@pytest.fixture
def reg_store() -> Iterator[tuple[OpsRegistry, CountingStore]]:
    store = CountingStore()
    reg = OpsRegistry.start(store=store)
    try:
        yield reg, store
    finally:
        store.faults.reopen_failures = 0
        store.faults.release()
        reg.stop()


def _running(reg: OpsRegistry, name: str = "op"):  # type: ignore[no-untyped-def]
    spec = background_spec(name)
    reg.register_operation(spec)
    reg.provisioning_succeeded(spec.id)
    return spec.id


def test_failures_are_classified_in_one_place() -> None:
    import sqlite3

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    fsync = sqlite3.OperationalError("disk I/O error")
    fsync.sqlite_errorcode = sqlite3.SQLITE_IOERR_FSYNC  # type: ignore[attr-defined]
    assert classify_failure(CommitFailure("injected")) == "definite"
    assert classify_failure(full) == "definite"
    assert classify_failure(fsync) == "indeterminate"
    assert classify_failure(OSError(5, "EIO")) == "indeterminate"
    assert classify_failure(StoreLost("gone")) == "lost"


def test_eio_after_the_write_makes_the_disk_outcome_visible_after_recovery(
    reg_store, caplog
) -> None:  # type: ignore[no-untyped-def]
    reg, store = reg_store
    caplog.set_level(logging.WARNING, logger="actors.persistence")
    op = _running(reg)
    watch = reg.register_watcher(op)
    advance = reg.wait_for_advance(0)
    first = reg.wait_any([op])
    barrier = reg.wait_all("run", [op])
    store.faults.reopen_failures = 10**6  # the disk keeps failing for now
    store.faults.fail_next(1, "fsync: EIO", mode="eio-after")
    with pytest.raises(OutcomeUnknown, match="fsync: EIO"):
        reg.complete_operation(op, result_for(op))

    # Memory is not trusted while the store is reopened: reads and writes are refused.
    with pytest.raises(Unavailable, match="reopened"):
        reg.snapshot(op)
    with pytest.raises(Unavailable, match="reopened"):
        reg.cancel_operation(op, "competing")
    assert not watch.done()

    store.faults.reopen_failures = 0
    assert isinstance(watch.get(timeout=10), Completed)
    attempts = [r for r in caplog.records if "reopening the store failed" in r.getMessage()]
    assert attempts, "each failed reopen is logged"
    assert any("store reopened" in r.getMessage() for r in caplog.records)
    assert advance.get(timeout=5) == 1
    assert first.get(timeout=5)[0] == op
    assert barrier.get(timeout=5).outcomes[0][0] == op
    assert reg.snapshot(op).status is OperationStatus.COMPLETED
    assert [e.seq for e in reg.list_since(0).entries] == [1]
    # The next terminal continues the disk's sequence.
    other = _running(reg, "other")
    reg.cancel_operation(other, "bye")
    assert [e.seq for e in reg.list_since(0).entries] == [1, 2]
    seqs = [seq for _, seq in store.recover("default").journal if seq is not None]
    assert seqs == [1, 2], "the in-doubt commit is on disk once"


def test_eio_before_the_write_rolls_back_after_recovery(reg_store) -> None:  # type: ignore[no-untyped-def]
    reg, store = reg_store
    op = _running(reg)
    store.faults.fail_next(1, "fsync: EIO", mode="eio-before")
    with pytest.raises(OutcomeUnknown):
        reg.complete_operation(op, result_for(op))
    reg.sync_journal()  # the persistence actor has reopened and told the registry
    assert reg.snapshot(op).status is OperationStatus.RUNNING
    assert reg.watermark() == 0
    reg.complete_operation(op, result_for(op, "again"))
    assert [e.seq for e in reg.list_since(0).entries] == [1]


def test_registrations_in_an_in_doubt_transaction_are_not_lost_or_doubled(reg_store) -> None:  # type: ignore[no-untyped-def]
    reg, store = reg_store
    op = _running(reg)
    spec = background_spec("registered-meanwhile")
    store.faults.hold()
    reply = reg.call_async("complete_operation", op, result_for(op))
    assert store.faults.entered.wait(5)
    reg.register_operation(spec)  # queued behind the held commit
    store.faults.fail_next(1, "fsync: EIO", mode="eio-before")
    store.faults.release()
    with pytest.raises(OutcomeUnknown):
        reply.get(timeout=5)
    reg.sync_journal()
    registered = [r for r, _ in store.recover("default").journal if isinstance(r, RegisterRecord)]
    assert [r.spec.id for r in registered].count(spec.id) == 1


def test_lost_store_refuses_every_commit_for_good_without_retrying(reg_store, caplog) -> None:  # type: ignore[no-untyped-def]
    reg, store = reg_store
    op = _running(reg)
    reg.sync_journal()
    store.lost = True
    caplog.set_level(logging.ERROR, logger="actors.persistence")
    with pytest.raises(Unavailable, match="deleted"):
        reg.complete_operation(op, result_for(op))
    attempts = store.attempts
    with pytest.raises(Unavailable, match="store is lost"):
        reg.complete_operation(op, result_for(op))
    reg.register_operation(background_spec("after"))
    reg.sync_journal()
    assert store.attempts == attempts, "nothing more is tried"
    assert reg.snapshot(op).status is OperationStatus.RUNNING
    assert len([r for r in caplog.records if "store lost" in r.getMessage()]) == 1


def test_failing_appends_back_off_instead_of_spinning(reg_store, caplog) -> None:  # type: ignore[no-untyped-def]
    reg, store = reg_store
    caplog.set_level(logging.WARNING, logger="actors.persistence")
    store.faults.fail_next(10**6, "database or disk is full", terminal_only=False)
    spec = background_spec("while full")
    reg.register_operation(spec)  # its journal append fails, and keeps failing
    before = store.attempts
    threading.Event().wait(0.6)  # a measuring window, not a synchronisation
    attempts = store.attempts - before
    assert attempts <= 15, f"{attempts} write attempts in 0.6 s: the actor spins"
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1, "one log line per failure class and backoff cycle"

    op = _running(reg, "terminal while full")
    with pytest.raises(Internal, match="disk is full"):
        reg.complete_operation(op, result_for(op))
    with store.faults._lock:
        store.faults._failures.clear()
    reg.sync_journal()
    journal: list[Any] = [r for r, _ in store.recover("default").journal]
    assert any(isinstance(r, RegisterRecord) and r.spec.id == spec.id for r in journal)
