"""``progress_log`` through ``OpsRegistry``: the time each update arrived; memory only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from actors import NotFound, OperationId, OperationProgressUpdate, OpsRegistry, ProgressEntry
from tests.conftest import result_for
from tests.registry.conftest import running

pytestmark = pytest.mark.timeout(60)


def _ms() -> int:
    return time.time_ns() // 1_000_000


def test_every_update_is_kept_with_the_time_the_registry_received_it(
    registry: OpsRegistry,
) -> None:
    op = running(registry)
    before = _ms()
    for n in range(1, 41):
        registry.report_progress(op, OperationProgressUpdate(f"step {n}", min(100.0, n * 2.5)))
    after = _ms()
    log = registry.progress_log(op)
    assert [e.number for e in log] == list(range(9, 41))  # the last 32
    assert [e.message for e in log] == [f"step {n}" for n in range(9, 41)]
    assert log[-1].percent == 100.0
    assert all(before <= e.at_ms <= after for e in log)
    assert [e.at_ms for e in log] == sorted(e.at_ms for e in log)
    snap = registry.snapshot(op)
    assert snap is not None and snap.progress_count - len(log) == log[0].number - 1 == 8
    registry.complete_operation(op, result_for(op))
    assert registry.progress_log(op) == log  # an ended operation keeps its log


def test_an_unknown_id_is_not_found(registry: OpsRegistry) -> None:
    with pytest.raises(NotFound):
        registry.progress_log(OperationId.new())
    assert registry.progress_log(running(registry)) == []  # known, no progress yet


def test_after_a_restart_the_log_is_the_last_progress_only(tmp_path: Path) -> None:
    with OpsRegistry.open(tmp_path) as reg:
        done, inflight = running(reg, "done"), running(reg, "in flight")
        for n in (1, 2, 3):
            reg.report_progress(done, OperationProgressUpdate(f"step {n}", n * 10))
            reg.report_progress(inflight, OperationProgressUpdate(f"other {n}"))
        reg.complete_operation(done, result_for(done))
        ended = reg.snapshot(done)
        assert ended is not None and len(reg.progress_log(done)) == 3
    with OpsRegistry.open(tmp_path) as again:
        assert again.progress_log(done) == [
            ProgressEntry(
                at_ms=ended.completed_at_ms or 0, message="step 3", percent=30.0, number=3
            )
        ]
        # progress is not journaled: what was in flight kept no update over the restart
        restarted = again.snapshot(inflight)
        assert restarted is not None and restarted.last_progress is None
        assert again.progress_log(inflight) == []
