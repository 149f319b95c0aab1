"""What stands around the store: the lock, writability at start, the file's identity
while open, and the high-water record."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from actors import OperationStatus, OpsRegistry, StoreError, Unavailable
from actors.persistence import Append, Commit, StoreLost
from actors.sqlite_store import HIGH_WATER_FILE, LOCK_FILE, STORE_FILE, SqliteStore
from tests.conftest import background_spec, result_for
from tests.tmpfs import bind_mount_ro, tmpfs

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _complete(reg: OpsRegistry, name: str) -> None:
    spec = background_spec(name)
    reg.register_operation(spec)
    reg.provisioning_succeeded(spec.id)
    reg.complete_operation(spec.id, result_for(spec.id))


def _with_outcomes(data: Path, count: int) -> None:
    with OpsRegistry.open(data) as reg:
        for i in range(count):
            _complete(reg, f"op{i}")


# --- the lock ---------------------------------------------------------------------------------


def test_deleting_the_lock_file_does_not_let_a_second_process_in(tmp_path: Path) -> None:
    _with_outcomes(tmp_path, 1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from actors import OpsRegistry;"
            f"r = OpsRegistry.open({str(tmp_path)!r}); print('open', flush=True);"
            "sys.stdin.read(); r.stop()",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        for lock in tmp_path.glob("*.lock"):
            lock.unlink()
        assert not list(tmp_path.glob("*.lock"))
        with pytest.raises(StoreError, match="in use by another live opsreg process") as err:
            OpsRegistry.open(tmp_path)
        assert "\n" not in str(err.value)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with OpsRegistry.open(tmp_path) as reg:  # the kernel released it with the process
        assert reg.watermark() == 1
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


# --- writability at start -----------------------------------------------------------------------


def test_a_store_on_a_read_only_mount_is_refused_at_start(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        data = disk.path / "data"
        _with_outcomes(data, 2)
        before = _digest(data / STORE_FILE)
        disk.remount_ro()
        with pytest.raises(StoreError, match="cannot be written") as err:
            OpsRegistry.open(data)
        assert "\n" not in str(err.value) and "Read-only file system" in str(err.value)
        assert _digest(data / STORE_FILE) == before
        disk.remount_rw()
        with OpsRegistry.open(data) as reg:
            assert reg.watermark() == 2


def test_a_read_only_store_file_in_a_writable_directory_is_refused_at_start(
    tmp_path: Path,
) -> None:
    """SQLite opens a file it may not write read-only, silently: only a write says so."""
    _with_outcomes(tmp_path, 2)
    path = tmp_path / STORE_FILE
    before = _digest(path)
    with bind_mount_ro(path):
        with pytest.raises(StoreError, match="cannot be written") as err:
            OpsRegistry.open(tmp_path)
        assert "\n" not in str(err.value)
    assert _digest(path) == before


def test_a_full_disk_is_refused_at_start(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", size="4m") as disk:
        data = disk.path / "data"
        _with_outcomes(data, 2)
        before = _digest(data / STORE_FILE)
        assert disk.fill() > 0
        with pytest.raises(StoreError, match="cannot be written") as err:
            OpsRegistry.open(data)
        assert "No space left on device" in str(err.value)
        assert _digest(data / STORE_FILE) == before
        disk.unfill()
        with OpsRegistry.open(data) as reg:
            assert reg.watermark() == 2


# --- the file deleted or replaced while open -------------------------------------------------


def _terminal_batch(store: SqliteStore, name: str, token: int) -> list[Append | Commit]:
    from actors.lifecycle import Lifecycle
    from actors.model import Completed

    lc = Lifecycle(max_completed=8)
    spec = background_spec(name)
    records = (lc.register(spec, 1), lc.start(spec.id, 2))
    terminal = lc.begin_terminal(spec.id, "complete_operation", Completed(result_for(spec.id)), 3)
    return [Append("r", records), Commit("r", token, (terminal,), None)]  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["unlinked", "replaced"])
def test_a_store_deleted_or_replaced_while_open_writes_nothing(tmp_path: Path, how: str) -> None:
    store = SqliteStore(tmp_path)
    store.open()
    try:
        assert store.write(_terminal_batch(store, "a", 1)) == {1: (1,)}
        rows = store.journal_rows()
        path = tmp_path / STORE_FILE
        if how == "unlinked":
            path.unlink()
        else:
            other = tmp_path / "other"
            other.write_bytes(b"someone else's file")
            os.replace(other, path)
        for token in (2, 3):
            with pytest.raises(StoreLost, match="deleted or replaced while open: nothing"):
                store.write(_terminal_batch(store, "b", token))
        assert store.journal_rows() == rows, "the lost file took no row"
        if how == "replaced":
            assert path.read_bytes() == b"someone else's file"
        else:
            assert not path.exists()
    finally:
        store.close()
    # The outcome acknowledged before the loss is on record: a restart does not serve less.
    with pytest.raises(StoreError, match="refusing to open") as err:
        OpsRegistry.open(tmp_path, registry="r")
    assert "\n" not in str(err.value)


def test_a_registry_whose_store_is_deleted_fails_its_completions(tmp_path: Path) -> None:
    with OpsRegistry.open(tmp_path) as reg:
        _complete(reg, "before")
        spec = background_spec("after")
        reg.register_operation(spec)
        reg.provisioning_succeeded(spec.id)
        reg.sync_journal()
        (tmp_path / STORE_FILE).unlink()
        # The store is lost for good: Unavailable (not Internal, which invites a retry).
        with pytest.raises(Unavailable, match="deleted or replaced while open"):
            reg.complete_operation(spec.id, result_for(spec.id))
        assert reg.snapshot(spec.id).status is OperationStatus.RUNNING
        assert reg.watermark() == 1
    with pytest.raises(StoreError, match="store file is missing"):
        OpsRegistry.open(tmp_path)


# --- the high-water record ---------------------------------------------------------------------


def test_a_store_replaced_by_an_older_copy_of_itself_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _with_outcomes(data, 3)
    old = tmp_path / "old"
    shutil.copytree(data, old)
    with OpsRegistry.open(data) as reg:
        for i in range(4):
            _complete(reg, f"later{i}")
        assert reg.watermark() == 7
    assert (data / HIGH_WATER_FILE).exists()
    shutil.copy(old / STORE_FILE, data / STORE_FILE)
    before = _digest(data / STORE_FILE)
    with pytest.raises(
        StoreError,
        match=r"registry 'default' is behind its high-water record \(store seq 3, recorded seq 7",
    ) as err:
        OpsRegistry.open(data)
    assert "\n" not in str(err.value)
    assert _digest(data / STORE_FILE) == before


def test_a_damaged_high_water_record_is_refused_and_can_be_set_aside(tmp_path: Path) -> None:
    _with_outcomes(tmp_path, 2)
    record = tmp_path / HIGH_WATER_FILE
    text = record.read_bytes()
    record.write_bytes(text.replace(b'"default":2', b'"default":9'))
    with pytest.raises(StoreError, match=r"high-water record .* is unreadable"):
        OpsRegistry.open(tmp_path)
    record.unlink()  # the documented way to accept the store as it is
    with OpsRegistry.open(tmp_path) as reg:
        assert reg.watermark() == 2
    assert b'"default":2' in record.read_bytes()


def test_the_high_water_record_follows_commits_once_per_interval(tmp_path: Path) -> None:
    from actors.store_files import read_high_water

    store = SqliteStore(tmp_path, high_water_every=0.0)  # every commit, for the test
    store.open()
    try:
        for token in (1, 2, 3):
            store.write(_terminal_batch(store, f"op{token}", token))
            record = read_high_water(tmp_path)
            assert record is not None and record.seqs == {"r": token}
            assert record.lsn == 3 * token  # register, start, terminal
    finally:
        store.close()
    lazy = SqliteStore(tmp_path, high_water_every=3600.0)
    lazy.open()
    try:
        lazy.write(_terminal_batch(lazy, "op4", 4))  # the first commit after open records
        lazy.write(_terminal_batch(lazy, "op5", 5))  # the next waits for the interval
        record = read_high_water(tmp_path)
        assert record is not None and record.seqs == {"r": 4}
    finally:
        lazy.close()
    record = read_high_water(tmp_path)
    assert record is not None and record.seqs == {"r": 5}  # and the clean stop records all


@pytest.mark.timeout(60)
def test_the_server_does_not_start_on_a_read_only_store(tmp_path: Path) -> None:
    """The whole command: no 'serving' line, exit status 1, one line on stderr."""
    _with_outcomes(tmp_path, 1)
    with bind_mount_ro(tmp_path / STORE_FILE):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "transport.cli",
                "serve",
                "--data",
                str(tmp_path),
                "--endpoint",
                "tcp://127.0.0.1:0",
                "--feed-endpoint",
                "tcp://127.0.0.1:0",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline()  # the banner, or EOF when it refused to start
            assert "serving" not in first, first
            errors = proc.stderr.read()
            assert proc.wait(timeout=30) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    [line] = errors.strip().splitlines()
    assert "cannot be written" in line
