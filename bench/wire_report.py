"""Statistics and output for ``bench/transport.py``: watcher latencies from probe stamps,
percentiles in microseconds, how busy the machine was, where the stores lived, the
versions, and the one JSON line (its keys are described in docs/performance.md, "How
the transport figures are measured").
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import zmq
from _common import summary
from raw_ceiling import frame_sizes
from wire_pool import WORKERS
from wire_tasks import WINDOW

from transport.metrics import percentile


def latencies(prober: dict[str, Any], watcher: dict[str, Any]) -> dict[str, list[int]]:
    resolved = watcher["resolved"][prober["warm"] :]
    called, returned = prober["called"], prober["returned"]
    if len(resolved) != len(called):
        raise RuntimeError(f"{len(called)} probes but {len(resolved)} watcher stamps")
    return {
        "return": [r - t for r, t in zip(resolved, returned, strict=True)],
        "call": [r - t for r, t in zip(resolved, called, strict=True)],
    }


# --- statistics and output ------------------------------------------------------------------------


def pcts_us(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    if not ordered:
        return {"n": 0}
    out: dict[str, float] = {"n": len(ordered)}
    for name, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999)):
        value = percentile(ordered, q)
        assert value is not None
        out[name] = round(value / 1000, 1)
    out["max"] = round(ordered[-1] / 1000, 1)
    return out


def mount_of(path: str) -> dict[str, str]:
    """The file system holding ``path`` (from /proc/mounts), e.g. to tell tmpfs from a disk."""
    best = ("", "?", "?")
    real = os.path.realpath(path)
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, fstype, dev)
    return {"mount": best[0], "fstype": best[1], "device": best[2]}


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / tick, fields[7] / tick


def machine_load(
    load_start: tuple[float, float, float], cpu_start: tuple[float, float], wall: float
) -> dict[str, Any]:
    """How busy the machine was during the run, and how much of that was not this benchmark.

    ``ours`` is this process and every child it reaped (servers, workers, py-spy);
    ``others`` is the rest: other work sharing the machine, which skews every figure.
    """
    busy, steal = machine_cpu()
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    used = busy - cpu_start[0]
    return {
        "loadavg_1m_at_start": round(load_start[0], 2),
        "busy_cores": round(used / wall, 2),
        "ours_cores": round(ours / wall, 2),
        "others_cores": round(max(0.0, used - ours) / wall, 2),
        "steal_cores": round((steal - cpu_start[1]) / wall, 3),
    }


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def result(
    *,
    per_call: list[dict[str, Any]],
    pipe: list[dict[str, Any]],
    raw: list[dict[str, Any]],
    feed: list[dict[str, Any]],
    memory: list[dict[str, list[int]]],
    diag: dict[str, list[dict[str, Any]]] | None,
    server_args: list[str],
    switch_interval: float | None,
    quick: bool,
    repeat: int,
    n: int,
    pn: int,
    burst: int,
    root: str,
    load_start: tuple[float, float, float],
    cpu_start: tuple[float, float],
    began: float,
) -> dict[str, Any]:
    """The JSON result of one run from every repetition's measurements (``diag`` is None
    without ``--diagnose``); ``began`` is the run's ``time.perf_counter()`` start."""

    def pooled(runs: list[dict[str, Any]], when: str, kind: str) -> list[int]:
        return [x for r in runs for x in r[when][kind]]

    lat = {
        name: {
            when: {
                "from_complete_return": pcts_us(pooled(runs, when, "return")),
                "from_complete_call": pcts_us(pooled(runs, when, "call")),
            }
            for when in ("under_load", "standalone")
        }
        for name, runs in (("opsreg", per_call), ("raw_held_reply", raw))
    }
    lat["opsreg"]["standalone_memory_store"] = {
        "from_complete_return": pcts_us([x for m in memory for x in m["return"]]),
        "from_complete_call": pcts_us([x for m in memory for x in m["call"]]),
    }
    rate = {k: [r["rate"] for r in v] for k, v in (("pc", per_call), ("pl", pipe), ("raw", raw))}
    paired = [a / b for a, b in zip(rate["pc"], rate["raw"], strict=True)]
    per_call_ratio = statistics.median(rate["pc"]) / statistics.median(rate["raw"])

    def lat_ratio(kind: str) -> float | None:
        """opsreg p50 / raw p50 under load; None unless both are positive (a ratio of
        negative latencies would read backwards)."""
        a = lat["opsreg"]["under_load"][kind].get("p50")
        b = lat["raw_held_reply"]["under_load"][kind].get("p50")
        return None if a is None or b is None or a <= 0 or b <= 0 else round(a / b, 3)

    watcher_ratio = lat_ratio("from_complete_return")
    p50 = lat["opsreg"]["under_load"]["from_complete_return"].get("p50")
    raw_p50 = lat["raw_held_reply"]["under_load"]["from_complete_return"].get("p50")
    unrepaired = sum(f["unrepaired_gaps"] for f in feed)
    out: dict[str, Any] = {
        "bench": "transport",
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "pykka": _version("pykka"),
        "msgspec": _version("msgspec"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "store": {"server_args": server_args, **mount_of(root)},
        "server_switch_interval": switch_interval,
        "quick": quick,
        "repeat": repeat,
        "workers": WORKERS,
        "n_per_call": n,
        "n_pipelined": pn,
        "window_lifecycles": WINDOW,
        "feed_burst": burst,
        "frame_bytes": frame_sizes(),
        "lifecycles_per_s": {
            "per_call": summary(rate["pc"]),
            "pipelined": summary(rate["pl"]),
            "raw_ceiling_per_call": summary(rate["raw"]),
        },
        "server_cpu": {
            "per_call": summary([r["server_cpu"] for r in per_call], 2),
            "pipelined": summary([r["server_cpu"] for r in pipe], 2),
            "raw_ceiling_per_call": summary([r["server_cpu"] for r in raw], 2),
            "feed": summary([r["server_cpu"] for r in feed], 2),
        },
        "client_cpu_4_workers": {
            "per_call": summary([r["client_cpu"] for r in per_call], 2),
            "pipelined": summary([r["client_cpu"] for r in pipe], 2),
            "raw_ceiling_per_call": summary([r["client_cpu"] for r in raw], 2),
        },
        "watcher_latency_us": {
            "measured_during": "per_call_load (4 per-call workers) and standalone",
            "probes_per_rep_under_load": {
                "opsreg": [r["probes_during"] for r in per_call],
                "raw": [r["probes_during"] for r in raw],
            },
            **lat,
        },
        "feed": {
            "subscribers": WORKERS,
            "entries_per_s_aggregate": summary([f["aggregate"] for f in feed]),
            "entries_per_s_per_subscriber": [f["per_subscriber"] for f in feed],
            "producer_lifecycles_per_s": summary([f["producer_lifecycles_per_s"] for f in feed]),
            "last_entry_lag_ms": summary([f["last_entry_lag_ms"] for f in feed], 2),
            "repairs": sum(f["repairs"] for f in feed),
            "duplicates": sum(f["duplicates"] for f in feed),
            "unrepaired_gaps": unrepaired,
            "feed_gap_errors": [g for f in feed for g in f["feed_gaps"]],
        },
        "ratios": {
            "per_call_over_raw": {
                "of_medians": round(per_call_ratio, 3),
                "paired": summary(paired, 3),
            },
            "watcher_p50_over_raw": {
                "from_complete_return": watcher_ratio,
                "from_complete_return_p50_minus_raw_us": None
                if p50 is None or raw_p50 is None
                else round(p50 - raw_p50, 1),
                "from_complete_call": lat_ratio("from_complete_call"),
            },
        },
        "targets": {
            "per_call_ge_0_7_raw": per_call_ratio >= 0.7,
            "pipelined_ge_10k": statistics.median(rate["pl"]) >= 10_000,
            "watcher_p50_le_2x_raw": p50 is not None
            and raw_p50 is not None
            and p50 - raw_p50 <= abs(raw_p50),
            "zero_unrepaired_feed_gaps": unrepaired == 0,
        },
        "machine": machine_load(load_start, cpu_start, time.perf_counter() - began),
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    if diag is not None:
        out["diagnostics"] = {
            key: {
                "lifecycles_per_s": summary([r["rate"] for r in runs]),
                "server_cpu": summary([r["server_cpu"] for r in runs], 2),
                "client_cpu_4_workers": summary([r["client_cpu"] for r in runs], 2),
            }
            for key, runs in diag.items()
        }
    return out


def emit(out: dict[str, Any]) -> None:
    """The one JSON line on stdout."""
    print(json.dumps(out, separators=(",", ":")), flush=True)
