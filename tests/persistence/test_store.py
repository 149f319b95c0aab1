"""The durable store: round trips, refusals, fault injection, compaction, namespaces."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from actors import (
    RESTART_REASON,
    Completed,
    Internal,
    InvalidArgument,
    OperationPeerHandle,
    OperationProgressUpdate,
    OperationStatus,
    OpsRegistry,
    PersistedOpsSnapshot,
    StoreError,
    Terminated,
)
from actors.model import decode, encode
from actors.persistence import Stats
from actors.sqlite_store import STORE_FILE
from tests.conftest import background_spec, result_for

pytestmark = pytest.mark.timeout(120)


def _running(reg: OpsRegistry, name: str):  # type: ignore[no-untyped-def]
    spec = background_spec(name)
    reg.register_operation(spec)
    reg.provisioning_succeeded(spec.id)
    return spec.id


def _populate(reg: OpsRegistry, n: int = 12) -> list:  # type: ignore[type-arg]
    from actors import OperationId, OperationKind, OperationSpec

    ids = []
    for i in range(n):
        op = _running(reg, f"op-{i:03}")
        ids.append(op)
        reg.report_progress(op, OperationProgressUpdate(f"step {i}", float(i)))
        if i % 4 == 0:
            reg.complete_operation(op, result_for(op, f"r{i}"))
        elif i % 4 == 1:
            reg.fail_operation(op, f"e{i}")
        elif i % 4 == 2:
            reg.request_retire(op)
            reg.mark_retired(op)
    child = OperationSpec(
        id=OperationId.new(),
        kind=OperationKind.MOB_MEMBER_CHILD,
        owner_session_id="s",
        display_name="zz-child",
        source_label="t",
        child_session_id="c1",
        expect_peer_channel=True,
    )
    reg.register_operation(child)
    reg.provisioning_succeeded(child.id)
    reg.peer_ready(child.id, OperationPeerHandle(peer_name="m", peer_id="p", address="inproc://m"))
    reg.cancel_operation(child.id, "done with it")
    return ids


def _terminal_views(reg: OpsRegistry) -> list:  # type: ignore[type-arg]
    return [
        msgspec.structs.replace(s, watcher_count=0)
        for s in reg.list_operations()
        if s.status.is_terminal
    ]


def test_snapshot_round_trips_through_json_and_from_recovered() -> None:
    with OpsRegistry.start(max_completed=8) as reg:
        _populate(reg)
        snap = reg.capture_persistence_snapshot()
        text = encode(snap, fmt="json")
        again = decode(text, PersistedOpsSnapshot, fmt="json")
        assert again == snap
        live_terminal = _terminal_views(reg)
        live_feed = reg.list_since(0)
    with OpsRegistry.from_recovered(again) as rebuilt:
        assert _terminal_views(rebuilt) == live_terminal
        assert rebuilt.list_since(0) == live_feed
        assert all(s.status.is_terminal for s in rebuilt.list_operations())
        diag = rebuilt.diagnostic_snapshot()
        assert diag.active_count == 0
        # New terminals continue the sequence.
        op = _running(rebuilt, "after")
        rebuilt.complete_operation(op, result_for(op))
        assert rebuilt.watermark() == live_feed.watermark + 1


def test_from_recovered_rejects_garbage() -> None:
    with pytest.raises(InvalidArgument):
        OpsRegistry.from_recovered({"not": "a snapshot"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        decode(b'{"epoch_id": 3}', PersistedOpsSnapshot, fmt="json")


@pytest.mark.parametrize("compact_every", [5, 1_000_000], ids=["compacting", "journal-only"])
def test_reopen_equals_the_live_state(tmp_path: Path, compact_every: int) -> None:
    reg = OpsRegistry.open(tmp_path, max_completed=8, compact_every=compact_every)
    try:
        _populate(reg)
        live_terminal = _terminal_views(reg)
        live_feed = reg.list_since(0)
        in_flight = [s.id for s in reg.list_operations() if not s.status.is_terminal]
        assert in_flight
    finally:
        reg.stop()
    with OpsRegistry.open(tmp_path, max_completed=8, compact_every=compact_every) as again:
        feed = again.list_since(0)
        # Everything acknowledged is back, byte for byte, followed by the restart terminations.
        assert feed.entries[: len(live_feed.entries)] == live_feed.entries
        tail = feed.entries[len(live_feed.entries) :]
        assert {e.operation_id for e in tail} == set(in_flight)
        assert all(e.terminal_outcome == Terminated(RESTART_REASON) for e in tail)
        assert [e.seq for e in tail] == list(
            range(live_feed.watermark + 1, live_feed.watermark + 1 + len(in_flight))
        )
        views = {s.id: s for s in _terminal_views(again)}
        for view in live_terminal:
            if view.id in views:
                assert views[view.id] == view


def test_failed_sqlite_commit_rolls_back_then_retry_succeeds(tmp_path: Path) -> None:
    with OpsRegistry.open(tmp_path) as reg:
        op = _running(reg, "x")
        watch = reg.register_watcher(op)
        reg.sync_journal()
        assert reg.store is not None
        reg.store.faults.fail_next(1, "database or disk is full")
        with pytest.raises(Internal, match="disk is full"):
            reg.complete_operation(op, result_for(op))
        assert reg.snapshot(op).status is OperationStatus.RUNNING
        assert not watch.done()
        assert reg.watermark() == 0
        reg.complete_operation(op, result_for(op))
        assert isinstance(watch.get(timeout=5), Completed)
        assert [e.seq for e in reg.list_since(0).entries] == [1]
    with OpsRegistry.open(tmp_path) as again:
        [entry] = again.list_since(0).entries
        assert entry.seq == 1 and entry.operation_id == op


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_store(tmp_path: Path) -> Path:
    with OpsRegistry.open(tmp_path) as reg:
        _populate(reg, 40)
    return tmp_path / STORE_FILE


def test_truncated_store_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = _make_store(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    before = _digest(path)
    with pytest.raises(StoreError, match="refusing to open") as err:
        OpsRegistry.open(tmp_path)
    assert "\n" not in str(err.value)
    assert _digest(path) == before


def test_empty_store_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="empty"):
        OpsRegistry.open(tmp_path)
    assert path.read_bytes() == b""


def test_garbage_store_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    path.write_bytes(b"\x00garbage" * 4096)
    before = _digest(path)
    with pytest.raises(StoreError, match="not an opsreg store"):
        OpsRegistry.open(tmp_path)
    assert _digest(path) == before


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="not an opsreg store"):
        OpsRegistry.open(tmp_path)
    assert _digest(path) == before


def test_store_from_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = _make_store(tmp_path)
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    db.commit()
    db.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="newer opsreg"):
        OpsRegistry.open(tmp_path)
    assert _digest(path) == before


def test_store_held_by_another_live_process_is_refused(tmp_path: Path) -> None:
    _make_store(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from actors import OpsRegistry;"
            f"r = OpsRegistry.open({str(tmp_path)!r}); print('open', flush=True);"
            "sys.stdin.read(); r.stop()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(
            StoreError, match=rf"in use by another live opsreg process \(pid {holder.pid}\)"
        ):
            OpsRegistry.open(tmp_path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # The kernel released the lock with the process.
    with OpsRegistry.open(tmp_path) as reg:
        assert reg.watermark() > 0


def test_registries_have_their_own_namespaces(tmp_path: Path) -> None:
    from actors.persistence import OpenStore, PersistenceActor
    from actors.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path)
    pers = PersistenceActor.start(store)
    try:
        pers.ask(OpenStore())
        a = OpsRegistry.attach(pers, "alpha")
        b = OpsRegistry.attach(pers, "beta")
        for _ in range(3):
            op = _running(a, "a")
            a.complete_operation(op, result_for(op))
        op = _running(b, "b")
        b.fail_operation(op, "nope")
        assert a.watermark() == 3 and b.watermark() == 1
        a.stop()
        b.stop()
    finally:
        pers.stop()
    with OpsRegistry.open(tmp_path, registry="beta") as beta:
        [entry] = beta.list_since(0).entries
        assert entry.seq == 1 and entry.display_name == "b"
    with OpsRegistry.open(tmp_path, registry="alpha") as alpha:
        assert [e.seq for e in alpha.list_since(0).entries] == [1, 2, 3]


def test_synchronous_normal_is_selectable_and_nonsense_is_refused(tmp_path: Path) -> None:
    with OpsRegistry.open(tmp_path / "n", synchronous="normal") as reg:
        op = _running(reg, "x")
        reg.complete_operation(op, result_for(op))
    with OpsRegistry.open(tmp_path / "n", synchronous="NORMAL") as reg:
        assert reg.watermark() == 1
    with pytest.raises(StoreError, match="synchronous"):
        OpsRegistry.open(tmp_path / "m", synchronous="off")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compaction_keeps_the_store_small_and_recovery_short(tmp_path: Path) -> None:
    import threading

    # 30,000 by default (about 10 compactions), the full soak with OPSREG_COMPACTION_N=100000.
    total = int(os.environ.get("OPSREG_COMPACTION_N", "30000"))
    threads = 4
    with OpsRegistry.open(tmp_path, max_completed=256, synchronous="normal") as reg:
        errors: list[BaseException] = []

        def work(count: int) -> None:
            try:
                for _ in range(count):
                    spec = background_spec("c")
                    reg.register_operation(spec)
                    reg.provisioning_succeeded(spec.id)
                    reg.complete_operation(spec.id, result_for(spec.id, "x" * 64))
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(total // threads,)) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert not errors, errors[:1]
        assert reg.watermark() == total
        stats = reg._persistence_ref.ask(Stats())  # type: ignore[union-attr]
        assert stats["compactions"] >= total * 3 // 8192 - 1
        # While running, recovery would replay at most the rows since the last snapshot.
        reader = sqlite3.connect(f"file:{tmp_path / STORE_FILE}?mode=ro", uri=True)
        live_rows = reader.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        reader.close()
        assert live_rows < 2 * 8192
    size = (tmp_path / STORE_FILE).stat().st_size
    assert size < 16 * 1024 * 1024, f"store grew to {size} bytes"
    db = sqlite3.connect(tmp_path / STORE_FILE)
    remaining = db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    db.close()
    assert remaining == 0, "a clean stop compacts the whole journal into the snapshot"
    with OpsRegistry.open(tmp_path, max_completed=256) as again:
        batch = again.list_since(0)
        assert batch.watermark == total
        assert [e.seq for e in batch.entries] == list(range(total - 1023, total + 1))
        assert again.diagnostic_snapshot().operation_count == 256


def test_journal_positions_keep_rising_across_compaction_reopen_and_big_batches(
    tmp_path: Path,
) -> None:
    """The store assigns lsns itself: after a compaction emptied the journal and a reopen,
    new rows must still sort after the snapshot, or recovery would skip them."""
    from actors.lifecycle import Lifecycle
    from actors.persistence import Append
    from actors.sqlite_store import SqliteStore

    lc = Lifecycle(max_completed=8)
    store = SqliteStore(tmp_path)
    store.open()
    try:
        first = [background_spec(f"a{i}") for i in range(3)]
        store.write([Append("r", (lc.register(s, 0),)) for s in first])
        store.save_snapshot("r", lc.to_persisted("e"))  # covers every row so far, deletes them
        assert store.journal_rows("r") == 0
    finally:
        store.close()
    store = SqliteStore(tmp_path)
    store.open()
    try:
        # More rows than one INSERT statement carries: the chunked transaction path.
        later = [background_spec(f"b{i}") for i in range(600)]
        store.write([Append("r", tuple(lc.register(s, 0) for s in later))])
        recovered = store.recover("r")
        assert recovered.snapshot is not None
        assert {str(op) for op in recovered.snapshot.operation_specs} == {str(s.id) for s in first}
        assert [rec.spec.id for rec, _ in recovered.journal] == [s.id for s in later]  # type: ignore[union-attr]
    finally:
        store.close()
