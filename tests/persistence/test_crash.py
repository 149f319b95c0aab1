"""Real ``kill -9`` of a registry process, then recovery from the same directory (docs/semantics.md)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors import (
    RESTART_REASON,
    Aborted,
    Cancelled,
    Completed,
    Failed,
    OperationId,
    OpsRegistry,
    Terminated,
)

ROOT = Path(__file__).resolve().parents[2]
SEEDS = int(os.environ.get("OPSREG_CRASH_SEEDS", "20"))


def _expected(kind: str, op: str):  # type: ignore[no-untyped-def]
    return {
        "completed": lambda: Completed.__name__,
        "failed": lambda: Failed(f"e-{op}"),
        "cancelled": lambda: Cancelled(f"c-{op}"),
        "aborted": lambda: Aborted(f"a-{op}"),
    }[kind]()


def _matches(kind: str, op: str, outcome: object) -> bool:
    if kind == "completed":
        return isinstance(outcome, Completed) and outcome.result.content == f"r-{op}"
    return outcome == _expected(kind, op)


def _run_and_kill(data_dir: Path, seed: int) -> tuple[dict[str, str], set[str]]:
    rng = random.Random(seed)
    kill_after = rng.randint(1, 300)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.persistence.crash_child", str(data_dir), str(seed), "3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    tried: dict[str, str] = {}
    acked: set[str] = set()
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        for line in proc.stdout:
            verb, op, *rest = line.split()
            if verb == "try":
                tried[op] = rest[0]
            else:
                acked.add(op)
                if len(acked) >= kill_after:
                    break
        os.kill(proc.pid, signal.SIGKILL)
        # Whatever the child wrote before it died still counts as acknowledged.
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "try":
                tried[parts[1]] = parts[2]
            elif len(parts) == 2 and parts[0] == "ack":
                acked.add(parts[1])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return tried, acked


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", range(SEEDS))
def test_kill_nine_loses_nothing_acknowledged(tmp_path: Path, seed: int) -> None:
    tried, acked = _run_and_kill(tmp_path, seed)
    assert acked, "the child acknowledged nothing before it was killed"

    with OpsRegistry.open(tmp_path, max_completed=1_000_000) as reg:
        batch = reg.list_since(0)
        entries = batch.entries
        seqs = [e.seq for e in entries]
        assert seqs == list(range(1, batch.watermark + 1)), "seqs must run 1..N with no holes"
        by_op = {str(e.operation_id): e for e in entries}
        assert len(by_op) == len(entries), "an operation ended twice"

        for op in acked:
            entry = by_op.get(op)
            assert entry is not None, f"acknowledged terminal {op} was lost"
            assert _matches(tried[op], op, entry.terminal_outcome)

        restarted = [e for e in entries if e.terminal_outcome == Terminated(RESTART_REASON)]
        if restarted:
            # Recovery ends in-flight operations after every recovered terminal.
            assert min(e.seq for e in restarted) > max(
                (e.seq for e in entries if e not in restarted), default=0
            )
        for entry in entries:
            op = str(entry.operation_id)
            if op in acked or entry.terminal_outcome == Terminated(RESTART_REASON):
                continue
            # Committed, but the child died before it could report the ack.
            assert op in tried and _matches(tried[op], op, entry.terminal_outcome)

        assert reg.diagnostic_snapshot().active_count == 0, "nothing may stay in flight"
        for snap in reg.list_operations():
            assert snap.status.is_terminal
            assert reg.snapshot(OperationId(snap.id)) is not None
