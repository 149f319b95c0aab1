"""A WAL truncated between runs: real ``kill -9`` of a registry process, then the ``-wal``
file is cut short, then the store is opened again.

What the high-water record (``opsreg.hwm``) catches: any loss that takes the store
below what the record says was durable — the record is rewritten at every compaction
and at a clean stop. What it cannot catch: the outcomes acknowledged *after* the last
record was written (at most one compaction interval per registry). So each trial must
either be refused with one line naming the registry and both seqs, or open with every
seq the record covers still present — a new outcome never re-uses a recorded seq.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors import RESTART_REASON, OpsRegistry, StoreError, Terminated
from actors.sqlite_store import STORE_FILE
from actors.store_files import read_high_water

ROOT = Path(__file__).resolve().parents[2]
#: small, so the child compacts (and records its high-water mark) every ~50 outcomes
MAX_COMPLETED = 8


def _run_and_kill(data_dir: Path, seed: int, kill_after: int) -> set[str]:
    """The crash child until ``kill_after`` acknowledgements, then SIGKILL; returns the acked ids."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.persistence.crash_child",
            str(data_dir),
            str(seed),
            "3",
            str(MAX_COMPLETED),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: set[str] = set()
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        for line in proc.stdout:
            verb, op, *_ = line.split()
            if verb == "ack":
                acked.add(op)
                if len(acked) >= kill_after:
                    break
        os.kill(proc.pid, signal.SIGKILL)
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "ack":
                acked.add(parts[1])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("seed", "keep"),
    [(1, 0.0), (2, 0.5), (3, 0.9), (4, 0.0)],
    ids=["wal-emptied", "half-kept", "most-kept", "wal-emptied-2"],
)
def test_a_truncated_wal_is_refused_or_reuses_no_recorded_seq(
    tmp_path: Path, seed: int, keep: float
) -> None:
    acked = _run_and_kill(tmp_path, seed, kill_after=260)
    recorded = read_high_water(tmp_path)
    assert recorded is not None, "no high-water record after compactions"
    recorded_seq = recorded.seqs.get("default", 0)
    assert recorded_seq > 0

    wal = Path(f"{tmp_path / STORE_FILE}-wal")
    size = wal.stat().st_size
    with open(wal, "r+b") as fh:
        fh.truncate(int(size * keep))

    try:
        reg = OpsRegistry.open(tmp_path, max_completed=MAX_COMPLETED)
    except StoreError as exc:
        text = str(exc)
        assert "\n" not in text
        assert "behind its high-water record" in text, text
        assert "registry 'default'" in text or "lsn" in text, text
        return
    with reg:
        entries = reg.list_since(0).entries
        restarted = [e for e in entries if e.terminal_outcome == Terminated(RESTART_REASON)]
        kept = [e for e in entries if e not in restarted]
        store_seq = max((e.seq for e in kept), default=0)
        lost = acked - {str(e.operation_id) for e in kept}
        # Every new seq (the restart terminations, and all that follow) lies above the record.
        assert store_seq >= recorded_seq, (store_seq, recorded_seq, len(lost))
        assert all(e.seq > recorded_seq for e in restarted)
