"""A registry written the way a Ray user would, measured the way bench/transport.py measures opsreg.

One async Ray actor (``Registry``) keeps a dict of operations and an
``asyncio.Event`` per operation, with the same lifecycle methods as opsreg:
``register_operation(spec_dict)``, ``provisioning_succeeded(id)``,
``complete_operation(id, result_dict)`` and ``register_watcher(id)``, which
returns the result once the operation completes (it awaits the event, so many
watcher calls can wait at once). Nothing is durable; it validates transitions
and raises on a bad one.

``lifecycles_per_s.per_call``
    4 Ray tasks (each in its own worker process, ``num_cpus=0.25`` so all four
    run at once on a 2-CPU Ray) each do N/4 lifecycles on their own
    operations (built before the clock), with ``ray.get`` on every call. They
    warm up, report to a signal actor, and wait for "go"; the clock runs from
    the driver sending "go" until the last task is done (CLOCK_MONOTONIC
    stamps, one clock for every process on Linux).
``lifecycles_per_s.pipelined``
    The same, but each task submits a window of W=200 lifecycles' calls
    (3 W ``.remote()`` calls; ``provisioning_succeeded`` and
    ``complete_operation`` take the previous call's ObjectRef as their id, so
    Ray orders each lifecycle by data dependency: an async actor does not
    promise to run one caller's calls in order), then ``ray.get``s the whole
    list before the next window.
``watcher_latency_us`` (microseconds, standalone: no other load)
    The driver (the prober) registers and starts an operation, starts a Ray
    task (another process) that calls ``register_watcher`` and ``ray.get``s it,
    polls the actor until that watcher is waiting, then calls
    ``complete_operation`` and ``ray.get``s it. ``from_complete_return`` =
    watcher's ObjectRef resolved in the task - ``complete_operation``'s
    ``ray.get`` returned in the driver (can be negative: the actor sets the
    event before it replies); ``from_complete_call`` = resolved - call made.

Ray runs with ``num_cpus=2``, no dashboard, no log forwarding. ``startup_s`` is
``ray.init`` plus actor creation. Rates are medians of R repetitions with min
and max; percentiles pool all probes.

Usage: python bench/peers/ray_registry.py [--quick] [--n N] [--repeat R] [--probes P]

Prints exactly one JSON line on stdout; progress goes to stderr. If Ray is not
installed it prints ``{"bench":"peer_ray","installed":false}`` and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

# The shared helpers live one directory up (bench/_common.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import log, split, summary

try:
    import ray
except ImportError:  # pragma: no cover - depends on the environment
    ray = None

WINDOW = 200
WORKERS = 4
MONO = time.CLOCK_MONOTONIC


def now_ns() -> int:
    return time.clock_gettime_ns(MONO)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def make_ops(count: int, owner: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    ops = []
    for _ in range(count):
        op_id = str(uuid.uuid4())
        spec = {
            "id": op_id,
            "kind": "background_tool_op",
            "owner_session_id": owner,
            "display_name": "bench",
            "source_label": "bench",
        }
        ops.append((spec, {"id": op_id, "content": "ok"}))
    return ops


class Registry:
    """The actor: a dict of operations, an asyncio.Event per operation."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.specs: dict[str, dict[str, Any]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.events: dict[str, asyncio.Event] = {}
        self.waiting: dict[str, int] = {}
        self.completed = 0

    async def register_operation(self, spec: dict[str, Any]) -> str:
        op_id = spec["id"]
        if op_id in self.state:
            raise ValueError(f"duplicate operation {op_id}")
        self.state[op_id] = "pending"
        self.specs[op_id] = spec
        self.events[op_id] = asyncio.Event()
        return op_id

    async def provisioning_succeeded(self, op_id: str) -> str:
        if self.state.get(op_id) != "pending":
            raise ValueError(f"{op_id} is {self.state.get(op_id)}, not pending")
        self.state[op_id] = "running"
        return op_id

    async def complete_operation(self, op_id: str, result: dict[str, Any]) -> str:
        if self.state.get(op_id) != "running":
            raise ValueError(f"{op_id} is {self.state.get(op_id)}, not running")
        self.state[op_id] = "completed"
        self.results[op_id] = result
        self.completed += 1
        self.events[op_id].set()
        return op_id

    async def register_watcher(self, op_id: str) -> dict[str, Any]:
        event = self.events[op_id]
        self.waiting[op_id] = self.waiting.get(op_id, 0) + 1
        await event.wait()
        return self.results[op_id]

    async def watchers(self, op_id: str) -> int:
        return self.waiting.get(op_id, 0)

    async def completed_count(self) -> int:
        return self.completed


class Signal:
    """Common start: tasks arrive, then wait until the driver says go."""

    def __init__(self) -> None:
        self.arrived = 0
        self.event = asyncio.Event()

    async def arrive(self) -> None:
        self.arrived += 1

    async def count(self) -> int:
        return self.arrived

    async def wait(self) -> None:
        await self.event.wait()

    async def go(self) -> None:
        self.event.set()


def lifecycles_per_call(reg: Any, ops: list[Any]) -> None:
    for spec, result in ops:
        op_id = ray.get(reg.register_operation.remote(spec))
        ray.get(reg.provisioning_succeeded.remote(op_id))
        ray.get(reg.complete_operation.remote(op_id, result))


