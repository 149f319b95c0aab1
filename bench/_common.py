"""Helpers every benchmark script shares: threads from a common start, operations to
drive, and the median/min/max summaries the JSON lines report."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from actors import OperationId, OperationKind, OperationResult, OperationSpec

Work = Callable[[], None]
Ops = list[tuple[OperationSpec, OperationResult]]


def log(text: str) -> None:
    """Progress goes to stderr; stdout carries only the one JSON line."""
    print(text, file=sys.stderr, flush=True)


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run_threads(works: list[Work], join_timeout: float = 600.0) -> float:
    """Run each work item in its own thread from a common start; seconds until all are done."""
    start = threading.Barrier(len(works) + 1)
    errors: list[BaseException] = []

    def body(work: Work) -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(w,), daemon=True) for w in works]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(join_timeout)
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in threads):
        raise RuntimeError(f"benchmark thread still running after {join_timeout}s")
    return elapsed


def make_ops(count: int, owner: str) -> Ops:
    ops = []
    for _ in range(count):
        op_id = OperationId.new()
        spec = OperationSpec(
            id=op_id,
            kind=OperationKind.BACKGROUND_TOOL_OP,
            owner_session_id=owner,
            display_name="bench",
            source_label="bench",
        )
        ops.append((spec, OperationResult(id=op_id, content="ok")))
    return ops


def summary(values: list[float], digits: int = 1) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def ratio(num: list[float], den: list[float]) -> dict[str, Any]:
    """Ratio of medians, and the median/min/max of the per-repetition ratios."""
    paired = [a / b for a, b in zip(num, den, strict=True)]
    return {
        "of_medians": round(statistics.median(num) / statistics.median(den), 4),
        "paired": summary(paired, 4),
    }
