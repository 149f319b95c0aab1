"""Real processes against a real ``opsreg serve``: workers, watchers, barriers, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from actors import Completed, Failed, OperationStatus, WaitAlreadyActive
from tests.conftest import background_spec, result_for
from tests.transport.conftest import ROOT, ServerProcess
from transport import RegistryClient

pytestmark = pytest.mark.timeout(300)


def _worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _expect_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(prefix), f"expected {prefix!r}, got {line!r}"
    return line.strip()


def test_four_worker_processes_end_with_exact_counts(tmp_path: Path) -> None:
    per_worker = int(os.environ.get("OPSREG_E2E_LIFECYCLES", "1000"))  # 4,000 in all
    sp = ServerProcess(tmp_path / "data", "--max-completed", "100000").start()
    try:
        workers = [_worker("lifecycles", sp.endpoint, str(per_worker), f"w{i}") for i in range(4)]
        for w in workers:
            _expect_line(w, "done")
            assert w.wait(timeout=60) == 0
        total = 4 * per_worker
        with RegistryClient(sp.endpoint, timeout=30) as cli:
            batch = cli.list_since(0)
            assert [e.seq for e in batch.entries] == list(range(1, total + 1))
            ops = cli.list_operations()
            assert len(ops) == total
            failed = [s for s in ops if s.status is OperationStatus.FAILED]
            completed = [s for s in ops if s.status is OperationStatus.COMPLETED]
            assert len(failed) == total // 5 and len(completed) == total - total // 5
            diag = cli.diagnostic_snapshot()
            assert diag.active_count == 0 and diag.operation_count == total
            names = {s.display_name for s in ops}
            assert len(names) == total
    finally:
        assert sp.stop() == 0


def test_watchers_in_other_processes_resolve_exactly_once(server_process: ServerProcess) -> None:
    with RegistryClient(server_process.endpoint, timeout=30) as cli:
        spec = background_spec("watched")
        cli.register_operation(spec)
        cli.provisioning_succeeded(spec.id)
        watchers = [_worker("watch", server_process.endpoint, str(spec.id)) for _ in range(3)]
        for w in watchers:
            _expect_line(w, "watching")
        assert cli.snapshot(spec.id).watcher_count == 3
        barrier = cli.wait_all("run", [spec.id])
        cli.complete_operation(spec.id, result_for(spec.id))
        for w in watchers:
            assert _expect_line(w, "outcome") == "outcome Completed"
            assert w.stdout is not None and w.stdout.read() == ""  # nothing twice
            assert w.wait(timeout=30) == 0
        assert isinstance(barrier.get(timeout=10).outcomes[0][1], Completed)


def test_killed_client_releases_its_barrier_after_its_heartbeats_stop(tmp_path: Path) -> None:
    sp = ServerProcess(tmp_path / "data", "--client-timeout", "1.0", "--heartbeat", "0.2").start()
    try:
        with RegistryClient(sp.endpoint, timeout=30) as cli:
            spec = background_spec("barrier")
            cli.register_operation(spec)
            holder = _worker("hold_barrier", sp.endpoint, str(spec.id))
            _expect_line(holder, "holding")
            assert cli.diagnostic_snapshot().wait_active
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(timeout=30)
            # Release is time-based by design (heartbeat expiry), so the test watches the
            # registry's own state, paced, with a deadline.
            pace = threading.Event()
            deadline = time.monotonic() + 20
            while True:
                try:
                    mine = cli.wait_all("mine", [spec.id])
                    break
                except WaitAlreadyActive:
                    assert time.monotonic() < deadline, "the dead client's barrier was never freed"
                    pace.wait(0.05)
            cli.provisioning_succeeded(spec.id)
            cli.fail_operation(spec.id, "x")
            assert mine.get(timeout=10).outcomes == ((spec.id, Failed("x")),)
    finally:
        sp.stop()


def _read_churn(proc: subprocess.Popen[str], tried: set[str], acked: set[str], until: int) -> None:
    """Follow a churn worker's output until it has acknowledged ``until`` terminals in total."""
    assert proc.stdout is not None
    while len(acked) < until:
        line = proc.stdout.readline()
        assert line, "churn worker exited"
        verb, op = line.split()[0], line.split()[-1]
        if verb == "try":
            tried.add(op)
        elif verb == "ack":
            acked.add(op)


