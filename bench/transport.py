"""Throughput and latency of opsreg over ZeroMQ, against a minimal ROUTER + pykka ceiling.

What each figure is, how it is measured, the ratios and the targets:
docs/performance.md, "How the transport figures are measured". The pieces:
``raw_ceiling.py`` (the ceiling server and its clients), ``wire_tasks.py`` (what each
worker process runs), ``wire_pool.py`` (the worker pool, server subprocesses, py-spy)
and ``wire_report.py`` (statistics and the JSON line); this file runs the scenarios.

Usage::

    python bench/transport.py [--quick] [--repeat R] [--n N] [--pipelined-n N]
                              [--burst B] [--probes P] [--data-root DIR] [--diagnose]

Prints exactly one JSON line on stdout; progress goes to stderr.
"""

# ruff: noqa: E402
# This file is bench/transport.py: when run as a script its own directory comes first on
# sys.path and would shadow the ``transport`` package. So: import the package with bench/
# off the path, then the bench modules with it on (they find the package already
# imported), then take bench/ off again. Spawned workers re-run this file too, which is
# how they find ``wire_tasks.worker_main``.
from __future__ import annotations

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _bench_off_path() -> None:
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


_bench_off_path()
importlib.import_module("transport")  # the package, before bench/ goes on sys.path
sys.path.insert(0, _HERE)
from _common import log, split
from raw_ceiling import raw_server_main
from wire_pool import (
    POOL_SIZE,
    PROBER,
    WATCHER,
    WORKERS,
    Pool,
    ServerProcess,
    Spy,
    loaded_run,
    opsreg_server,
    raw_server,
)
from wire_report import emit, latencies, machine_cpu, result
from wire_tasks import WARM_LIFECYCLES, WARM_PROBES

_bench_off_path()

import argparse
import shlex
import shutil
import signal
import tempfile
import time
from typing import Any

DEFAULT_N, QUICK_N = 16_000, 4_000
DEFAULT_PIPELINED_N, QUICK_PIPELINED_N = 48_000, 16_000
DEFAULT_BURST, QUICK_BURST = 20_000, 8_000
DEFAULT_STANDALONE_PROBES, QUICK_STANDALONE_PROBES = 1_000, 300
DEFAULT_REPEAT, QUICK_REPEAT = 5, 1


# --- scenarios ---------------------------------------------------------------------------------------


