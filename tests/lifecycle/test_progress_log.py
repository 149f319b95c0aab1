"""Progress logs (actors/progress_log.py): bounded per operation and per registry; no threads."""

from __future__ import annotations

import random
import tracemalloc

import msgspec
import pytest

from actors import (
    Failed,
    InvalidArgument,
    NotFound,
    OperationId,
    OperationProgressUpdate,
    ProgressEntry,
)
from actors.lifecycle import Lifecycle
from actors.lifecycle_snapshot import from_persisted, restore_progress_logs
from actors.progress_log import (
    ENTRY_OVERHEAD,
    KEEP_PER_OPERATION,
    LOG_OVERHEAD,
    ProgressLogs,
    entry_cost,
)
from tests.conftest import background_spec, result_for

pytestmark = pytest.mark.timeout(60)

KIB4 = "x" * 4096  # the longest message the caps allow (4 KiB)


def _rec(
    logs: ProgressLogs, op: OperationId, n: int, message: str = "", at_ms: int | None = None
) -> None:
    update = OperationProgressUpdate(message or f"step {n}")
    logs.record(op, n if at_ms is None else at_ms, n, update)


def _fill(logs: ProgressLogs, op: OperationId, count: int, message: str = "") -> None:
    for n in range(1, count + 1):
        _rec(logs, op, n, message)


def _counted(logs: ProgressLogs, ops: list[OperationId]) -> int:
    """The budget's count recomputed from what is held."""
    return sum(
        LOG_OVERHEAD + sum(entry_cost(e.message) for e in logs.entries(op))
        for op in ops
        if logs.entries(op)
    )


# --- the value ---------------------------------------------------------------------------


def test_an_entry_is_checked_on_construction_and_on_decode() -> None:
    ok = ProgressEntry(at_ms=5, message="half", percent=50, number=1)
    assert ok.percent == 50.0 and isinstance(ok.percent, float)
    for bad in (
        {"at_ms": -1, "message": "m", "percent": None, "number": 1},
        {"at_ms": True, "message": "m", "percent": None, "number": 1},
        {"at_ms": 1, "message": "m", "percent": 100.5, "number": 1},
        {"at_ms": 1, "message": "m", "percent": float("nan"), "number": 1},
        {"at_ms": 1, "message": "m", "percent": None, "number": 0},
        {"at_ms": 1, "message": "m" * 4097, "percent": None, "number": 1},
    ):
        with pytest.raises(InvalidArgument):
            ProgressEntry(**bad)  # type: ignore[arg-type]
        with pytest.raises((InvalidArgument, msgspec.ValidationError)):
            msgspec.msgpack.decode(msgspec.msgpack.encode(bad), type=ProgressEntry)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(ok), type=ProgressEntry) == ok


def test_an_entry_costs_its_utf8_bytes_plus_the_overhead() -> None:
    assert entry_cost("abc") == 3 + ENTRY_OVERHEAD
    assert entry_cost("é€") == 5 + ENTRY_OVERHEAD


# --- per operation ---------------------------------------------------------------------


def test_the_last_32_updates_are_kept_oldest_first_and_numbered() -> None:
    logs = ProgressLogs()
    op = OperationId.new()
    _fill(logs, op, 40)
    kept = logs.entries(op)
    assert len(kept) == KEEP_PER_OPERATION == 32
    assert [e.number for e in kept] == list(range(9, 41))
    assert kept[0].number - 1 == 8  # "8 earlier updates not kept"
    assert logs.used == _counted(logs, [op])
    assert logs.entries(OperationId.new()) == []


def test_forget_frees_the_log() -> None:
    logs = ProgressLogs()
    op, other = OperationId.new(), OperationId.new()
    _fill(logs, op, 3)
    _fill(logs, other, 2)
    logs.forget(op)
    logs.forget(op)  # twice is nothing
    assert logs.entries(op) == [] and len(logs) == 1
    assert logs.used == _counted(logs, [other])


@pytest.mark.parametrize("keep, budget", [(0, 1), (1, -1), (True, 1), (1, 1.5)])
def test_bad_bounds_are_refused(keep: object, budget: object) -> None:
    with pytest.raises(InvalidArgument):
        ProgressLogs(keep=keep, budget=budget)  # type: ignore[arg-type]


# --- the budget ------------------------------------------------------------------------


def _log_bytes(entries: int, message_len: int) -> int:
    return LOG_OVERHEAD + entries * (ENTRY_OVERHEAD + message_len)


def test_past_the_budget_ended_logs_go_first_oldest_ended_first() -> None:
    a, b, live = OperationId.new(), OperationId.new(), OperationId.new()
    logs = ProgressLogs(budget=3 * _log_bytes(2, 10))
    for op in (a, b, live):
        _fill(logs, op, 2, "m" * 10)
    logs.ended(b)  # b ended before a
    logs.ended(a)
    assert logs.used == logs.budget
    _rec(logs, live, 3, "m" * 10)
    assert logs.entries(b) == []  # the oldest-ended log went, whole
    assert len(logs.entries(a)) == 2 and len(logs.entries(live)) == 3
    room = (logs.budget - logs.used) // (ENTRY_OVERHEAD + 10)  # what b's bytes left
    assert room >= 1
    for n in range(4, 4 + room):
        _rec(logs, live, n, "m" * 10)
    assert len(logs.entries(a)) == 2
    _rec(logs, live, 4 + room, "m" * 10)
    assert logs.entries(a) == [] and len(logs.entries(live)) == 4 + room
    assert logs.used <= logs.budget


