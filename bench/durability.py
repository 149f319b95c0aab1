"""What durability costs: the SQLite journal against no persistence and a naive snapshot design.

What it measures (all in this one process, in one run):

``lifecycles_per_s.memory`` (a)
    Full lifecycles (``register_operation`` -> ``provisioning_succeeded`` ->
    ``complete_operation``) through ``OpsRegistry.start()``: no persistence.
``lifecycles_per_s.journal_full`` (b) and ``journal_normal`` (b')
    The same through ``OpsRegistry.open(tmpdir, synchronous="full"|"normal")``:
    every terminal is acknowledged only once its journal transaction is
    committed; records that meet in the persistence mailbox share a
    transaction (group commit). The product's default ``compact_every``
    applies, so compactions happen during the run as they would in service.
``lifecycles_per_s.naive_snapshot`` (c)
    The reference design, written here and not in the product: an in-memory
    ``OpsRegistry.start()`` whose callers, after every ``complete_operation``,
    take ``capture_persistence_snapshot()``, encode it with
    ``actors.model.encode`` and store it in its own SQLite transaction
    (``INSERT OR REPLACE`` of one row, WAL, ``synchronous=FULL``), under one
    lock shared by all threads (so a newer snapshot is never overwritten by an
    older one). The caller returns only once its snapshot is on disk.

Every scenario uses ``max_completed=1024`` and is pre-filled, before the clock
starts, with 1,000 lifecycles through the same registry, so about 1,000
terminal operations are retained (and a snapshot is as large as a service's
would be). For (c) the pre-fill goes through the in-memory registry and is
followed by one snapshot write: the per-terminal snapshot is not what is being
pre-filled. Each is measured from 1 and from 8 threads; the N lifecycles of a
figure are split evenly among the threads, each driving its own operations,
and the clock runs from a common start barrier until the last thread is done.
(c) is slow, so it is measured with a smaller N (``n_naive``); all figures are
rates. After every run the feed watermark must equal pre-fill + N; for (b) the
directory is then reopened and must recover the same watermark, and for (c)
the stored snapshot must decode to it.

``recovery`` (d)
    A store holding a compacted snapshot of 10,000 retained terminal
    operations followed by a journal of 100,002 records (33,334 lifecycles of
    3 records each, which replay to 10,000 retained operations: the snapshot's
    ones are evicted by the newer ones). The store is built directly, without
    a registry, to take seconds rather than minutes: a real ``Lifecycle``
    produces the records and assigns the completion seqs, and
    ``SqliteStore.write`` (the persistence actor's own write path: same
    encoder, same seq numbering, same rows) writes them in transactions of
    ~3,000 records; ``SqliteStore.save_snapshot`` writes the snapshot. The
    store is then closed with ``SqliteStore.close()`` — never through a
    registry stop, whose persistence actor would compact the journal away — so
    the file holds exactly snapshot + journal, as a process killed right after
    its last commit would leave it (except that the WAL is checkpointed). Each
    repetition copies that directory, then times
    ``OpsRegistry.open(copy, max_completed=10_000)`` until it returns (the
    registry is ready: recovered, attached, restart terminations done) with a
    warm page cache, and checks the watermark and the retained count. The
    journal length reported is counted in the copy (rows after the snapshot's
    ``through_lsn``) before it is opened. ``recovery.breakdown_s`` times the
    parts separately on the same copy afterwards: ``store_open`` (lock, quick
    check, connect), ``store_recover`` (read + decode snapshot and journal)
    and ``fold`` (one ``fold_recovered``; ``OpsRegistry.attach`` folds twice,
    once for the registry and once for the persistence actor's mirror).

Ratios (per thread count; ``of_medians`` divides median rates, ``paired``
divides the rates of the same repetition and gives median/min/max):
``journal_full_over_memory`` and ``journal_full_over_naive`` (also for
``journal_normal``). Targets: ``journal_full >= 0.5 x memory`` at 8 threads;
``journal_full >= 5 x naive_snapshot`` (at 1 and at 8 threads); recovery
median < 1 s.

Usage::

    python bench/durability.py [--quick] [--repeat R] [--n N] [--n-naive N] [--dir DIR]

Prints exactly one JSON line on stdout; progress goes to stderr. Temporary
directories are made under ``--dir`` (default: the system temp directory) and
removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pykka
from _common import lifecycle_work, log, make_ops, ratio, run_threads, split, summary

from actors import OperationId, OperationResult, OpsRegistry
from actors.lifecycle import Lifecycle
from actors.model import Completed, PersistedOpsSnapshot, decode, encode
from actors.persistence import Append, Commit
from actors.registry import fold_recovered, now_ms
from actors.sqlite_store import STORE_FILE, SqliteStore

MAX_COMPLETED = 1024
PREFILL = 1_000
THREAD_COUNTS = (1, 8)
KINDS = ("memory", "journal_full", "journal_normal", "naive_snapshot")
DEFAULT_N = 10_000
QUICK_N = 2_000
DEFAULT_N_NAIVE = 500
QUICK_N_NAIVE = 120
DEFAULT_REPEAT = 5
QUICK_REPEAT = 2
WARMUP_N = 200
WARMUP_N_NAIVE = 40
JOIN_TIMEOUT = 600.0

RECOVERY_RETAINED = 10_000
RECOVERY_LIFECYCLES = 33_334  # x 3 records = 100,002 journal records after the snapshot
RECOVERY_BATCH = 1_000  # lifecycles per build transaction (3,000 rows)
REGISTRY = "default"


# --- (c) the naive reference design: one full snapshot per terminal ----------------------


class NaiveSnapshotRegistry:
    """An in-memory registry made durable by writing a whole snapshot after every terminal.

    This is the reference design (c), kept in the benchmark on purpose: it is
    not part of the product. All threads share one connection under one lock;
    the snapshot is captured inside the lock, so rows only ever move forward.
    """

    def __init__(self, data_dir: Path, max_completed: int) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "naive.sqlite3"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY, body BLOB)")
        self.lock = threading.Lock()
        self.reg = OpsRegistry.start(max_completed=max_completed)
        self.register_operation = self.reg.register_operation
        self.provisioning_succeeded = self.reg.provisioning_succeeded
        self.writes = 0

    def complete_operation(self, op_id: OperationId, result: OperationResult) -> None:
        self.reg.complete_operation(op_id, result)
        self.persist()

    def persist(self) -> None:
        with self.lock:
            body = encode(self.reg.capture_persistence_snapshot())
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT OR REPLACE INTO snapshot (id, body) VALUES (1, ?)", (body,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self.writes += 1

    def stored_watermark(self) -> int:
        with self.lock:
            (body,) = self.db.execute("SELECT body FROM snapshot WHERE id = 1").fetchone()
        return decode(body, PersistedOpsSnapshot).authority_state.next_completion_seq

    def stop(self) -> None:
        self.reg.stop()
        self.db.close()


# --- (a), (b), (c): one measured run ---------------------------------------------------------


def time_lifecycles(kind: str, n: int, threads: int, root: Path) -> tuple[float, float | None]:
    """Lifecycles/s through a fresh, pre-filled registry; also store commits per lifecycle."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root))
    expected = PREFILL + n
    commits: float | None = None
    try:
        batches = [make_ops(k, f"bench-{i}") for i, k in enumerate(split(n, threads))]
        prefill = make_ops(PREFILL, "prefill")
        if kind == "naive_snapshot":
            naive = NaiveSnapshotRegistry(data_dir, MAX_COMPLETED)
            try:
                lifecycle_work(naive.reg, prefill)()  # retained state only, see module doc
                naive.persist()
                gc.collect()
                elapsed = run_threads([lifecycle_work(naive, ops) for ops in batches], JOIN_TIMEOUT)
                check(naive.reg.watermark(), expected, kind)
                check(naive.stored_watermark(), expected, f"{kind} (stored snapshot)")
                if naive.writes != n + 1:
                    raise RuntimeError(f"{kind}: {naive.writes} snapshot writes, expected {n + 1}")
            finally:
                naive.stop()
            return n / elapsed, None
        if kind == "memory":
            reg = OpsRegistry.start(max_completed=MAX_COMPLETED)
        else:
            level = kind.removeprefix("journal_")
            reg = OpsRegistry.open(data_dir, synchronous=level, max_completed=MAX_COMPLETED)
        try:
            lifecycle_work(reg, prefill)()
            reg.sync_journal()
            store = reg.store
            before = getattr(store, "commits", 0)
            gc.collect()
            elapsed = run_threads([lifecycle_work(reg, ops) for ops in batches], JOIN_TIMEOUT)
            check(reg.watermark(), expected, kind)
            if isinstance(store, SqliteStore):
                commits = (store.commits - before) / n
        finally:
            reg.stop()
        if kind != "memory":
            with OpsRegistry.open(data_dir, max_completed=MAX_COMPLETED) as again:
                check(again.watermark(), expected, f"{kind} (reopened)")
        return n / elapsed, commits
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def check(got: int, expected: int, what: str) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: watermark is {got}, expected {expected}")