class Bench:
    """The scenarios: each method starts a fresh server, drives the worker pool and returns
    one repetition's figures."""

    def __init__(
        self,
        pool: Pool,
        root: str,
        server_args: list[str],
        spy_dir: str | None,
        switch_interval: float | None,
    ) -> None:
        self.pool = pool
        self.switch_interval = switch_interval
        self.root = root
        self.server_args = server_args
        self.spy_dir = spy_dir
        self.runs = 0

    def _server(self) -> ServerProcess:
        return opsreg_server(self._data_dir(), self.root, self.server_args, self.switch_interval)

    def _data_dir(self) -> str:
        self.runs += 1
        return os.path.join(self.root, f"data-{self.runs}")

    def _check_watermark(self, server: ServerProcess, expected: int) -> None:
        _, res = self.pool.run(
            {PROBER: ("watermark", {"endpoint": server.endpoint})}, main=[PROBER]
        )
        mark = res[PROBER]["watermark"]
        if mark != expected:
            raise RuntimeError(f"expected watermark {expected}, the registry says {mark}")

    def _load(
        self, task: str, endpoint: str, n: int, probe: bool, raw: bool
    ) -> tuple[int, dict[int, dict[str, Any]]]:
        tasks: dict[int, tuple[str, dict[str, Any]]] = {
            i: (task, {"endpoint": endpoint, "n": k, "owner": f"bench-{i}"})
            for i, k in enumerate(split(n, WORKERS))
        }
        if probe:
            tasks[WATCHER] = ("watcher", {"endpoint": endpoint, "raw": raw})
            tasks[PROBER] = ("prober", {"endpoint": endpoint, "raw": raw, "count": None})
        return self.pool.run(tasks, main=list(range(WORKERS)), stop=(PROBER,) if probe else ())

    def _probes(self, endpoint: str, raw: bool, count: int) -> dict[str, list[int]]:
        tasks = {
            WATCHER: ("watcher", {"endpoint": endpoint, "raw": raw}),
            PROBER: ("prober", {"endpoint": endpoint, "raw": raw, "count": count}),
        }
        _, res = self.pool.run(tasks, main=[PROBER])
        return latencies(res[PROBER], res[WATCHER])

    def per_call(self, n: int, standalone: int) -> dict[str, Any]:
        server = self._server()
        try:
            spy = Spy(self.spy_dir, server, f"per_call-{self.runs}")
            cpu0 = server.cpu_seconds()
            t_go, res = self._load("per_call", server.endpoint, n, probe=True, raw=False)
            elapsed = (max(res[i]["t_end"] for i in range(WORKERS)) - t_go) / 1e9
            cpu = server.cpu_seconds() - cpu0
            spy.stop()
            loaded = latencies(res[PROBER], res[WATCHER])
            alone = self._probes(server.endpoint, False, standalone)
            probes = (
                len(loaded["return"]) + len(alone["return"]) + 2 * WARM_PROBES
            )  # each probe is one lifecycle
            self._check_watermark(server, n + WORKERS * WARM_LIFECYCLES + probes)
        finally:
            server.stop()
        return loaded_run(n, elapsed, cpu, res, loaded, alone)

    def memory_probes(self, count: int) -> dict[str, list[int]]:
        """Standalone watcher probes against ``opsreg serve --memory`` (no journal, no disk)."""
        server = opsreg_server(self._data_dir(), self.root, ["--memory"])
        try:
            return self._probes(server.endpoint, False, count)
        finally:
            server.stop()

    def pipelined(self, n: int) -> dict[str, Any]:
        return self.plain("pipelined", n, "opsreg")

    def plain(self, task: str, n: int, kind: str) -> dict[str, Any]:
        """One load from the 4 workers, no probes; ``kind`` is "opsreg", "memory" or "raw"."""
        if kind == "raw":
            server = raw_server(self.root)
        elif kind == "memory":
            server = opsreg_server(self._data_dir(), self.root, ["--memory"], self.switch_interval)
        else:
            server = self._server()
        try:
            spy = Spy(self.spy_dir if kind != "raw" else None, server, f"{task}-{self.runs}")
            cpu0 = server.cpu_seconds()
            t_go, res = self._load(task, server.endpoint, n, probe=False, raw=kind == "raw")
            elapsed = (max(r["t_end"] for r in res.values()) - t_go) / 1e9
            cpu = server.cpu_seconds() - cpu0
            spy.stop()
            if kind != "raw":
                self._check_watermark(server, n + WORKERS * WARM_LIFECYCLES)
        finally:
            server.stop()
        return {
            "rate": n / elapsed,
            "server_cpu": cpu / elapsed,
            "client_cpu": sum(res[i]["cpu"] for i in range(WORKERS)) / elapsed,
        }

    def raw(self, n: int, standalone: int) -> dict[str, Any]:
        server = raw_server(self.root)
        try:
            cpu0 = server.cpu_seconds()
            t_go, res = self._load("raw_per_call", server.endpoint, n, probe=True, raw=True)
            elapsed = (max(res[i]["t_end"] for i in range(WORKERS)) - t_go) / 1e9
            cpu = server.cpu_seconds() - cpu0
            loaded = latencies(res[PROBER], res[WATCHER])
            alone = self._probes(server.endpoint, True, standalone)
        finally:
            server.stop()
        return loaded_run(n, elapsed, cpu, res, loaded, alone)

    def feed(self, burst: int) -> dict[str, Any]:
        server = self._server()
        try:
            sub_args = {
                "feed_endpoint": server.feed_endpoint,
                "endpoint": server.endpoint,
                "burst": burst,
                "after": 0,
            }
            tasks: dict[int, tuple[str, dict[str, Any]]] = {
                i: ("subscriber", sub_args) for i in range(WORKERS)
            }
            tasks[PROBER] = ("producer", {"endpoint": server.endpoint, "burst": burst})
            spy = Spy(self.spy_dir, server, f"feed-{self.runs}")
            cpu0 = server.cpu_seconds()
            t_go, res = self.pool.run(tasks, main=[PROBER])
            subs = [res[i] for i in range(WORKERS)]
            t_done = max(s["t_last"] for s in subs)
            cpu = server.cpu_seconds() - cpu0
            spy.stop()
            self._check_watermark(server, burst)
        finally:
            server.stop()
        elapsed = (t_done - t_go) / 1e9
        produced = (res[PROBER]["t_end"] - t_go) / 1e9
        unrepaired = sum(
            (burst - s["received"]) + s["out_of_order"] + (s["feed_gap"] is not None) for s in subs
        )
        return {
            "aggregate": sum(s["received"] for s in subs) / elapsed,
            "per_subscriber": [
                round(s["received"] / ((s["t_last"] - t_go) / 1e9), 1) for s in subs
            ],
            "producer_lifecycles_per_s": burst / produced,
            "last_entry_lag_ms": (t_done - res[PROBER]["t_end"]) / 1e6,
            "repairs": sum(s["repairs"] for s in subs),
            "duplicates": sum(s["duplicates"] for s in subs),
            "unrepaired_gaps": unrepaired,
            "feed_gaps": [s["feed_gap"] for s in subs if s["feed_gap"]],
            "server_cpu": cpu / elapsed,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run (< 60 s)")
    parser.add_argument("--repeat", type=int, default=None, metavar="R")
    parser.add_argument("--n", type=int, default=None, metavar="N", help="per-call lifecycles")
    parser.add_argument("--pipelined-n", type=int, default=None, metavar="N")
    parser.add_argument("--burst", type=int, default=None, metavar="B", help="feed burst size")
    parser.add_argument("--probes", type=int, default=None, help="standalone watcher probes")
    parser.add_argument("--data-root", default=None, help="where the temporary stores go")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for opsreg serve (repeatable), e.g. --server-arg=--synchronous=normal",
    )
    parser.add_argument(
        "--py-spy", default=None, metavar="DIR", help="py-spy the opsreg server into DIR"
    )
    parser.add_argument(
        "--py-spy-flags",
        default="--nonblocking",
        metavar="FLAGS",
        help='extra py-spy record flags (default "--nonblocking"; "--gil" shows CPU holders)',
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="S",
        help="experiment: sys.setswitchinterval(S) in the opsreg server (default: Python's)",
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also measure: opsreg per-call with a minimal DEALER client (no RegistryClient), "
        "opsreg per-call with --memory, and the raw ceiling pipelined",
    )
    parser.add_argument("--raw-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_server:
        return raw_server_main()
    q = args.quick
    n = args.n or (QUICK_N if q else DEFAULT_N)
    pn = args.pipelined_n or (QUICK_PIPELINED_N if q else DEFAULT_PIPELINED_N)
    burst = args.burst or (QUICK_BURST if q else DEFAULT_BURST)
    probes = args.probes or (QUICK_STANDALONE_PROBES if q else DEFAULT_STANDALONE_PROBES)
    repeat = args.repeat or (QUICK_REPEAT if q else DEFAULT_REPEAT)
    if min(n, pn) < WORKERS or burst < 1 or repeat < 1:
        parser.error(f"--n and --pipelined-n must be >= {WORKERS}; --burst, --repeat >= 1")

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    began = time.perf_counter()
    load_start = os.getloadavg()
    cpu_start = machine_cpu()
    root = tempfile.mkdtemp(prefix="opsreg-bench-transport-", dir=args.data_root)
    pool: Pool | None = None
    completed = False
    per_call: list[dict[str, Any]] = []
    pipe: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    feed: list[dict[str, Any]] = []
    memory: list[dict[str, list[int]]] = []
    diag: dict[str, list[dict[str, Any]]] = {
        "per_call_minimal_client": [],
        "per_call_memory_store": [],
        "raw_ceiling_pipelined": [],
    }
    try:
        log(f"starting {POOL_SIZE} worker processes; stores under {root}")
        pool = Pool(POOL_SIZE)
        if args.py_spy:
            os.makedirs(args.py_spy, exist_ok=True)
            Spy.flags = shlex.split(args.py_spy_flags)
        bench = Bench(pool, root, args.server_arg, args.py_spy, args.switch_interval)
        for rep in range(repeat):
            tag = f"rep {rep + 1}/{repeat}"
            raw.append(bench.raw(n, probes))
            log(f"{tag} raw ceiling per-call: {raw[-1]['rate']:,.0f} lifecycles/s")
            per_call.append(bench.per_call(n, probes))
            log(f"{tag} opsreg per-call:      {per_call[-1]['rate']:,.0f} lifecycles/s")
            pipe.append(bench.pipelined(pn))
            log(f"{tag} opsreg pipelined:     {pipe[-1]['rate']:,.0f} lifecycles/s")
            feed.append(bench.feed(burst))
            log(f"{tag} feed:                 {feed[-1]['aggregate']:,.0f} entries/s")
            memory.append(bench.memory_probes(probes))
            if args.diagnose:
                for key, task, size, kind in (
                    ("per_call_minimal_client", "mini_per_call", n, "opsreg"),
                    ("per_call_memory_store", "per_call", n, "memory"),
                    ("raw_ceiling_pipelined", "raw_pipelined", pn, "raw"),
                ):
                    diag[key].append(bench.plain(task, size, kind))
                    log(f"{tag} {key}: {diag[key][-1]['rate']:,.0f} lifecycles/s")
        completed = True
    finally:
        if pool is not None:
            pool.close(grace=10.0 if completed else 0.5)
        shutil.rmtree(root, ignore_errors=True)

    emit(
        result(
            per_call=per_call,
            pipe=pipe,
            raw=raw,
            feed=feed,
            memory=memory,
            diag=diag if args.diagnose else None,
            server_args=args.server_arg,
            switch_interval=args.switch_interval,
            quick=q,
            repeat=repeat,
            n=n,
            pn=pn,
            burst=burst,
            root=root,
            load_start=load_start,
            cpu_start=cpu_start,
            began=began,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
