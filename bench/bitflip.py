"""Flip one random bit of a stopped store, then open it and recover every registry.

The store is built with known content: three registries, every terminal outcome
(completed, failed, cancelled, aborted, retired, terminated), operations still in
flight, a collection, a compacted snapshot per registry and a journal tail after
it; then it is closed cleanly (checkpointed into the one database file). Each trial
copies the data directory, flips one bit at a uniformly random offset of the
database file, opens the copy with ``SqliteStore`` and folds every registry's
``recover`` into a ``Lifecycle`` (exactly what ``OpsRegistry.attach`` does). A trial
is

``refused``
    ``StoreError`` at open or recovery (the wanted outcome for damage);
``identical``
    every registry folds to exactly the state of the original store (the bit was
    in unused space, or in bytes nothing reads);
``altered``
    some registry came back different: damage served as data;
``unusable``
    any other exception (the store opened, but recovering a registry failed
    with something other than a clean refusal).

Prints one JSON line with the counts (the product must show ``altered == 0`` and
``unusable == 0``)::

    python bench/bitflip.py [--trials 300] [--seed 1]
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import json
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from actors import (
    Aborted,
    Cancelled,
    Completed,
    Failed,
    OperationId,
    OperationKind,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    PersistedOpsSnapshot,
    Retired,
    Terminated,
)
from actors.journal import CollectRecord
from actors.lifecycle import Lifecycle
from actors.persistence import Append, Commit
from actors.registry import fold_recovered
from actors.sqlite_store import STORE_FILE, SqliteStore, StoreError

REGISTRIES = ("alpha", "beta", "gamma")
MAX_COMPLETED = 64
EPOCH = "bitflip"


class _Builder:
    """Drives a real ``Lifecycle`` per registry and writes its records with ``SqliteStore.write``."""

    def __init__(self, store: SqliteStore, rng: random.Random) -> None:
        self.store = store
        self.rng = rng
        self.lcs = {name: Lifecycle(max_completed=MAX_COMPLETED) for name in REGISTRIES}
        self.token = 0
        self.clock = 1_700_000_000_000

    def now(self) -> int:
        self.clock += self.rng.randint(1, 50)
        return self.clock

    def round(self, name: str, count: int) -> None:
        lc = self.lcs[name]
        batch: list[Append | Commit] = []
        pending: dict[int, OperationId] = {}
        ended: list[OperationId] = []
        for i in range(count):
            op = OperationId.new()
            spec = OperationSpec(
                id=op,
                kind=OperationKind.BACKGROUND_TOOL_OP,
                owner_session_id=f"session-{name}",
                display_name=f"{name}-{i:03}-{self.rng.randrange(10**6)}",
                source_label="bitflip",
            )
            records: list[Any] = [lc.register(spec, self.now())]
            kind = i % 8
            if kind != 3:
                records.append(lc.start(op, self.now()))
            batch.append(Append(name, tuple(records)))
            if kind == 7:
                continue  # stays in flight
            if kind == 1:
                lc.progress(op, OperationProgressUpdate(f"step {i}", float(i)), self.now())
            action, outcome = {
                0: ("complete_operation", Completed(OperationResult(id=op, content=f"r{i}"))),
                1: ("fail_operation", Failed(f"failure {i}")),
                2: ("cancel_operation", Cancelled(f"cancel {i}")),
                3: ("abort_provisioning", Aborted(f"abort {i}")),
                4: ("mark_retired", Retired()),
                5: ("terminate_owner", Terminated("owner went away")),
                6: ("complete_operation", Completed(OperationResult(id=op, content="x" * 300))),
            }[kind]
            self.token += 1
            terminal = lc.begin_terminal(op, action, outcome, self.now())
            batch.append(Commit(name, self.token, (terminal,), None))  # type: ignore[arg-type]
            pending[self.token] = op
        for token, seqs in self.store.write(batch).items():
            lc.commit_terminal(pending[token], seqs[0])
            ended.append(pending[token])
        collect = tuple(ended[: len(ended) // 4])
        if collect:
            self.store.write([Append(name, (CollectRecord(ids=collect),))])
            lc.apply(CollectRecord(ids=collect))


def build(data_dir: Path, seed: int = 0) -> dict[str, PersistedOpsSnapshot]:
    """The store every trial damages; returns each registry's expected state."""
    rng = random.Random(seed)
    store = SqliteStore(data_dir, "full")
    store.open()
    try:
        builder = _Builder(store, rng)
        for name in REGISTRIES:
            builder.round(name, 40)
            builder.round(name, 24)
        for name in REGISTRIES:
            store.save_snapshot(name, builder.lcs[name].to_persisted(EPOCH))
        for name in REGISTRIES:
            builder.round(name, 16)  # the journal tail after the snapshot
    finally:
        store.close()
    return {name: builder.lcs[name].to_persisted(EPOCH) for name in REGISTRIES}


def recover_all(data_dir: Path) -> dict[str, PersistedOpsSnapshot]:
    store = SqliteStore(data_dir, "full")
    store.open()
    try:
        return {
            name: fold_recovered(store.recover(name), MAX_COMPLETED, None).to_persisted(EPOCH)
            for name in REGISTRIES
        }
    finally:
        store.close()


def trial(
    pristine: Path, work: Path, expected: dict[str, PersistedOpsSnapshot], rng: random.Random
) -> tuple[str, str]:
    """One flip; returns the outcome and what happened (the bit, and the error if any)."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pristine, work)
    path = work / STORE_FILE
    data = bytearray(path.read_bytes())
    bit = rng.randrange(len(data) * 8)
    data[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))
    where = f"bit {bit % 8} of byte {bit // 8} (page {bit // 8 // 4096})"
    try:
        got = recover_all(work)
    except StoreError:
        return "refused", where
    except Exception as exc:
        return "unusable", f"{where}: {type(exc).__name__}: {exc}"
    if got == expected:
        return "identical", where
    changed = sorted(name for name in REGISTRIES if got[name] != expected[name])
    return "altered", f"{where}: registries {changed} differ"


def run_trials(root: Path, trials: int, seed: int) -> tuple[Counter[str], list[str]]:
    """Build one store under ``root`` and run ``trials`` bit flips on copies of it;
    returns the counts and a description of each altered or unusable trial."""
    pristine = root / "pristine"
    expected = build(pristine, seed)
    if recover_all(pristine) != expected:
        raise RuntimeError("the undamaged store does not recover to the state that built it")
    for leftover in (".wal", ".shm"):
        Path(str(pristine / STORE_FILE) + leftover).unlink(missing_ok=True)
    rng = random.Random(seed)
    counts: Counter[str] = Counter(refused=0, identical=0, altered=0, unusable=0)
    bad: list[str] = []
    for _ in range(trials):
        outcome, detail = trial(pristine, root / "trial", expected, rng)
        counts[outcome] += 1
        if outcome in ("altered", "unusable"):
            bad.append(f"{outcome}: {detail}")
    return counts, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bitflip-") as tmp:
        counts, bad = run_trials(Path(tmp), opts.trials, opts.seed)
        size = (Path(tmp) / "pristine" / STORE_FILE).stat().st_size
    result = {
        "bench": "bitflip",
        "trials": opts.trials,
        "seed": opts.seed,
        "store_bytes": size,
        **dict(counts),
        "examples": bad[:5],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
