"""Dask distributed futures as a peer: no-op tasks standing for lifecycles.

A ``distributed.LocalCluster`` (2 worker processes, 1 thread each, no
dashboard; the scheduler runs in this process) takes tasks from 4 client
processes (spawned, each with its own ``Client``, connected and warmed up
before the clock; the pool is reused across repetitions). Every task is
``time.clock_gettime_ns(CLOCK_MONOTONIC)`` submitted with ``pure=False``: a
builtin, so nothing needs pickling by value, and it returns its own end stamp.
One task stands for one lifecycle (opsreg's lifecycle is 3 requests).

``tasks_per_s.per_call``
    Each client process does N/4 ``submit(...).result()`` in turn. The clock
    runs from the main process sending "go" to every client until the last
    one is done.
``tasks_per_s.batched``
    The same, but each client submits a window of W=200 tasks, then
    ``distributed.wait``s for them before the next window.
``watcher_latency_us`` (microseconds, standalone: no other load)
    The main process's own client submits one task at a time and iterates
    ``as_completed`` over it; latency = CLOCK_MONOTONIC when ``as_completed``
    yields it - the stamp the task took as it finished on the worker (one
    clock for every process on Linux).

``startup_s`` is the cluster plus the 4 client processes. Rates are medians
of R repetitions with min and max; percentiles pool all probes.

Usage: python bench/peers/dask_futures.py [--quick] [--n N] [--repeat R] [--probes P]

Prints exactly one JSON line on stdout; progress goes to stderr. If dask
distributed is not installed it prints ``{"bench":"peer_dask","installed":false}``
and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import sys
import time

# The shared helpers live one directory up (bench/_common.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from multiprocessing.connection import Connection

from _common import log, split, summary

try:
    import distributed
except ImportError:  # pragma: no cover - depends on the environment
    distributed = None

WINDOW = 200
WORKERS = 4
MONO = time.CLOCK_MONOTONIC


def now_ns() -> int:
    return time.clock_gettime_ns(MONO)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def per_call(client: distributed.Client, count: int) -> None:
    for _ in range(count):
        client.submit(time.clock_gettime_ns, MONO, pure=False).result()


def batched(client: distributed.Client, count: int, window: int) -> None:
    for start in range(0, count, window):
        size = min(window, count - start)
        futures = [client.submit(time.clock_gettime_ns, MONO, pure=False) for _ in range(size)]
        distributed.wait(futures)
        for f in futures:
            if f.status != "finished":
                raise RuntimeError(f"task {f.key} is {f.status}")


def client_process(address: str, conn: Connection) -> None:
    """A client process: ("per_call"|"batched", count) -> "ready", wait "go", run, end stamp."""
    with distributed.Client(address) as client:  # the default: distributed.wait needs it
        per_call(client, 5)
        conn.send("connected")
        while True:
            cmd = conn.recv()
            if cmd is None:
                return
            mode, count = cmd
            per_call(client, 3)
            conn.send("ready")
            conn.recv()
            if mode == "per_call":
                per_call(client, count)
            else:
                batched(client, count, WINDOW)
            conn.send(now_ns())


def run_load(conns: list[Connection], mode: str, n: int) -> float:
    for conn, part in zip(conns, split(n, WORKERS), strict=True):
        conn.send((mode, part))
    for conn in conns:
        if conn.recv() != "ready":
            raise RuntimeError("client not ready")
    t0 = now_ns()
    for conn in conns:
        conn.send("go")
    ends = [conn.recv() for conn in conns]
    return n / ((max(ends) - t0) / 1e9)


def probe_watchers(client: distributed.Client, probes: int) -> list[float]:
    latencies: list[float] = []
    for i in range(probes + 3):
        future = client.submit(time.clock_gettime_ns, MONO, pure=False)
        for done in distributed.as_completed([future]):
            yielded = now_ns()
            if i >= 3:  # the first few warm up
                latencies.append((yielded - done.result()) / 1e3)
        time.sleep(0.002)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run (< 60 s)")
    parser.add_argument("--n", type=int, default=None, metavar="N", help="tasks per run")
    parser.add_argument("--repeat", type=int, default=None, metavar="R")
    parser.add_argument("--probes", type=int, default=None, help="watcher probes")
    args = parser.parse_args(argv)
    if distributed is None:
        print(
            json.dumps({"bench": "peer_dask", "installed": False}, separators=(",", ":")),
            flush=True,
        )
        return 0
    n = args.n or (400 if args.quick else 3000)
    repeat = args.repeat or (1 if args.quick else 5)
    probes = args.probes or (30 if args.quick else 300)

    wall0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        conns: list[Connection] = []
        procs = []
        for _ in range(WORKERS):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_process, args=(cluster.scheduler_address, child))
            proc.start()
            conns.append(parent)
            procs.append(proc)
        try:
            for conn in conns:
                if not conn.poll(120) or conn.recv() != "connected":
                    raise RuntimeError("client process did not connect")
            startup = time.perf_counter() - wall0
            log(f"dask {distributed.__version__} up in {startup:.1f}s; N={n} R={repeat}")
            rates: dict[str, list[float]] = {"per_call": [], "batched": []}
            for rep in range(repeat):
                for mode in ("per_call", "batched"):
                    rate = run_load(conns, mode, n)
                    rates[mode].append(rate)
                    log(f"rep {rep + 1}/{repeat} {mode}: {rate:.0f} tasks/s")
            latencies = probe_watchers(client, probes)
            log(f"watcher p50 {pct(latencies, 0.5):.0f} us over {len(latencies)} probes")
        finally:
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.send(None)
            for proc in procs:
                proc.join(30)
                if proc.is_alive():
                    proc.terminate()
    out = {
        "bench": "peer_dask",
        "installed": True,
        "version": distributed.__version__,
        "n": n,
        "repeat": repeat,
        "window": WINDOW,
        "workers": "4 spawned client processes, one Client each; cluster 2 procs x 1 thread",
        "unit": "one no-op task stands for one lifecycle",
        "tasks_per_s": {k: summary(v) for k, v in rates.items()},
        "watcher_latency_us": {
            "p50": pct(latencies, 0.5),
            "p99": pct(latencies, 0.99),
            "probes": len(latencies),
            "measures": "task end on worker -> as_completed yields in client",
        },
        "startup_s": round(startup, 1),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),  # 2 cores: other work skews rates
    }
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
