"""``opsreg demo``: a server, a worker pool and a subscriber, in one command.

It starts a durable server on a temporary directory, runs a mixed workload of
operations through a 4-process :class:`~transport.workers.WorkerPool` (random
durations and progress, some failing, some cancelled), retires a few
operations by hand, holds a ``wait_all`` over one batch, and drives a live
progress bar from a :class:`~transport.feed.FeedSubscriber`. It ends with a
summary: counts by outcome, throughput, watcher latency, and whether the feed
arrived complete and in order.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.model import OperationId, OperationKind, OperationSpec
from transport.client import RegistryClient
from transport.feed import FeedSubscriber
from transport.metrics import percentile
from transport.server import RegistryServer, ServerConfig
from transport.workers import OperationError, WorkerPool

__all__ = ["DemoReport", "run_demo"]


def demo_task(duration_ms: float, steps: int, fail: bool, progress: Any) -> str:
    """What a demo call does in its worker: sleep in steps, report progress, maybe fail."""
    pause = threading.Event()
    for step in range(steps):
        pause.wait(duration_ms / 1000 / max(steps, 1))
        progress(f"step {step + 1} of {steps}", 100.0 * (step + 1) / steps)
    if fail:
        raise RuntimeError("the demo decided this one fails")
    return f"done in {duration_ms:.1f} ms"


@dataclass
class DemoReport:
    operations: int
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    watcher_latency_ms: list[float] = field(default_factory=list)
    feed_entries: int = 0
    feed_in_order: bool = True
    wait_all_members: int = 0

    @property
    def throughput(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def latency(self, q: float) -> float:
        value = percentile(self.watcher_latency_ms, q)
        return float("nan") if value is None else value

    def rows(self) -> list[tuple[str, str]]:
        rows = [(f"outcome: {k}", str(v)) for k, v in sorted(self.outcomes.items())]
        rows += [
            ("operations", str(self.operations)),
            ("wall time", f"{self.seconds:.1f} s"),
            ("throughput", f"{self.throughput:.0f} operations/s"),
            ("watcher latency p50", f"{self.latency(0.5):.1f} ms"),
            ("watcher latency p99", f"{self.latency(0.99):.1f} ms"),
            ("wait_all over a batch", f"{self.wait_all_members} members, resolved"),
            (
                "feed entries received",
                f"{self.feed_entries} (in order, no gaps: {self.feed_in_order})",
            ),
        ]
        if self.watcher_latency_ms:
            rows.append(
                ("watcher latency mean", f"{statistics.fmean(self.watcher_latency_ms):.1f} ms")
            )
        return rows


def run_demo(
    operations: int = 2000,
    processes: int = 4,
    *,
    seed: int = 7,
    on_progress: Any = None,
) -> DemoReport:
    """Run the demo; ``on_progress(done, total)`` is called as feed entries arrive."""
    rng = random.Random(seed)
    report = DemoReport(operations=operations)
    with tempfile.TemporaryDirectory(prefix="opsreg-demo-") as data:
        config = ServerConfig(
            endpoint="tcp://127.0.0.1:0",
            feed_endpoint="tcp://127.0.0.1:0",
            data_dir=data,
            max_completed=max(256, operations),
            heartbeat_interval=0.2,
        )
        with RegistryServer(config) as server:
            total = operations
            seen: list[int] = []
            sub = FeedSubscriber(server.endpoint, server.feed_endpoint, after_seq=0)

            def follow() -> None:
                while len(seen) < total:
                    entry = sub.next(timeout=60)
                    if entry is None:
                        return
                    seen.append(entry.seq)
                    if on_progress is not None:
                        on_progress(len(seen), total)

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            started = time.monotonic()
            with (
                RegistryClient(server.endpoint, timeout=30) as cli,
                WorkerPool(server.endpoint, processes=processes) as pool,
            ):
                retired = _retire_a_few(cli, max(1, operations // 200))
                handles = []
                watched: dict[OperationId, Any] = {}
                resolved_at: dict[OperationId, float] = {}
                barrier = None
                for i in range(operations - len(retired)):
                    fail = rng.random() < 0.08
                    handle = pool.submit(
                        demo_task,
                        rng.uniform(0.0, 4.0),
                        rng.randint(1, 4),
                        fail,
                        display_name=f"task-{i:04}",
                    )
                    handles.append(handle)
                    if i % 10 == 0:
                        # Watch every tenth while it is still queued; a watcher that comes
                        # back already resolved measures nothing and is left out.
                        fut = cli.register_watcher(handle.id)
                        if not fut.done():
                            watched[handle.id] = fut
                            fut.add_done_callback(_stamp(resolved_at, handle.id))
                    if i == 49:
                        barrier = cli.wait_all("demo-batch", [h.id for h in handles])
                if barrier is None:
                    barrier = cli.wait_all("demo-batch", [h.id for h in handles])
                for h in rng.sample(handles, max(1, len(handles) // 25)):
                    h.cancel("the demo changed its mind")
                for h in handles:
                    with contextlib.suppress(OperationError):
                        h.result(timeout=120)
                report.wait_all_members = len(barrier.get(timeout=60).outcomes)
                for op, fut in watched.items():
                    fut.get(timeout=30)
                    snap = cli.snapshot(op)
                    if snap is not None and snap.completed_at_ms is not None and op in resolved_at:
                        report.watcher_latency_ms.append(
                            max(0.0, resolved_at[op] * 1000 - snap.completed_at_ms)
                        )
                report.outcomes = Counter(
                    s.status.value for s in cli.list_operations() if s.status.is_terminal
                )
            report.seconds = time.monotonic() - started
            reader.join(timeout=60)
            sub.close()
            report.feed_entries = len(seen)
            report.feed_in_order = seen == list(range(1, len(seen) + 1)) and len(seen) == total
    return report


def _stamp(times: dict[OperationId, float], op: OperationId) -> Callable[[Any], None]:
    def stamp(_: Any) -> None:
        times.setdefault(op, time.time())

    return stamp


def _retire_a_few(cli: RegistryClient, count: int) -> list[OperationId]:
    """Operations that are retired rather than run (as a mob member leaving would be)."""
    ids = []
    for i in range(count):
        op = OperationId.new()
        cli.register_operation(
            OperationSpec(
                id=op,
                kind=OperationKind.MOB_MEMBER_CHILD,
                owner_session_id="demo",
                display_name=f"member-{i}",
                source_label="opsreg demo",
                child_session_id=f"child-{i}",
                expect_peer_channel=True,
            )
        )
        cli.provisioning_succeeded(op)
        cli.request_retire(op)
        cli.mark_retired(op)
        ids.append(op)
    return ids