def lifecycles_pipelined(reg: Any, ops: list[Any], window: int) -> None:
    for start in range(0, len(ops), window):
        refs = []
        for spec, result in ops[start : start + window]:
            r1 = reg.register_operation.remote(spec)
            r2 = reg.provisioning_succeeded.remote(r1)
            r3 = reg.complete_operation.remote(r2, result)
            refs += [r1, r2, r3]
        ray.get(refs)


def worker_task(reg: Any, signal: Any, mode: str, count: int, window: int, owner: str) -> int:
    """One of the 4 load tasks; returns its CLOCK_MONOTONIC end stamp."""
    lifecycles_per_call(reg, make_ops(5, owner + "-warm"))
    ops = make_ops(count, owner)
    ray.get(signal.arrive.remote())
    ray.get(signal.wait.remote())
    if mode == "per_call":
        lifecycles_per_call(reg, ops)
    else:
        lifecycles_pipelined(reg, ops, window)
    return now_ns()


def watcher_task(reg: Any, op_id: str) -> int:
    ray.get(reg.register_watcher.remote(op_id))
    return now_ns()


def run_load(actor_cls: Any, signal_cls: Any, task: Any, mode: str, n: int) -> tuple[float, int]:
    reg = actor_cls.remote()
    signal = signal_cls.remote()
    refs = [
        task.remote(reg, signal, mode, part, WINDOW, f"w{i}")
        for i, part in enumerate(split(n, WORKERS))
    ]
    deadline = time.monotonic() + 120
    while ray.get(signal.count.remote()) < WORKERS:
        if time.monotonic() > deadline:
            raise RuntimeError("load tasks did not all arrive")
        time.sleep(0.005)
    t0 = now_ns()
    signal.go.remote()
    ends = ray.get(refs)
    elapsed = (max(ends) - t0) / 1e9
    done = ray.get(reg.completed_count.remote())
    expected = n + 5 * WORKERS
    if done != expected:
        raise RuntimeError(f"registry completed {done}, expected {expected}")
    ray.kill(reg)
    ray.kill(signal)
    return n / elapsed, done


def probe_watchers(actor_cls: Any, wtask: Any, probes: int) -> tuple[list[float], list[float]]:
    reg = actor_cls.remote()
    from_return: list[float] = []
    from_call: list[float] = []
    for i, (spec, result) in enumerate(make_ops(probes + 3, "probe")):
        op_id = ray.get(reg.register_operation.remote(spec))
        ray.get(reg.provisioning_succeeded.remote(op_id))
        wref = wtask.remote(reg, op_id)
        deadline = time.monotonic() + 30
        while ray.get(reg.watchers.remote(op_id)) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("watcher never registered")
            time.sleep(0.0005)
        t_call = now_ns()
        ray.get(reg.complete_operation.remote(op_id, result))
        t_ret = now_ns()
        t_resolved = ray.get(wref)
        if i >= 3:  # the first few warm up the watcher worker
            from_return.append((t_resolved - t_ret) / 1e3)
            from_call.append((t_resolved - t_call) / 1e3)
        time.sleep(0.002)
    ray.kill(reg)
    return from_return, from_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run (< 60 s)")
    parser.add_argument("--n", type=int, default=None, metavar="N", help="lifecycles per run")
    parser.add_argument("--repeat", type=int, default=None, metavar="R")
    parser.add_argument("--probes", type=int, default=None, help="watcher probes")
    args = parser.parse_args(argv)
    if ray is None:
        print(
            json.dumps({"bench": "peer_ray", "installed": False}, separators=(",", ":")), flush=True
        )
        return 0
    n = args.n or (400 if args.quick else 2000)
    repeat = args.repeat or (1 if args.quick else 5)
    probes = args.probes or (30 if args.quick else 300)

    wall0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        actor_cls = ray.remote(num_cpus=0)(Registry)
        signal_cls = ray.remote(num_cpus=0)(Signal)
        task = ray.remote(num_cpus=0.25)(worker_task)
        wtask = ray.remote(num_cpus=0.25)(watcher_task)
        ray.get(actor_cls.remote().completed_count.remote())
        startup = time.perf_counter() - wall0
        log(f"ray {ray.__version__} up in {startup:.1f}s; N={n} R={repeat} P={probes}")
        rates: dict[str, list[float]] = {"per_call": [], "pipelined": []}
        for rep in range(repeat):
            for mode in ("per_call", "pipelined"):
                rate, _ = run_load(actor_cls, signal_cls, task, mode, n)
                rates[mode].append(rate)
                log(f"rep {rep + 1}/{repeat} {mode}: {rate:.0f} lifecycles/s")
        from_return, from_call = probe_watchers(actor_cls, wtask, probes)
        log(f"watcher p50 {pct(from_return, 0.5):.0f} us over {len(from_return)} probes")
    finally:
        ray.shutdown()
    out = {
        "bench": "peer_ray",
        "installed": True,
        "version": ray.__version__,
        "n": n,
        "repeat": repeat,
        "window": WINDOW,
        "workers": "4 Ray tasks (worker processes), num_cpus=0.25 each",
        "lifecycles_per_s": {k: summary(v) for k, v in rates.items()},
        "watcher_latency_us": {
            "p50": pct(from_return, 0.5),
            "p99": pct(from_return, 0.99),
            "from_complete_return": {
                "p50": pct(from_return, 0.5),
                "p99": pct(from_return, 0.99),
            },
            "from_complete_call": {"p50": pct(from_call, 0.5), "p99": pct(from_call, 0.99)},
            "probes": len(from_return),
        },
        "startup_s": round(startup, 1),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),  # 2 cores: other work skews rates
    }
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
