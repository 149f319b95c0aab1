"""Scaling: lifecycles/s as the number of active (retained, non-terminal) operations grows.

For each size K it opens a durable registry, registers and starts K operations that
stay running, then measures N full lifecycles (register → start → complete) on top of
them. Cost per operation must not grow with K: the journal append is O(1), and the
periodic compaction is O(retained) but amortised over ``compact_every`` records.

Prints one JSON line with lifecycles/s per K and the ratio of the largest K to the
smallest (target ≥ 0.8).

    python bench/scaling.py [--quick] [--sizes 1000,10000,100000] [--n N] [--repeat R]
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
import argparse
import json
import tempfile
import time

from _common import log, make_ops, ratio, summary

from actors import OpsRegistry


def measure(active: int, n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="opsreg-scaling-") as data:
        reg = OpsRegistry.open(data, synchronous="normal")
        try:
            for start in range(0, active, 1000):
                futures = []
                for spec, _ in make_ops(min(1000, active - start), "resident"):
                    futures.append(reg.call_async("register_operation", spec))
                    futures.append(reg.call_async("provisioning_succeeded", spec.id))
                for f in futures:
                    f.get(timeout=120)
            ops = make_ops(n, "measured")
            t0 = time.perf_counter()
            for spec, result in ops:
                reg.register_operation(spec)
                reg.provisioning_succeeded(spec.id)
                reg.complete_operation(spec.id, result)
            elapsed = time.perf_counter() - t0
            if reg.diagnostic_snapshot().active_count != active:
                raise RuntimeError("the resident operations did not stay active")
        finally:
            reg.stop()
    return n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="sizes 1k, 10k, 30k; small N")
    parser.add_argument("--sizes", default=None, help="comma-separated active-operation counts")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else ([1000, 10_000, 30_000] if args.quick else [1000, 10_000, 100_000])
    )
    n = args.n or (3000 if args.quick else 20_000)
    repeat = args.repeat or (1 if args.quick else 5)
    rates: dict[int, list[float]] = {k: [] for k in sizes}
    for rep in range(repeat):
        for k in sizes:
            rate = measure(k, n)
            rates[k].append(rate)
            log(f"rep {rep + 1}/{repeat} active={k:>7,}: {rate:,.0f} lifecycles/s")
    smallest, largest = sizes[0], sizes[-1]
    flat = ratio(rates[largest], rates[smallest])
    result = {
        "bench": "scaling",
        "n": n,
        "repeat": repeat,
        "synchronous": "normal",
        "lifecycles_per_s": {str(k): summary(v) for k, v in rates.items()},
        "largest_over_smallest": flat,
        "targets": {"flat_ge_0_8": flat["of_medians"] >= 0.8},
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
