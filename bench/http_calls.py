"""Per-call lifecycles/s over HTTP (an ``opsreg web`` gateway) ÷ over ZeroMQ, same server.

4 client processes drive per-call lifecycles (register_operation, provisioning_succeeded,
complete_operation; each call waits for its answer before the next) against one
``opsreg serve`` process: over ZeroMQ with a ``RegistryClient`` each, over HTTP with one
keep-alive ``http.client`` connection each to an ``opsreg web`` gateway **process** (as
deployed: the gateway is a client of the server). The two alternate, ZeroMQ then HTTP,
``--rounds`` times each, each round ``--seconds`` long, so drift favours neither; the
ratio is of the medians (and per round). Then one client alone measures the latency of one
call each way (p50/p99). What the figures mean: docs/performance.md, "HTTP".

Usage::

    python bench/http_calls.py [--quick] [--rounds R] [--seconds S] [--latency-n N]
                         [--data-root DIR] [--py-spy DIR] [--py-spy-flags FLAGS]

Prints exactly one JSON line on stdout; progress goes to stderr.
"""

# ruff: noqa: E402
# When run as a script its own directory comes first on sys.path, where bench/transport.py
# would shadow the ``transport`` package. So both are imported with bench/ off the path, then the
# bench modules with it on, then bench/ goes off again. Spawned workers re-run this file
# (as ``__mp_main__``), which is how they find ``worker_main``.
from __future__ import annotations

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _bench_off_path() -> None:
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


_bench_off_path()
import http.client

importlib.import_module("transport")  # the package, before bench/ goes on sys.path
sys.path.insert(0, _HERE)
from _common import (
    cpu_seconds,
    die_with_parent,
    log,
    make_ops,
    now_ns,
    ratio,
    serve_cmd,
    spawn_server,
    stop_server,
    summary,
)
from wire_report import emit, machine_cpu, machine_load, mount_of, pcts_us

_bench_off_path()

import argparse
import contextlib
import multiprocessing
import platform
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
from array import array
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.connection import Connection
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from actors import OperationId, OperationResult, OperationSpec
from transport.client import RegistryClient
from transport.web.jsonio import encode_json

WORKERS: Final = 4
REGISTRY: Final = "default"
CALL_TIMEOUT: Final = 30.0
STEP_TIMEOUT: Final = 300.0
WARM_LIFECYCLES: Final = 20
CHUNK: Final = 25  # operations made at a time
HEADERS: Final = {"Content-Type": "application/json"}
HTTP_CLIENT: Final = "http.client (stdlib), one keep-alive connection per process"


# --- the worker side ------------------------------------------------------------------------------


class Lifecycles(Protocol):
    """The three calls of a lifecycle, each answered before the next."""

    def register_operation(self, spec: OperationSpec) -> None: ...

    def provisioning_succeeded(self, op_id: OperationId) -> None: ...

    def complete_operation(self, op_id: OperationId, result: OperationResult) -> None: ...

    def close(self) -> None: ...


class ZmqDriver:
    """A ``RegistryClient`` of its own."""

    def __init__(self, endpoint: str) -> None:
        self.cli = RegistryClient(endpoint, registry=REGISTRY, timeout=CALL_TIMEOUT)
        if not self.cli.wait_connected(30):
            self.cli.close()
            raise RuntimeError(f"no answer from {endpoint}")
        self.register_operation = self.cli.register_operation
        self.provisioning_succeeded = self.cli.provisioning_succeeded
        self.complete_operation = self.cli.complete_operation

    def close(self) -> None:
        self.cli.close()


class HttpDriver:
    """One keep-alive HTTP/1.1 connection to the gateway; JSON bodies by argument name."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=CALL_TIMEOUT
        )
        self.base = f"/v1/registries/{REGISTRY}/"

    def _post(self, method: str, body: dict[str, Any]) -> bytes:
        self.conn.request("POST", self.base + method, encode_json(body), HEADERS)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method}: HTTP {resp.status} {data[:300]!r}")
        return data

    def register_operation(self, spec: OperationSpec) -> None:
        self._post("register_operation", {"spec": spec})

    def provisioning_succeeded(self, op_id: OperationId) -> None:
        self._post("provisioning_succeeded", {"op_id": op_id})

    def complete_operation(self, op_id: OperationId, result: OperationResult) -> None:
        self._post("complete_operation", {"op_id": op_id, "result": result})

    def close(self) -> None:
        self.conn.close()


def _timed_lifecycles(driver: Lifecycles, owner: str, seconds: float, stamps: array[int]) -> int:
    """Lifecycles until ``seconds`` pass; each call's duration (ns) appended to ``stamps``."""
    register = driver.register_operation
    start = driver.provisioning_succeeded
    complete = driver.complete_operation
    end = now_ns() + int(seconds * 1e9)
    done = 0
    while True:
        for spec, result in make_ops(CHUNK, owner):
            t0 = now_ns()
            if t0 >= end:
                return done
            register(spec)
            t1 = now_ns()
            start(spec.id)
            t2 = now_ns()
            complete(spec.id, result)
            t3 = now_ns()
            stamps.extend((t1 - t0, t2 - t1, t3 - t2))
            done += 1


