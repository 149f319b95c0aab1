"""Soak: N lifecycles through one ``opsreg serve`` process; memory must stay flat.

One ``opsreg serve`` subprocess (durable store, default settings, its own
temporary data directory) takes N full lifecycles (``register_operation`` ->
``provisioning_succeeded`` -> ``complete_operation``) from 2 client processes,
each sending windows of W lifecycles with ``client.submit`` and waiting for
the window's futures before sending the next (steady, closed-loop load; cap it
with ``--rate``). A third process iterates a ``FeedSubscriber`` over the whole
feed and checks that it sees seqs 1..N exactly once, in order.

Every ``--sample-every`` seconds the main process reads the server's RSS
(``VmRSS`` in ``/proc/PID/status``) together with progress. One client process
also runs a probe thread: about every 50 ms it registers and starts one
operation with per-call methods, then times a per-call ``complete_operation``;
the latencies are bucketed by sampling interval and reported as p99 per
interval. Probe lifecycles count towards N, so the feed ends at exactly seq N
and the registry's watermark must equal N.

``rss_mb.warm_up`` is the first sample taken once 10% of N is done, ``end`` is
taken when all N are done and the subscriber has seq N; ``growth`` is
``end / warm_up - 1``. The server retains only ``max_completed`` completed
operations and a bounded feed, so the target is < 0.10 (flat memory).

Usage::

    python bench/soak.py [--quick] [--n N] [--sample-every S] [--window W] [--rate R]
                         [--data-root DIR]

Prints exactly one JSON line on stdout; progress goes to stderr.
"""

# ruff: noqa: E402
# bench/ holds transport.py (the transport benchmark), which would shadow the
# ``transport`` package while this directory is on sys.path: import the shared
# helpers, then take bench/ off the path before importing the package.
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from _common import (
    cpu_seconds,
    die_with_parent,
    log,
    make_ops,
    now_ns,
    serve_cmd,
    spawn_server,
    split,
    status_kib,
    stop_server,
)

sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import contextlib
import json
import math
import multiprocessing
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final, cast

from transport.client import RegistryClient
from transport.errors import FeedGap
from transport.feed import FeedSubscriber
from transport.metrics import percentile

REGISTRY: Final = "soak"
CLIENTS: Final = 2
DEFAULT_N, QUICK_N = 1_000_000, 50_000
WINDOW: Final = 200
PROBE_EVERY_S: Final = 0.05
CALL_TIMEOUT: Final = 60.0
STALL_S: Final = 120.0  # no progress for this long: give up
MAX_POINTS: Final = 60
WARM_UP_FRACTION: Final = 0.10

# Progress slots, one writer each (a RawArray needs no lock then).
SLOT_CLIENT0, SLOT_CLIENT1, SLOT_PROBES, SLOT_FEED = range(4)


# --- child processes --------------------------------------------------------------------------


