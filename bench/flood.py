"""One client floods the server; another measures its own per-call latency meanwhile.

Shows that the per-client in-flight limit (``Busy``) and frame limit (``TooLarge``)
hold under a flood from one client while other clients keep their latency. Prints
one JSON line: the calm client's latency p50/p99 before and during the flood, and
how many of the flooder's requests were answered, refused ``Busy`` or ``TooLarge``.

    python bench/flood.py [--quick]
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from typing import Any

import pykka

from actors import OperationId
from transport import Busy, RegistryClient, RegistryServer, ServerConfig, TooLarge
from transport.metrics import percentile


def latencies(cli: RegistryClient, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        cli.watermark()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def pct(values: list[float], q: float) -> float:
    value = percentile(values, q)
    assert value is not None, "no samples"
    return round(value, 1)


def flood(endpoint: str, stop: Any, flooding: Any, counts: Any) -> None:
    """In its own process (as a misbehaving client would be): flood until told to stop."""
    flooder = RegistryClient(endpoint, timeout=30)
    big = "x" * (2 << 20)
    local = {"answered": 0, "busy": 0, "too_large": 0, "sent": 0}
    while not stop.is_set():
        futures = [flooder.submit("list_operations") for _ in range(2000)]
        futures.append(flooder.submit("fail_operation", OperationId.new(), big))
        local["sent"] += len(futures)
        flooding.set()
        for f in futures:
            try:
                f.get(timeout=60)
                local["answered"] += 1
            except Busy:
                local["busy"] += 1
            except TooLarge:
                local["too_large"] += 1
            except (pykka.Timeout, Exception):
                pass
    counts.update(local)
    flooder.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    opts = parser.parse_args()
    probes = 300 if opts.quick else 2000
    with (
        tempfile.TemporaryDirectory() as data,
        RegistryServer(
            ServerConfig(
                endpoint="tcp://127.0.0.1:0",
                feed_endpoint="tcp://127.0.0.1:0",
                data_dir=data,
                max_inflight=256,
            )
        ) as srv,
    ):
        calm = RegistryClient(srv.endpoint, timeout=30)
        before = latencies(calm, probes)
        ctx = multiprocessing.get_context("spawn")
        with ctx.Manager() as manager:
            stop = manager.Event()
            flooding = manager.Event()
            shared = manager.dict()
            proc = ctx.Process(target=flood, args=(srv.endpoint, stop, flooding, shared))
            proc.start()
            if not flooding.wait(60):
                raise RuntimeError("the flooding process never started")
            during = latencies(calm, probes)
            stop.set()
            proc.join(timeout=120)
            counts = dict(shared)
        calm.close()
    result = {
        "bench": "flood",
        "max_inflight": 256,
        "calm_latency_us": {
            "before": {"p50": pct(before, 0.5), "p99": pct(before, 0.99)},
            "during_flood": {"p50": pct(during, 0.5), "p99": pct(during, 0.99)},
        },
        "p50_ratio_during_over_before": round(
            statistics.median(during) / statistics.median(before), 2
        ),
        "flooder": counts,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
