"""Helpers every benchmark script shares: threads from a common start, operations to
drive, server subprocesses, and the median/min/max summaries the JSON lines report.

(The peers in ``bench/peers/`` keep their own clock helpers: Ray pickles task
functions by module reference, and its workers cannot import this file.)"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from actors import OperationId, OperationKind, OperationResult, OperationSpec

Work = Callable[[], None]
Ops = list[tuple[OperationSpec, OperationResult]]
ROOT = Path(__file__).resolve().parent.parent


def now_ns() -> int:
    """CLOCK_MONOTONIC: one clock for every process on the machine (Linux)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux; best effort)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn_process(
    cmd: list[str], log_path: str, timeout: float = 60.0
) -> tuple[subprocess.Popen[str], str]:
    """Start a subprocess (stderr to ``log_path``) and read its first stdout line.

    The line is empty when the process exited or ``timeout`` passed without one.
    """
    proc = _popen(cmd, log_path)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc, proc.stdout.readline() if ready else ""


def spawn_server(
    cmd: list[str], log_path: str, timeout: float = 60.0
) -> tuple[subprocess.Popen[str], dict[str, Any] | None, str]:
    """Start ``opsreg serve`` (``cmd``) with ``--ready-file`` and wait until it is ready.

    Returns the process, what it wrote to its ready file (``endpoint``,
    ``feed_endpoint``, ``pid``, ``data``, ``metrics``; None when it did not start:
    the caller stops it and reports) and its banner line.
    """
    # Imported here: while bench/ is on sys.path, ``transport`` is bench/transport.py.
    from transport.cli.ready import await_ready

    ready_file = log_path + ".ready.json"
    proc = _popen([*cmd, "--ready-file", ready_file], log_path)
    ready, line = await_ready(proc, ready_file, timeout)
    return proc, ready, line


def serve_cmd(
    data_dir: str, *extra: str, launcher: tuple[str, ...] = ("-m", "transport.cli")
) -> list[str]:
    """``opsreg serve`` on tcp loopback (ports chosen by the kernel), its store in ``data_dir``."""
    return [
        sys.executable,
        *launcher,
        "serve",
        "--endpoint",
        "tcp://127.0.0.1:0",
        "--feed-endpoint",
        "tcp://127.0.0.1:0",
        "--data",
        data_dir,
        *extra,
    ]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, field: str) -> int:
    """A number field of /proc/PID/status (``VmRSS``, ``VmHWM`` in kB; ``Threads``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _popen(cmd: list[str], log_path: str) -> subprocess.Popen[str]:
    with open(log_path, "w") as err:
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=die_with_parent,
        )


def stop_server(proc: subprocess.Popen[str]) -> int | None:
    """SIGTERM, then SIGKILL after 30 s; close its stdout; return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


class Driver(Protocol):
    """Anything with the three calls of a lifecycle: a registry, a client, a baseline."""

    def register_operation(self, spec: OperationSpec) -> Any: ...

    def provisioning_succeeded(self, op_id: OperationId) -> Any: ...

    def complete_operation(self, op_id: OperationId, result: OperationResult) -> Any: ...


def lifecycles(driver: Driver, ops: Ops) -> None:
    """register -> start -> complete for each operation, one call at a time."""
    register = driver.register_operation
    start = driver.provisioning_succeeded
    complete = driver.complete_operation
    for spec, result in ops:
        register(spec)
        start(spec.id)
        complete(spec.id, result)


def lifecycle_work(driver: Driver, ops: Ops) -> Work:
    return lambda: lifecycles(driver, ops)


def log(text: str) -> None:
    """Progress goes to stderr; stdout carries only the one JSON line."""
    print(text, file=sys.stderr, flush=True)


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run_threads(works: list[Work], join_timeout: float = 600.0) -> float:
    """Run each work item in its own thread from a common start; seconds until all are done."""
    start = threading.Barrier(len(works) + 1)
    errors: list[BaseException] = []

    def body(work: Work) -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(w,), daemon=True) for w in works]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(join_timeout)
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in threads):
        raise RuntimeError(f"benchmark thread still running after {join_timeout}s")
    return elapsed


def make_ops(count: int, owner: str) -> Ops:
    ops = []
    for _ in range(count):
        op_id = OperationId.new()
        spec = OperationSpec(
            id=op_id,
            kind=OperationKind.BACKGROUND_TOOL_OP,
            owner_session_id=owner,
            display_name="bench",
            source_label="bench",
        )
        ops.append((spec, OperationResult(id=op_id, content="ok")))
    return ops


def summary(values: list[float], digits: int = 1) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def ratio(num: list[float], den: list[float]) -> dict[str, Any]:
    """Ratio of medians, and the median/min/max of the per-repetition ratios."""
    paired = [a / b for a, b in zip(num, den, strict=True)]
    return {
        "of_medians": round(statistics.median(num) / statistics.median(den), 4),
        "paired": summary(paired, 4),
    }