def test_server_kill_nine_and_restart_under_load_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    sp = ServerProcess(tmp_path / "data", "--max-completed", "100000").start()
    workers = [_worker("churn", sp.endpoint, f"c{i}") for i in range(2)]
    tried: list[set[str]] = [set(), set()]
    acked: list[set[str]] = [set(), set()]
    try:
        for i, w in enumerate(workers):
            _read_churn(w, tried[i], acked[i], 100)
        sp.kill9()
        sp.start()  # same endpoints, same data directory
        for i, w in enumerate(workers):
            _read_churn(w, tried[i], acked[i], len(acked[i]) + 100)
        for w in workers:
            w.kill()
            w.wait(timeout=30)
        all_acked = set().union(*acked)
        with RegistryClient(sp.endpoint, timeout=30) as cli:
            batch = cli.list_since(0)
            assert [e.seq for e in batch.entries] == list(range(1, batch.watermark + 1))
            by_id = {str(e.operation_id): e for e in batch.entries}
            for op in all_acked:
                assert op in by_id, f"acknowledged {op} was lost"
                assert isinstance(by_id[op].terminal_outcome, Completed)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        sp.stop()


def test_watchers_survive_a_server_restart_and_barriers_fail_typed(tmp_path: Path) -> None:
    from actors import RESTART_REASON, Terminated
    from transport import Unavailable

    sp = ServerProcess(tmp_path / "data").start()
    try:
        with RegistryClient(sp.endpoint, timeout=10, heartbeat=0.2) as cli:
            spec = background_spec("in-flight")
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
            other = background_spec("other")
            cli.register_operation(other)
            watch = cli.register_watcher(spec.id)
            barrier = cli.wait_all("run", [other.id])
            # Registrations are journaled without waiting (docs/semantics.md); an acknowledged
            # terminal is committed after every record shipped before it, so completing
            # a marker is the barrier that puts the registrations above on disk.
            marker = background_spec("durability-barrier")
            cli.register_operation(marker)
            cli.provisioning_succeeded(marker.id)
            cli.complete_operation(marker.id, result_for(marker.id))
            assert cli.wait_connected()
            first_epoch = cli.server_epoch
            sp.kill9()
            sp.start()  # recovery ends the in-flight operation with a fresh seq
            # The client notices the new epoch from its heartbeats, re-registers the
            # watcher on the new server, and fails the barrier the old one held.
            outcome = watch.get(timeout=30)
            assert outcome == Terminated(RESTART_REASON)
            with pytest.raises(Unavailable, match="barrier was lost"):
                barrier.get(timeout=30)
            assert cli.server_epoch != first_epoch
            assert cli.snapshot(spec.id).status is OperationStatus.TERMINATED
    finally:
        sp.stop()


def test_a_watcher_whose_operation_is_gone_after_a_restart_fails_instead_of_hanging(
    tmp_path: Path,
) -> None:
    """A memory-only server forgets everything on restart: the re-registered watcher is
    answered NotFound, and that must reach the caller's future."""
    from actors import NotFound

    sp = ServerProcess(tmp_path / "data", "--memory").start()
    try:
        with RegistryClient(sp.endpoint, timeout=10, heartbeat=0.2) as cli:
            spec = background_spec("forgotten")
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
            watch = cli.register_watcher(spec.id)
            first_epoch = cli.server_epoch
            sp.kill9()
            sp.start()
            with pytest.raises(NotFound):
                watch.get(timeout=30)
            assert cli.server_epoch != first_epoch
    finally:
        sp.stop()
