"""In-process throughput of the registry, measured against pykka's own round-trip ceiling.

What it measures (all in this one process, figures in operations per second):

``lifecycles_per_s.memory``
    Full lifecycles (``register_operation`` -> ``provisioning_succeeded`` ->
    ``complete_operation``) through ``OpsRegistry.start(max_completed=256)``:
    terminals become visible at once, with no persistence actor.
``lifecycles_per_s.memory_store``
    The same through ``OpsRegistry.with_memory_store(max_completed=256)``:
    every terminal is handed to the persistence actor and the caller is
    answered only when its ``Durable`` message comes back (a ``Commit``, the
    persistence actor's flush and the ``Durable`` reply per terminal, plus an
    ``Append`` per registration and per start; appends and commits that meet
    in the persistence mailbox share one store write).
``raw_ask_round_trips_per_s``
    ``actor_ref.ask(msg)`` round trips to a ``pykka.ThreadingActor`` whose
    ``on_receive`` returns ``None`` at once: the ceiling for any design that
    sends one message per call and waits for the answer.

Each is measured from 1 thread and from 4 threads; with 4 threads the N
lifecycles (or 3 N asks) are split evenly, each thread driving its own
operations, and the clock runs from a common start barrier until the last
thread is done. Specs and results are built before the clock starts, so the
figures are registry (and pykka) cost, not the cost of making ids.

Each figure is the median of R repetitions, with min and max; repetitions
interleave the scenarios, and every repetition uses a fresh registry.

How to read the ratios (per thread count; each ratio is reported twice:
``of_medians`` divides the median rates, ``paired`` divides the two rates of
the same repetition, measured moments apart, and gives median, min and max of
those R quotients; on a noisy or frequency-scaling machine trust ``paired``):

``lifecycle_over_raw``
    lifecycles/s / raw round trips/s. A lifecycle is three registry calls, so
    a facade that costs no more than one empty round trip per call would
    reach about 1/3 (0.333); this is a guide, not a hard bound.
``calls_over_raw``
    registry calls/s (3 per lifecycle) / raw round trips/s: the fraction of
    pykka's bare round-trip rate that a registry call achieves. 1.0 would
    mean the registry adds nothing over an empty actor; the shortfall is the
    facade, the lifecycle rules, and (for ``memory_store``) the persistence
    hand-off.

Usage::

    python bench/inprocess.py [--quick] [--repeat R] [--n N]

Prints exactly one JSON line on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pykka
from _common import Work, lifecycle_work, log, make_ops, run_threads, split, summary

from actors import OpsRegistry

MAX_COMPLETED = 256
THREAD_COUNTS = (1, 4)
CALLS_PER_LIFECYCLE = 3
DEFAULT_N = 20_000
QUICK_N = 5_000
DEFAULT_REPEAT = 5
WARMUP_N = 400
JOIN_TIMEOUT = 300.0


class NullActor(pykka.ThreadingActor):
    """Answers every message with ``None`` at once."""

    def on_receive(self, message: Any) -> Any:
        return None


def time_lifecycles(store: bool, n: int, threads: int) -> float:
    """Lifecycles per second through a fresh registry."""
    if store:
        reg = OpsRegistry.with_memory_store(max_completed=MAX_COMPLETED)
    else:
        reg = OpsRegistry.start(max_completed=MAX_COMPLETED)
    try:
        batches = [make_ops(k, f"bench-{i}") for i, k in enumerate(split(n, threads))]
        gc.collect()
        elapsed = run_threads([lifecycle_work(reg, ops) for ops in batches], JOIN_TIMEOUT)
        mark = reg.watermark()
        if mark != n:
            raise RuntimeError(f"expected {n} completions in the feed, watermark is {mark}")
    finally:
        reg.stop()
    return n / elapsed


def ask_work(ref: pykka.ActorRef[Any], count: int) -> Work:
    def work() -> None:
        ask = ref.ask
        msg = "ping"
        for _ in range(count):
            ask(msg)

    return work


def time_raw(asks: int, threads: int) -> float:
    """Raw ``ask`` round trips per second to a fresh empty actor."""
    ref = NullActor.start()
    try:
        gc.collect()
        elapsed = run_threads([ask_work(ref, k) for k in split(asks, threads)], JOIN_TIMEOUT)
    finally:
        ref.stop()
    return asks / elapsed


def run_scenario(kind: str, n: int, threads: int) -> float:
    """One measurement: lifecycles/s for ``memory``/``memory_store``, asks/s (3 N) for ``raw``."""
    if kind == "raw":
        return time_raw(CALLS_PER_LIFECYCLE * n, threads)
    return time_lifecycles(kind == "memory_store", n, threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"small run (n={QUICK_N})")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, metavar="R")
    parser.add_argument("--n", type=int, default=None, metavar="N", help="lifecycles per figure")
    args = parser.parse_args(argv)
    n = args.n if args.n is not None else (QUICK_N if args.quick else DEFAULT_N)
    if n < max(THREAD_COUNTS) or args.repeat < 1:
        parser.error(f"--n must be >= {max(THREAD_COUNTS)} and --repeat >= 1")
    asks = CALLS_PER_LIFECYCLE * n

    scenarios = [(kind, t) for t in THREAD_COUNTS for kind in ("memory", "memory_store", "raw")]
    results: dict[tuple[str, int], list[float]] = {key: [] for key in scenarios}
    began = time.perf_counter()
    try:
        log(f"warm-up (n={min(n, WARMUP_N)} per scenario)")
        for kind, threads in scenarios:
            run_scenario(kind, min(n, WARMUP_N), threads)
        for rep in range(args.repeat):
            for key in scenarios:
                rate = run_scenario(key[0], n, key[1])
                results[key].append(rate)
                log(f"rep {rep + 1}/{args.repeat} {key[0]:>12} x{key[1]}: {rate:,.0f}/s")
    finally:
        pykka.ActorRegistry.stop_all()

    def ratio(kind: str, threads: int, calls: int) -> dict[str, Any]:
        rates, raw = results[(kind, threads)], results[("raw", threads)]
        paired = [calls * a / b for a, b in zip(rates, raw, strict=True)]
        return {
            "of_medians": round(calls * statistics.median(rates) / statistics.median(raw), 4),
            "paired": {
                "median": round(statistics.median(paired), 4),
                "min": round(min(paired), 4),
                "max": round(max(paired), 4),
            },
        }

    out: dict[str, Any] = {
        "bench": "inprocess",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "pykka": _pykka_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "n": n,
        "raw_asks": asks,
        "repeat": args.repeat,
        "quick": args.quick,
        "max_completed": MAX_COMPLETED,
        "lifecycles_per_s": {
            kind: {f"threads_{t}": summary(results[(kind, t)]) for t in THREAD_COUNTS}
            for kind in ("memory", "memory_store")
        },
        "raw_ask_round_trips_per_s": {
            f"threads_{t}": summary(results[("raw", t)]) for t in THREAD_COUNTS
        },
        "ratios": {
            kind: {
                f"threads_{t}": {
                    "lifecycle_over_raw": ratio(kind, t, 1),
                    "calls_over_raw": ratio(kind, t, CALLS_PER_LIFECYCLE),
                }
                for t in THREAD_COUNTS
            }
            for kind in ("memory", "memory_store")
        },
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0


def _pykka_version() -> str:
    try:
        return version("pykka")
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
