"""Process orchestration for ``bench/transport.py``: the pool of spawned worker
processes, the server subprocesses (``opsreg serve`` and the raw ceiling) and
``py-spy`` attached to a server for one timed phase.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar, Final

from _common import (
    cpu_seconds,
    die_with_parent,
    now_ns,
    serve_cmd,
    spawn_process,
    spawn_server,
    stop_server,
)
from raw_ceiling import RAW_BANNER
from wire_tasks import worker_main

WORKERS: Final = 4
POOL_SIZE: Final = WORKERS + 2  # 4 load workers, a watcher, a prober/producer
WATCHER, PROBER = WORKERS, WORKERS + 1
STEP_TIMEOUT: Final = 300.0
# The entry point: ``bench/transport.py --raw-server`` runs the raw ceiling server.
ENTRY: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transport.py")


class Pool:
    """Worker processes that stay up for the whole run, driven over pipes."""

    def __init__(self, size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        watcher_end, prober_end = ctx.Pipe()
        for i in range(size):
            mine, theirs = ctx.Pipe()
            peer = watcher_end if i == WATCHER else prober_end if i == PROBER else None
            proc = ctx.Process(target=worker_main, args=(theirs, peer), daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(proc)

    def _expect(self, index: int, kind: str, deadline: float) -> Any:
        conn = self.conns[index]
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"worker {index}: no {kind!r} within {STEP_TIMEOUT}s")
        msg = conn.recv()
        if msg[0] == "error":
            raise RuntimeError(f"worker {index} failed: {msg[1]}")
        if msg[0] != kind:
            raise RuntimeError(f"worker {index}: expected {kind!r}, got {msg[0]!r}")
        return msg[1] if len(msg) > 1 else None

    def run(
        self,
        tasks: dict[int, tuple[str, dict[str, Any]]],
        main: list[int],
        stop: tuple[int, ...] = (),
    ) -> tuple[int, dict[int, dict[str, Any]]]:
        """Start ``tasks``; "go" once all are ready; when the ``main`` ones are done,
        "stop" the ``stop`` ones; returns the go time and every task's result."""
        deadline = time.monotonic() + STEP_TIMEOUT
        for index, (name, kwargs) in tasks.items():
            self.conns[index].send(("run", name, kwargs))
        for index in tasks:
            self._expect(index, "ready", deadline)
        t_go = now_ns()
        for index in tasks:
            self.conns[index].send(("go",))
        results = {}
        for index in main:
            results[index] = self._expect(index, "done", deadline)
        for index in stop:
            self.conns[index].send(("stop",))
        for index in tasks:
            if index not in results:
                results[index] = self._expect(index, "done", deadline)
        return t_go, results

    def close(self, grace: float = 10.0) -> None:
        """Ask every worker to exit; kill those still busy after ``grace`` seconds."""
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.send(("exit",))
        deadline = time.monotonic() + grace
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self.conns:
            conn.close()


# --- servers ---------------------------------------------------------------------------------------


class ServerProcess:
    """A server subprocess: ``opsreg serve`` (endpoints from its ready file) or, with
    ``raw``, the ceiling server of raw_ceiling.py (endpoint from its first line)."""

    def __init__(self, cmd: list[str], log_dir: str, raw: bool = False) -> None:
        self.cmd = cmd
        self.raw = raw
        self.log_path = os.path.join(log_dir, f"server-{time.monotonic_ns()}.log")
        self.proc: subprocess.Popen[str] | None = None
        self.endpoint = self.feed_endpoint = ""

    def start(self) -> ServerProcess:
        if self.raw:
            self.proc, line = spawn_process(self.cmd, self.log_path)
            match = RAW_BANNER.search(line)
            ready = None if match is None else {"endpoint": match.group(1), "feed_endpoint": ""}
        else:
            self.proc, ready, line = spawn_server(self.cmd, self.log_path)
        if ready is None:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r} {Path(self.log_path).read_text()}")
        self.endpoint, self.feed_endpoint = ready["endpoint"], ready["feed_endpoint"]
        return self

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)
            self.proc = None


def loaded_run(
    n: int,
    elapsed: float,
    cpu: float,
    res: dict[int, Any],
    loaded: dict[str, list[int]],
    alone: dict[str, list[int]],
) -> dict[str, Any]:
    """One per-call repetition with watcher probes, as the measurement methods return it."""
    return {
        "rate": n / elapsed,
        "server_cpu": cpu / elapsed,
        "client_cpu": sum(res[i]["cpu"] for i in range(WORKERS)) / elapsed,
        "probes_during": len(loaded["return"]),
        "under_load": loaded,
        "standalone": alone,
    }


def opsreg_server(
    data_dir: str, log_dir: str, extra: list[str], switch_interval: float | None = None
) -> ServerProcess:
    launcher = ["-m", "transport.cli"]
    if switch_interval is not None:  # an experiment: the GIL switch interval of the server
        launcher = [
            "-c",
            f"import sys; sys.setswitchinterval({switch_interval!r}); "
            "from transport.cli import main; sys.exit(main(sys.argv[1:]))",
        ]
    cmd = serve_cmd(data_dir, *extra, launcher=tuple(launcher))
    return ServerProcess(cmd, log_dir).start()


def raw_server(log_dir: str) -> ServerProcess:
    cmd = [sys.executable, ENTRY, "--raw-server"]
    return ServerProcess(cmd, log_dir, raw=True).start()


class Spy:
    """``py-spy record`` attached to a server for one timed phase (``--py-spy DIR``)."""

    flags: ClassVar[list[str]] = ["--nonblocking"]

    def __init__(self, out_dir: str | None, server: ServerProcess, name: str) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        if out_dir is None or server.proc is None:
            return
        exe = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or "py-spy"
        out = os.path.join(out_dir, f"{name}.txt")
        cmd = [exe, "record", "--pid", str(server.proc.pid), "--rate", "250", "--threads"]
        cmd += [
            *self.flags,
            "--format",
            "raw",
            "--output",
            out,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        time.sleep(0.5)  # let it attach

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