def _counted_lifecycles(driver: Lifecycles, owner: str, n: int, stamps: array[int]) -> None:
    for spec, result in make_ops(n, owner):
        t0 = now_ns()
        driver.register_operation(spec)
        t1 = now_ns()
        driver.provisioning_succeeded(spec.id)
        t2 = now_ns()
        driver.complete_operation(spec.id, result)
        t3 = now_ns()
        stamps.extend((t1 - t0, t2 - t1, t3 - t2))


def worker_main(conn: Connection, index: int, endpoint: str, url: str) -> None:
    """Run what the main process sends: ("round", way, seconds) or ("latency", way, n)."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    zmq_driver: ZmqDriver | None = None
    owner = f"bench-http-{index}"
    try:
        zmq_driver = ZmqDriver(endpoint)
        conn.send(("up",))
        while True:
            msg = conn.recv()
            if msg[0] == "quit":
                return
            _, way, size = msg
            # A new HTTP connection per task: the gateway closes idle keep-alives (5 s).
            driver: Lifecycles = zmq_driver if way == "zmq" else HttpDriver(url)
            try:
                _counted_lifecycles(driver, owner, WARM_LIFECYCLES, array("q"))
                conn.send(("ready",))
                if conn.recv()[0] != "go":
                    raise RuntimeError("expected go")
                stamps: array[int] = array("q")
                cpu0 = time.process_time()
                t0 = now_ns()
                if msg[0] == "round":
                    count = _timed_lifecycles(driver, owner, size, stamps)
                else:
                    _counted_lifecycles(driver, owner, size, stamps)
                    count = size
                t1 = now_ns()
                conn.send(
                    (
                        "done",
                        {
                            "count": count,
                            "t_start": t0,
                            "t_end": t1,
                            "cpu": time.process_time() - cpu0,
                            "stamps": stamps.tobytes(),
                        },
                    )
                )
            finally:
                if driver is not zmq_driver:
                    driver.close()
    except BaseException:
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))
    finally:
        if zmq_driver is not None:
            zmq_driver.close()


# --- the main side --------------------------------------------------------------------------------


class Pool:
    """WORKERS spawned processes, each with its ZeroMQ client, for the whole run."""

    def __init__(self, endpoint: str, url: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(WORKERS):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(theirs, i, endpoint, url), daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(proc)
        deadline = time.monotonic() + STEP_TIMEOUT
        for i in range(WORKERS):
            self._expect(i, "up", deadline)

    def _expect(self, index: int, kind: str, deadline: float) -> Any:
        conn = self.conns[index]
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"worker {index}: no {kind!r} within {STEP_TIMEOUT:g}s")
        msg = conn.recv()
        if msg[0] == "error":
            raise RuntimeError(f"worker {index} failed:\n{msg[1]}")
        if msg[0] != kind:
            raise RuntimeError(f"worker {index}: expected {kind!r}, got {msg[0]!r}")
        return msg[1] if len(msg) > 1 else None

    def run(self, task: str, way: str, size: float, workers: int) -> list[dict[str, Any]]:
        """Warm every worker up, "go" to all at once, return each one's result."""
        deadline = time.monotonic() + STEP_TIMEOUT
        used = range(workers)
        for i in used:
            self.conns[i].send((task, way, size))
        for i in used:
            self._expect(i, "ready", deadline)
        for i in used:
            self.conns[i].send(("go",))
        return [self._expect(i, "done", deadline) for i in used]

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("quit",))
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(10)


class Spy:
    """``py-spy record`` attached to the gateway process for the HTTP rounds (``--py-spy``)."""

    def __init__(self, out_dir: str, pid: int, name: str, flags: list[str]) -> None:
        exe = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or "py-spy"
        self.out = os.path.join(out_dir, f"{name}.txt")
        cmd = [exe, "record", "--pid", str(pid), "--rate", "250", *flags]
        cmd += ["--format", "raw", "--output", self.out]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        time.sleep(0.5)  # let it attach

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def _stamps(results: list[dict[str, Any]]) -> list[int]:
    out: list[int] = []
    for r in results:
        out.extend(array("q", r["stamps"]))
    return out


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _gateway_cmd(endpoint: str, feed_endpoint: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "transport.cli",
        "web",
        "--endpoint",
        endpoint,
        "--feed-endpoint",
        feed_endpoint,
        "--http",
        "127.0.0.1:0",
        "--log-level",
        "warning",
    ]