class Quota:
    """A client process's share of N, claimed by its load and probe threads."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.lock = threading.Lock()

    def claim(self, want: int) -> int:
        with self.lock:
            got = min(want, self.left)
            self.left -= got
            return got


def probe_loop(
    cli: RegistryClient,
    quota: Quota,
    progress: Any,
    stop: threading.Event,
    samples: list[tuple[int, int]],
) -> None:
    """Every ~50 ms: one lifecycle with per-call methods, the complete_operation timed."""
    count = 0
    while not stop.is_set() and quota.claim(1):
        spec, result = make_ops(1, "soak-probe")[0]
        cli.register_operation(spec)
        cli.provisioning_succeeded(spec.id)
        t0 = now_ns()
        cli.complete_operation(spec.id, result)
        t1 = now_ns()
        samples.append((t1, t1 - t0))
        count += 1
        progress[SLOT_PROBES] = count
        stop.wait(PROBE_EVERY_S)


def client_main(
    conn: Connection,
    index: int,
    endpoint: str,
    total: int,
    window: int,
    rate: float,
    probe: bool,
    progress: Any,
    go: Event,
    abort: Event,
) -> None:
    die_with_parent()
    slot = SLOT_CLIENT0 if index == 0 else SLOT_CLIENT1
    cli = RegistryClient(endpoint, registry=REGISTRY, timeout=CALL_TIMEOUT)
    stop = threading.Event()
    samples: list[tuple[int, int]] = []
    errors: list[str] = []
    prober: threading.Thread | None = None
    try:
        if not cli.wait_connected(30):
            raise RuntimeError(f"no answer from {endpoint}")
        conn.send(("ready",))
        while not go.wait(0.5):
            if abort.is_set():
                return
        quota = Quota(total)
        if probe:

            def run_probes() -> None:
                try:
                    probe_loop(cli, quota, progress, stop, samples)
                except BaseException:
                    errors.append(traceback.format_exc())

            prober = threading.Thread(target=run_probes, name="soak-probe", daemon=True)
            prober.start()
        t0 = time.monotonic()
        submit = cli.submit
        done = 0
        windows = 0
        while not abort.is_set():
            size = quota.claim(window)
            if size == 0:
                break
            if rate > 0:  # pace: this client's share of the rate
                due = t0 + windows * window / rate
                delay = due - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
            futures = []
            for spec, result in make_ops(size, f"soak-{index}"):
                futures.append(submit("register_operation", spec))
                futures.append(submit("provisioning_succeeded", spec.id))
                futures.append(submit("complete_operation", spec.id, result))
            for f in futures:
                f.get(timeout=CALL_TIMEOUT)
            done += size
            windows += 1
            progress[slot] = done
        t_end = now_ns()
        stop.set()
        if prober is not None:
            prober.join(CALL_TIMEOUT * 3)
        if errors:
            raise RuntimeError(f"probe thread failed:\n{errors[0]}")
        conn.send(("result", {"done": done, "t_end": t_end, "probes": samples}))
    except BaseException:
        conn.send(("error", f"client {index}:\n{traceback.format_exc()}"))
    finally:
        stop.set()
        cli.close()
        conn.close()


def subscriber_main(
    conn: Connection,
    feed_endpoint: str,
    endpoint: str,
    n: int,
    progress: Any,
    abort: Event,
) -> None:
    """Read the whole feed; seqs must be 1..n, each once, in order."""
    die_with_parent()
    expect = 1  # the next seq due
    received = gaps = duplicates = out_of_order = repairs = dropped = 0
    feed_gaps: list[str] = []
    stalled = False
    t_last = 0
    sub: FeedSubscriber | None = None
    try:
        sub = FeedSubscriber(
            endpoint, feed_endpoint, registry=REGISTRY, after_seq=0, timeout=CALL_TIMEOUT
        )
        while sub.next(timeout=0.3) is not None:  # the catch-up: nothing should be there yet
            duplicates += 1
        conn.send(("ready",))
        idle_since = time.monotonic()
        while expect <= n and not abort.is_set():
            try:
                entry = sub.next(timeout=1.0)
            except FeedGap as exc:
                # Unrepairable: count what was lost and resubscribe after it.
                feed_gaps.append(str(exc))
                lost = exc.dropped_through - exc.after_seq
                gaps += lost
                expect = exc.dropped_through + 1
                repairs += sub.repairs
                dropped += sub.duplicates
                sub.close()
                sub = FeedSubscriber(
                    endpoint,
                    feed_endpoint,
                    registry=REGISTRY,
                    after_seq=exc.dropped_through,
                    timeout=CALL_TIMEOUT,
                )
                continue
            if entry is None:
                if time.monotonic() - idle_since > STALL_S:
                    stalled = True
                    break
                continue
            idle_since = time.monotonic()
            seq = entry.seq
            if seq < expect:
                duplicates += 1
                continue
            if seq > expect:
                gaps += seq - expect
                out_of_order += 1
            received += 1
            expect = seq + 1
            if received & 0x3FF == 0 or expect > n:
                progress[SLOT_FEED] = expect - 1
        t_last = now_ns()
        progress[SLOT_FEED] = expect - 1
        # Anything after seq n would be a lifecycle nobody sent.
        extra = 0
        while expect > n and sub.next(timeout=0.2) is not None:
            extra += 1
        repairs += sub.repairs
        dropped += sub.duplicates
        conn.send(
            (
                "result",
                {
                    "received": received,
                    "cursor": expect - 1,
                    "gaps": gaps,
                    "duplicates": duplicates,
                    "out_of_order": out_of_order,
                    "beyond_n": extra,
                    "repairs": repairs,
                    "subscriber_dropped_duplicates": dropped,
                    "feed_gap_errors": feed_gaps,
                    "stalled": stalled,
                    "t_last": t_last,
                },
            )
        )
    except BaseException:
        conn.send(("error", f"subscriber:\n{traceback.format_exc()}"))
    finally:
        if sub is not None:
            sub.close()
        conn.close()


# --- the server ---------------------------------------------------------------------------------


class Server:
    """``opsreg serve`` in a child process; endpoints read from its ready file."""

    def __init__(self, data_dir: str, log_path: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.endpoint = self.feed_endpoint = ""

    def start(self) -> Server:
        cmd = serve_cmd(self.data_dir)
        self.proc, ready, line = spawn_server(cmd, self.log_path)
        if ready is None:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r} {self.log_tail()}")
        self.endpoint, self.feed_endpoint = ready["endpoint"], ready["feed_endpoint"]
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status_kb(self, field: str) -> int:
        """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM, ...)."""
        return status_kib(self.pid, field)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return Path(self.log_path).read_text()[-chars:]
        return ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        code, self.proc = stop_server(self.proc), None
        return code


# --- statistics -----------------------------------------------------------------------------------


def pick(points: list[Any], limit: int = MAX_POINTS) -> list[Any]:
    """At most ``limit`` evenly spaced items, always keeping the first and the last."""
    if len(points) <= limit:
        return list(points)
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def latency_series(
    probes: list[tuple[int, int]], t_go: int, interval_s: float, limit: int = MAX_POINTS
) -> list[dict[str, Any]]:
    """p99 of the probe latencies per sampling interval; adjacent intervals are merged
    (their samples pooled) until there are at most ``limit`` points."""
    if not probes:
        return []
    width = int(interval_s * 1e9)
    buckets = max(1, (max(t for t, _ in probes) - t_go) // width + 1)
    merge = max(1, math.ceil(buckets / limit))
    groups: dict[int, list[int]] = {}
    for t, lat in probes:
        groups.setdefault(max(0, t - t_go) // width // merge, []).append(lat)
    out = []
    for g in sorted(groups):
        lats = groups[g]
        p99 = percentile(lats, 0.99)
        assert p99 is not None
        out.append(
            {
                "t_s": round((g + 1) * merge * interval_s, 1),
                "probes": len(lats),
                "p99_ms": round(p99 / 1e6, 3),
            }
        )
    return out


# --- main ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, n: int, root: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    progress = ctx.RawArray("q", 4)
    go, abort = ctx.Event(), ctx.Event()
    data_dir = os.path.join(root, "data")
    server = Server(data_dir, os.path.join(root, "server.log")).start()
    log(
        f"server pid {server.pid} on {server.endpoint}, feed {server.feed_endpoint}, data {data_dir}"
    )
    procs: list[tuple[str, Any, Connection]] = []
    try:
        parent, child = ctx.Pipe(duplex=False)
        sub = ctx.Process(
            target=subscriber_main,
            args=(child, server.feed_endpoint, server.endpoint, n, progress, abort),
            name="soak-subscriber",
            daemon=True,
        )
        sub.start()
        child.close()
        procs.append(("subscriber", sub, parent))
        rate = args.rate / CLIENTS if args.rate else 0.0
        for i, share in enumerate(split(n, CLIENTS)):
            parent, child = ctx.Pipe(duplex=False)
            p = ctx.Process(
                target=client_main,
                args=(
                    child,
                    i,
                    server.endpoint,
                    share,
                    args.window,
                    rate,
                    i == 0,
                    progress,
                    go,
                    abort,
                ),
                name=f"soak-client-{i}",
                daemon=True,
            )
            p.start()
            child.close()
            procs.append((f"client-{i}", p, parent))

        results: dict[str, dict[str, Any]] = {}
        ready: set[str] = set()

        def receive(timeout: float) -> None:
            """Take whatever the children sent; raise on an error or a dead child."""
            conns: dict[Any, str] = {c: name for name, _, c in procs if name not in results}
            for c in wait(list(conns), timeout=max(0.0, timeout)):
                name = conns[c]
                try:
                    msg = cast(Connection, c).recv()
                except EOFError:
                    raise RuntimeError(f"{name} exited without a result") from None
                if msg[0] == "error":
                    raise RuntimeError(msg[1])
                if msg[0] == "result":
                    results[name] = msg[1]
                elif msg[0] == "ready":
                    ready.add(name)
            if not server.alive():
                raise RuntimeError(f"the server exited: {server.log_tail()}")

        deadline = time.monotonic() + 120
        while len(ready) < len(procs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"children not ready after 120 s: only {sorted(ready)}")
            receive(1.0)
        log(f"{len(procs)} processes connected; {n:,} lifecycles, window {args.window}")

        samples: list[dict[str, Any]] = []

        def sample(t_go: int) -> dict[str, Any]:
            done = progress[SLOT_CLIENT0] + progress[SLOT_CLIENT1] + progress[SLOT_PROBES]
            s = {
                "t_s": round((now_ns() - t_go) / 1e9, 2),
                "rss_mb": round(server.status_kb("VmRSS") / 1024, 1),
                "done": done,
                "feed": progress[SLOT_FEED],
            }
            samples.append(s)
            return s

        rss_start = server.status_kb("VmRSS") / 1024
        cpu0 = server.cpu_seconds()
        t_go = now_ns()
        go.set()
        next_sample = time.monotonic() + args.sample_every
        last_done, last_change = -1, time.monotonic()
        while len(results) < len(procs):
            receive(next_sample - time.monotonic())
            if time.monotonic() >= next_sample:
                next_sample += args.sample_every
                s = sample(t_go)
                rate_now = s["done"] / max(s["t_s"], 1e-9)
                log(
                    f"t={s['t_s']:7.1f}s done {s['done']:>9,} ({100 * s['done'] / n:5.1f}%) "
                    f"feed {s['feed']:>9,} rss {s['rss_mb']:7.1f} MB  {rate_now:,.0f}/s"
                )
                progress_mark = s["done"] + s["feed"]
                if progress_mark != last_done:
                    last_done, last_change = progress_mark, time.monotonic()
                elif time.monotonic() - last_change > STALL_S:
                    raise RuntimeError(f"no progress for {STALL_S:.0f} s: {s}")
        end = sample(t_go)
        cpu = server.cpu_seconds() - cpu0
        hwm_mb = server.status_kb("VmHWM") / 1024
        t_load_end = max(results[f"client-{i}"]["t_end"] for i in range(CLIENTS))
        seconds = (t_load_end - t_go) / 1e9
        with RegistryClient(server.endpoint, registry=REGISTRY, timeout=CALL_TIMEOUT) as cli:
            watermark = cli.watermark()
        disk = sum(f.stat().st_size for f in Path(data_dir).rglob("*") if f.is_file())
        code = server.stop()
    finally:
        abort.set()
        for _, p, c in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
            c.close()
        server.stop()

    warm = next((s for s in samples if s["done"] >= WARM_UP_FRACTION * n), end)
    growth = end["rss_mb"] / warm["rss_mb"] - 1
    feed = results["subscriber"]
    probes = results["client-0"]["probes"]
    lats = [lat for _, lat in probes]
    load_done = sum(results[f"client-{i}"]["done"] for i in range(CLIENTS))
    zero_gaps = feed["gaps"] == 0 and not feed["feed_gap_errors"] and feed["cursor"] == n

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v / 1e6, 3)

    return {
        "bench": "soak",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "n": n,
        "window_lifecycles": args.window,
        "clients": CLIENTS,
        "rate_cap": args.rate or None,
        "seconds": round(seconds, 2),
        "lifecycles_per_s": round(n / seconds, 1),
        "lifecycles": {"windows": load_done - len(probes), "probes": len(probes)},
        "watermark": watermark,
        "server_cpu": round(cpu / max(seconds, 1e-9), 2),
        "server_exit_code": code,
        "rss_mb": {
            "start": round(rss_start, 1),
            "warm_up": warm["rss_mb"],
            "warm_up_at_done": warm["done"],
            "end": end["rss_mb"],
            "peak_vmhwm": round(hwm_mb, 1),
        },
        "rss_growth": round(growth, 4),
        "rss_series": [
            {"t_s": s["t_s"], "done": s["done"], "rss_mb": s["rss_mb"]} for s in pick(samples)
        ],
        "sample_every_s": args.sample_every,
        "probe_latency_ms": {
            "count": len(lats),
            "p50": ms(percentile(lats, 0.5)),
            "p99": ms(percentile(lats, 0.99)),
            "max": ms(max(lats) if lats else None),
        },
        "probe_p99_ms_per_interval": latency_series(probes, t_go, args.sample_every),
        "feed": {
            "expected": n,
            "received": feed["received"],
            "cursor": feed["cursor"],
            "gaps": feed["gaps"],
            "duplicates": feed["duplicates"],
            "out_of_order": feed["out_of_order"],
            "beyond_n": feed["beyond_n"],
            "repairs": feed["repairs"],
            "subscriber_dropped_duplicates": feed["subscriber_dropped_duplicates"],
            "feed_gap_errors": feed["feed_gap_errors"],
            "stalled": feed["stalled"],
            # seq n at the subscriber minus the last client's last reply (can be < 0:
            # the server publishes before the completing call's reply is read)
            "last_entry_lag_ms": round((feed["t_last"] - t_load_end) / 1e6, 1),
        },
        "data_dir_mb_end": round(disk / 2**20, 2),
        "targets": {
            "rss_growth_lt_10pct": growth < 0.10,
            "zero_gaps": zero_gaps,
            "watermark_eq_n": watermark == n,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_N:,} lifecycles")
    parser.add_argument("--n", type=int, default=None, help=f"lifecycles (default {DEFAULT_N:,})")
    parser.add_argument(
        "--sample-every", type=float, default=2.0, metavar="S", help="seconds between samples"
    )
    parser.add_argument("--window", type=int, default=WINDOW, help="lifecycles per window")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="cap, lifecycles/s in total (0: none)"
    )
    parser.add_argument("--data-root", default=None, help="where the temporary store goes")
    args = parser.parse_args(argv)
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    if n < 10 * CLIENTS or args.window < 1 or args.sample_every <= 0:
        parser.error(f"--n must be >= {10 * CLIENTS}; --window >= 1; --sample-every > 0")

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    began = time.perf_counter()
    root = tempfile.mkdtemp(prefix="opsreg-soak-", dir=args.data_root)
    try:
        out = run(args, n, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["elapsed_s"] = round(time.perf_counter() - began, 1)
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