# --- (d) recovery ------------------------------------------------------------------------------


def build_recovery_store(data_dir: Path) -> dict[str, int]:
    """Snapshot of RECOVERY_RETAINED terminals + a journal of 3 x RECOVERY_LIFECYCLES records.

    See the module docstring: real ``Lifecycle`` records, written by
    ``SqliteStore.write``; closed without any compaction.
    """
    store = SqliteStore(data_dir, "normal")
    store.open()
    lc = Lifecycle(max_completed=RECOVERY_RETAINED)
    token = 0

    def lifecycles(count: int) -> None:
        nonlocal token
        for first in range(0, count, RECOVERY_BATCH):
            batch: list[Append | Commit] = []
            pending: dict[int, OperationId] = {}
            for spec, result in make_ops(min(RECOVERY_BATCH, count - first), "recovery"):
                now = now_ms()
                records = (lc.register(spec, now), lc.start(spec.id, now))
                batch.append(Append(REGISTRY, records))
                token += 1
                terminal = lc.begin_terminal(spec.id, "complete_operation", Completed(result), now)
                batch.append(Commit(REGISTRY, token, (terminal,), None))  # type: ignore[arg-type]
                pending[token] = spec.id
            for tok, seqs in store.write(batch).items():
                lc.commit_terminal(pending[tok], seqs[0])

    try:
        lifecycles(RECOVERY_RETAINED)
        store.save_snapshot(REGISTRY, lc.to_persisted("bench-recovery"))
        lifecycles(RECOVERY_LIFECYCLES)
        if lc.operation_count != RECOVERY_RETAINED:
            raise RuntimeError(f"built state retains {lc.operation_count} operations")
        return {"watermark": lc.watermark, "rows_written": store.rows_written}
    finally:
        store.close()  # checkpoint + close: no snapshot, no journal row removed