def measure(args: argparse.Namespace, root: str) -> dict[str, Any]:
    began = time.perf_counter()
    load_start = os.getloadavg()
    cpu_start = machine_cpu()
    data = os.path.join(root, "data")
    server, ready, line = spawn_server(serve_cmd(data), os.path.join(root, "server.log"))
    gateway: subprocess.Popen[str] | None = None
    pool: Pool | None = None
    try:
        if ready is None:
            raise RuntimeError(f"opsreg serve did not start: {line!r} (see {root}/server.log)")
        endpoint, feed_endpoint = ready["endpoint"], ready["feed_endpoint"]
        gateway, gw_ready, line = spawn_server(
            _gateway_cmd(endpoint, feed_endpoint), os.path.join(root, "gateway.log")
        )
        if gw_ready is None:
            raise RuntimeError(f"opsreg web did not start: {line!r} (see {root}/gateway.log)")
        url = gw_ready["http"]
        log(f"# server {endpoint} (pid {server.pid}), gateway {url} (pid {gateway.pid})")
        pool = Pool(endpoint, url)
        rates: dict[str, list[float]] = {"zmq": [], "http": []}
        loaded: dict[str, list[int]] = {"zmq": [], "http": []}
        cpu: dict[str, dict[str, list[float]]] = {
            way: {"server": [], "gateway": [], "clients": []} for way in ("zmq", "http")
        }
        order: list[str] = []
        for rnd in range(args.rounds):
            for way in ("zmq", "http"):
                spy = (
                    Spy(args.py_spy, gateway.pid, f"gateway-round{rnd}", args.py_spy_flags)
                    if args.py_spy and way == "http"
                    else None
                )
                pids = {"server": server.pid, "gateway": gateway.pid}
                before = {k: cpu_seconds(p) for k, p in pids.items()}
                results = pool.run("round", way, args.seconds, WORKERS)
                after = {k: cpu_seconds(p) for k, p in pids.items()}
                if spy is not None:
                    spy.stop()
                count = sum(r["count"] for r in results)
                wall = (max(r["t_end"] for r in results) - min(r["t_start"] for r in results)) / 1e9
                rates[way].append(count / wall)
                loaded[way].extend(_stamps(results))
                for k in pids:
                    cpu[way][k].append((after[k] - before[k]) / count * 1e6)
                cpu[way]["clients"].append(sum(r["cpu"] for r in results) / count * 1e6)
                order.append(way)
                log(
                    f"# round {rnd + 1} {way}: {count / wall:,.0f} lifecycles/s ({count} in {wall:.2f}s)"
                )
        alone = {
            way: _stamps(pool.run("latency", way, args.latency_n, 1)) for way in ("zmq", "http")
        }
    finally:
        if pool is not None:
            pool.close()
        if gateway is not None:
            stop_server(gateway)
        stop_server(server)

    def latency(way: str) -> dict[str, Any]:
        calls = ("register_operation", "provisioning_succeeded", "complete_operation")
        return {
            "standalone": pcts_us(alone[way]),
            "standalone_by_method": {m: pcts_us(alone[way][i::3]) for i, m in enumerate(calls)},
            "under_load": pcts_us(loaded[way]),
        }

    wall_s = time.perf_counter() - began
    http_over_zmq = ratio(rates["http"], rates["zmq"])
    return {
        "bench": "http",
        "python": platform.python_version(),
        "versions": {
            name: _version(name) for name in ("uvicorn", "starlette", "h11", "httptools", "uvloop")
        },
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
        "workers": WORKERS,
        "http_client": HTTP_CLIENT,
        "gateway": "opsreg web, its own process (uvicorn, one event loop)",
        "round_seconds": args.seconds,
        "rounds": args.rounds,
        "order": order,
        "store": mount_of(data),
        "lifecycles_per_s": {
            way: {**summary(values), "rounds": [round(v, 1) for v in values]}
            for way, values in rates.items()
        },
        "ratios": {"http_over_zmq": http_over_zmq},
        "latency_us": {
            "measured": "one call (register, start or complete), time to its answer; standalone: "
            "one client alone; under_load: every call of the 4-process rounds",
            "zmq": latency("zmq"),
            "http": latency("http"),
        },
        "cpu_us_per_lifecycle": {
            way: {k: summary(v, 1) for k, v in parts.items() if way == "http" or k != "gateway"}
            for way, parts in cpu.items()
        },
        "machine": machine_load(load_start, cpu_start, wall_s),
        "elapsed_s": round(wall_s, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short rounds (under 30 s in all)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each way (3)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per round (8; 1.5)")
    parser.add_argument(
        "--latency-n", type=int, default=None, help="lifecycles of the standalone latency (1000)"
    )
    parser.add_argument("--data-root", default=None, metavar="DIR", help="where the store goes")
    parser.add_argument(
        "--py-spy", default=None, metavar="DIR", help="py-spy the gateway's HTTP rounds into DIR"
    )
    parser.add_argument(
        "--py-spy-flags",
        default="--nonblocking",
        metavar="FLAGS",
        help='extra py-spy record flags (default "--nonblocking"; "--gil" shows CPU holders)',
    )
    args = parser.parse_args()
    args.py_spy_flags = shlex.split(args.py_spy_flags)
    args.rounds = args.rounds or 3
    args.seconds = args.seconds or (1.5 if args.quick else 8.0)
    args.latency_n = args.latency_n or (100 if args.quick else 1000)
    if args.rounds < 1 or args.seconds <= 0 or args.latency_n < 1:
        parser.error("--rounds, --seconds and --latency-n must be positive")
    if args.py_spy:
        os.makedirs(args.py_spy, exist_ok=True)
    root = tempfile.mkdtemp(prefix="opsreg-bench-http-", dir=args.data_root)
    try:
        emit(measure(args, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