def test_then_the_largest_live_logs_lose_their_oldest_entries() -> None:
    big, small = OperationId.new(), OperationId.new()
    logs = ProgressLogs(budget=_log_bytes(6, 100) + _log_bytes(2, 100))
    _fill(logs, big, 6, "m" * 100)
    _fill(logs, small, 2, "m" * 100)
    assert logs.used == logs.budget
    _rec(logs, small, 3, "m" * 100)  # over: the big log pays
    assert [e.number for e in logs.entries(big)] == [2, 3, 4, 5, 6]
    assert [e.number for e in logs.entries(small)] == [1, 2, 3]
    assert logs.used == _counted(logs, [big, small]) <= logs.budget


def test_a_zero_budget_keeps_nothing() -> None:
    logs = ProgressLogs(budget=0)
    op = OperationId.new()
    _fill(logs, op, 3)
    assert logs.entries(op) == [] and logs.used == 0 and len(logs) == 0


def test_the_budget_holds_under_adversarial_input() -> None:
    """Many operations × 4 KiB messages, some ending, some forgotten, at random."""
    rng = random.Random(14)
    budget = 1024 * 1024
    logs = ProgressLogs(budget=budget)
    ops = [OperationId.new() for _ in range(600)]
    live = set(ops)
    numbers = dict.fromkeys(ops, 0)
    for step in range(20_000):
        op = rng.choice(ops)
        if op in live:
            numbers[op] += 1
            message = KIB4 if rng.random() < 0.8 else "é" * 2048  # 4 KiB of UTF-8 either way
            _rec(logs, op, numbers[op], message, at_ms=step)
            if rng.random() < 0.02:
                logs.ended(op)
                live.discard(op)
        elif rng.random() < 0.1:
            logs.forget(op)
        assert logs.used <= budget, step
        kept = logs.entries(op)
        assert len(kept) <= KEEP_PER_OPERATION
        assert [e.number for e in kept] == list(range(numbers[op] - len(kept) + 1, numbers[op] + 1))
    assert logs.used == _counted(logs, ops)
    # the count is honest: what the logs really allocate stays near the budget
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fresh = ProgressLogs(budget=budget)
        for i, op in enumerate(ops * 4):
            # new message objects, so their memory is the logs' own
            _rec(fresh, op, i + 1, KIB4[:-1] + chr(97 + i % 26))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert fresh.used <= budget
    assert held < 1.2 * budget, held


# --- through the rules -----------------------------------------------------------------


def _running(lc: Lifecycle, name: str = "op") -> OperationId:
    spec = background_spec(name)
    lc.register(spec, now_ms=1)
    lc.start(spec.id, now_ms=2)
    return spec.id


def test_the_rules_keep_each_update_with_the_time_it_arrived() -> None:
    lc = Lifecycle()
    op = _running(lc)
    lc.progress(op, OperationProgressUpdate("a"), now_ms=10)
    lc.progress(op, OperationProgressUpdate("b", 50), now_ms=11)
    assert lc.progress_log(op) == [
        ProgressEntry(at_ms=10, message="a", percent=None, number=1),
        ProgressEntry(at_ms=11, message="b", percent=50.0, number=2),
    ]
    _ = lc.begin_terminal(op, "fail_operation", Failed("x"), now_ms=12)
    assert len(lc.progress_log(op)) == 2  # a pending terminal changes nothing here
    lc.commit_terminal(op)
    assert len(lc.progress_log(op)) == 2  # an ended operation's log stays (within budget)
    with pytest.raises(NotFound):
        lc.progress_log(OperationId.new())


def test_an_operation_that_goes_takes_its_log() -> None:
    lc = Lifecycle(max_completed=1)
    first, second = _running(lc, "a"), _running(lc, "b")
    for op in (first, second):
        lc.progress(op, OperationProgressUpdate("m"), now_ms=3)
    for op in (first, second):
        _ = lc.begin_terminal(op, "complete_operation", _completed(op), now_ms=4)
        lc.commit_terminal(op)
    assert lc.snapshot(first) is None  # evicted (max_completed=1) ...
    assert lc.progress_logs.entries(first) == []  # ... and its log with it
    assert len(lc.progress_logs) == 1
    lc.collect_completed()
    assert len(lc.progress_logs) == 0 and lc.progress_logs.used == 0


def _completed(op: OperationId) -> object:
    from actors import Completed

    return Completed(result_for(op))


def test_after_a_restart_the_log_is_the_last_progress_only() -> None:
    lc = Lifecycle()
    op, quiet = _running(lc, "a"), _running(lc, "b")
    for n in range(1, 6):
        lc.progress(op, OperationProgressUpdate(f"step {n}", n * 10), now_ms=10 + n)
    for o in (op, quiet):
        _ = lc.begin_terminal(o, "fail_operation", Failed("x"), now_ms=100)
        lc.commit_terminal(o)
    again = from_persisted(lc.to_persisted("e"))
    assert len(again.progress_logs) == 0  # from_persisted alone (the mirror) holds no logs
    restore_progress_logs(again)
    assert again.progress_log(op) == [
        ProgressEntry(at_ms=100, message="step 5", percent=50.0, number=5)
    ]
    assert again.progress_log(quiet) == []