def journal_after_snapshot(data_dir: Path) -> int:
    """Journal rows the next open will replay (those after the snapshot's ``through_lsn``)."""
    uri = f"file:{data_dir / STORE_FILE}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        row = db.execute(
            "SELECT COUNT(*) FROM journal WHERE registry = ?1 AND lsn > "
            "COALESCE((SELECT through_lsn FROM snapshots WHERE registry = ?1), 0)",
            (REGISTRY,),
        ).fetchone()
        return int(row[0])
    finally:
        db.close()


def time_recovery(source: Path, root: Path, expected: int) -> tuple[float, int, dict[str, float]]:
    """Seconds for ``OpsRegistry.open`` on a fresh copy of ``source``; journal rows replayed."""
    copy = Path(tempfile.mkdtemp(prefix="recovery-", dir=root))
    try:
        shutil.copytree(source, copy, dirs_exist_ok=True)
        rows = journal_after_snapshot(copy)
        gc.collect()
        t0 = time.perf_counter()
        reg = OpsRegistry.open(copy, max_completed=RECOVERY_RETAINED)
        elapsed = time.perf_counter() - t0
        try:
            check(reg.watermark(), expected, "recovery")
            retained = reg.diagnostic_snapshot().operation_count
            if retained != RECOVERY_RETAINED:
                raise RuntimeError(f"recovery retained {retained}, expected {RECOVERY_RETAINED}")
        finally:
            reg.stop()
        if journal_after_snapshot(copy) != rows:
            raise RuntimeError("the recovered store's journal changed: it was compacted on stop")
        return elapsed, rows, recovery_breakdown(copy)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def recovery_breakdown(data_dir: Path) -> dict[str, float]:
    """The parts of an open, timed one by one on this thread (no actors)."""
    store = SqliteStore(data_dir, "full")
    t0 = time.perf_counter()
    store.open()
    t1 = time.perf_counter()
    try:
        recovered = store.recover(REGISTRY)
        t2 = time.perf_counter()
        fold_recovered(recovered, RECOVERY_RETAINED, None)
        t3 = time.perf_counter()
    finally:
        store.close()
    return {"store_open": t1 - t0, "store_recover": t2 - t1, "fold": t3 - t2}


# --- report ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run (< 60 s on 2 cores)")
    parser.add_argument("--repeat", type=int, default=None, metavar="R")
    parser.add_argument("--n", type=int, default=None, metavar="N", help="lifecycles per figure")
    parser.add_argument("--n-naive", type=int, default=None, metavar="N", help="same, for (c)")
    parser.add_argument("--dir", default=None, help="where temporary stores go")
    parser.add_argument(
        "--tiny", action="store_true", help="smoke-test size: a small recovery store as well"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        global RECOVERY_RETAINED, RECOVERY_LIFECYCLES
        RECOVERY_RETAINED, RECOVERY_LIFECYCLES = 200, 700
    n = args.n if args.n is not None else (QUICK_N if args.quick else DEFAULT_N)
    n_naive = (
        args.n_naive
        if args.n_naive is not None
        else (QUICK_N_NAIVE if args.quick else DEFAULT_N_NAIVE)
    )
    repeat = (
        args.repeat if args.repeat is not None else (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    )
    if min(n, n_naive) < max(THREAD_COUNTS) or repeat < 1:
        parser.error(f"--n and --n-naive must be >= {max(THREAD_COUNTS)} and --repeat >= 1")

    def size(kind: str) -> int:
        return n_naive if kind == "naive_snapshot" else n

    scenarios = [(kind, t) for t in THREAD_COUNTS for kind in KINDS]
    rates: dict[tuple[str, int], list[float]] = {key: [] for key in scenarios}
    commits: dict[tuple[str, int], list[float]] = {key: [] for key in scenarios}
    recovery: list[float] = []
    breakdown: dict[str, list[float]] = {}
    began = time.perf_counter()
    load_start = _loadavg()
    root = Path(tempfile.mkdtemp(prefix="opsreg-durability-", dir=args.dir))
    try:
        log(f"warm-up (n={WARMUP_N}, {WARMUP_N_NAIVE} for naive_snapshot) in {root}")
        for kind, threads in scenarios:
            warm = WARMUP_N_NAIVE if kind == "naive_snapshot" else WARMUP_N
            time_lifecycles(kind, min(size(kind), warm), threads, root)
        for rep in range(repeat):
            for key in scenarios:
                rate, per = time_lifecycles(key[0], size(key[0]), key[1], root)
                rates[key].append(rate)
                if per is not None:
                    commits[key].append(per)
                log(f"rep {rep + 1}/{repeat} {key[0]:>14} x{key[1]}: {rate:,.0f}/s")

        source = root / "recovery-source"
        t0 = time.perf_counter()
        built = build_recovery_store(source)
        build_s = time.perf_counter() - t0
        log(f"recovery store built in {build_s:.1f}s: {built}")
        replayed = 0
        for rep in range(repeat):
            elapsed, replayed, parts = time_recovery(source, root, built["watermark"])
            recovery.append(elapsed)
            for part, secs in parts.items():
                breakdown.setdefault(part, []).append(secs)
            log(f"rep {rep + 1}/{repeat} recovery: {elapsed:.3f}s ({replayed} journal rows)")
        store_bytes = (source / STORE_FILE).stat().st_size
    finally:
        pykka.ActorRegistry.stop_all()
        shutil.rmtree(root, ignore_errors=True)

    def figures(kind: str) -> dict[str, Any]:
        return {f"threads_{t}": summary(rates[(kind, t)]) for t in THREAD_COUNTS}

    ratios = {
        f"{journal}_over_{base}": {
            f"threads_{t}": ratio(rates[(journal, t)], rates[(base, t)]) for t in THREAD_COUNTS
        }
        for journal in ("journal_full", "journal_normal")
        for base in ("memory", "naive_snapshot")
    }
    full_vs_memory_8 = ratios["journal_full_over_memory"]["threads_8"]["of_medians"]
    full_vs_naive = [
        ratios["journal_full_over_naive_snapshot"][f"threads_{t}"]["of_medians"]
        for t in THREAD_COUNTS
    ]
    recovery_median = statistics.median(recovery)
    out: dict[str, Any] = {
        "bench": "durability",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "pykka": _version("pykka"),
        "sqlite": sqlite3.sqlite_version,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "n": n,
        "n_naive": n_naive,
        "prefill": PREFILL,
        "max_completed": MAX_COMPLETED,
        "repeat": repeat,
        "quick": args.quick,
        "lifecycles_per_s": {kind: figures(kind) for kind in KINDS},
        "store_commits_per_lifecycle": {
            kind: {f"threads_{t}": summary(commits[(kind, t)], 3) for t in THREAD_COUNTS}
            for kind in ("journal_full", "journal_normal")
        },
        "ratios": ratios,
        "recovery": {
            "retained": RECOVERY_RETAINED,
            "snapshot_operations": RECOVERY_RETAINED,
            "journal_replayed": replayed,
            "watermark": built["watermark"],
            "store_bytes": store_bytes,
            "build_s": round(build_s, 2),
            "open_s": summary(recovery, 3),
            "breakdown_s": {part: summary(v, 3) for part, v in breakdown.items()},
        },
        "targets": {
            "journal_full_ge_half_memory_8_threads": full_vs_memory_8 >= 0.5,
            "journal_full_ge_5x_naive": all(r >= 5 for r in full_vs_naive),
            "recovery_lt_1s": recovery_median < 1.0,
        },
        "loadavg_1m": {"start": load_start, "end": _loadavg()},
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0


def _loadavg() -> float | None:
    """The machine's 1-minute load average: other work competing for the cores skews rates."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
