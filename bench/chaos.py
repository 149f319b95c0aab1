"""Chaos run: a durable server, 4 workers, 2 subscribers, and a random schedule of faults.

Faults: ``kill -9`` of the server (then a restart on the same ports and data),
of a worker (then a new one), of a subscriber (then a new one from its cursor),
SIGSTOP/SIGCONT of a subscriber (a slow consumer), and commit failures injected
inside the server's store. Every process writes its own log; at the end a checker
verifies, from those logs and the registry:

* every acknowledged terminal is in the registry with the outcome its worker asked for;
* every subscriber's sequence, across its restarts, is 1..W with no gap or duplicate;
* no operation is stuck non-terminal except those whose worker was killed mid-call;
* no watcher hung past its timeout.

Prints one JSON line; the last key, ``summary``, is the one-line human summary.

    python bench/chaos.py [--seconds S] [--seed N] [--quick]
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# Run as a script, bench/ comes first on sys.path and bench/transport.py would shadow
# the ``transport`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import json
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("completed", "failed", "cancelled")
T = TypeVar("T")


# --- the processes under test ------------------------------------------------------------------


def worker_main(endpoint: str, log_path: str, seed: int) -> None:
    """Lifecycles until killed; logs 'try', 'ack', 'nack', 'watch-ok'/'watch-hung'."""
    import pykka

    from actors import Internal, OperationId, OperationKind, OperationResult, OperationSpec
    from actors.errors import OpsLifecycleError
    from transport import RegistryClient, Unavailable

    rng = random.Random(seed)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    cli = RegistryClient(endpoint, timeout=5, heartbeat=0.2)
    recent: list[OperationId] = []
    count = 0
    while True:
        count += 1
        if seed % 2 == 0 and count % 20 == 0 and recent:
            # A wait_all over this worker's last operations: it must resolve or fail
            # with a typed error (server restarted, barrier busy), never hang.
            try:
                cli.wait_all("chaos", recent[-5:]).get(timeout=30)
                log.write("barrier-ok\n")
            except pykka.Timeout:
                log.write("barrier-hung\n")
            except OpsLifecycleError:
                log.write("barrier-error\n")
        op = OperationId.new()
        outcome = rng.choice(OUTCOMES)
        try:
            cli.register_operation(
                OperationSpec(
                    id=op,
                    kind=OperationKind.BACKGROUND_TOOL_OP,
                    owner_session_id="chaos",
                    display_name="chaos",
                    source_label="chaos",
                )
            )
            cli.provisioning_succeeded(op)
            watch = cli.register_watcher(op) if rng.random() < 0.2 else None
            log.write(f"try {op} {outcome}\n")
            for _attempt in range(3):
                try:
                    if outcome == "completed":
                        cli.complete_operation(op, OperationResult(id=op, content=f"r-{op}"))
                    elif outcome == "failed":
                        cli.fail_operation(op, f"e-{op}")
                    else:
                        cli.cancel_operation(op, f"c-{op}")
                    log.write(f"ack {op}\n")
                    recent = [*recent[-4:], op]
                    break
                except Internal:
                    log.write(f"nack {op}\n")  # injected commit failure: rolled back; retry
            if watch is not None:
                try:
                    watch.get(timeout=30)
                    log.write(f"watch-ok {op}\n")
                except Exception:
                    log.write(f"watch-hung {op}\n")
        except Unavailable:
            cli.wait_connected(timeout=30)
        except OpsLifecycleError as exc:
            log.write(f"error {op} {type(exc).__name__}\n")


def subscriber_main(feed: str, endpoint: str, log_path: str) -> None:
    """Reads the feed from the last seq in its log; logs one seq per line."""
    from transport import FeedSubscriber

    cursor = 0
    if os.path.exists(log_path):
        with open(log_path) as fh:
            for line in fh:
                head = line.split(" ", 1)[0]
                if head.isdigit() and line.endswith("\n"):
                    cursor = int(head)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115
    with FeedSubscriber(endpoint, feed, after_seq=cursor, idle_check=0.5, timeout=5) as sub:
        while True:
            entry = sub.next(timeout=None)
            assert entry is not None
            log.write(f"{entry.seq} {entry.operation_id}\n")


# --- the driver ---------------------------------------------------------------------------------


class Proc:
    def __init__(self, args: list[str], err_path: Path | None = None) -> None:
        self.args = args
        self.err_path = err_path
        # A subscriber's stderr is kept (appended across restarts): one that dies on its
        # own says why in the report instead of only "not caught up".
        err = open(err_path, "ab") if err_path is not None else subprocess.DEVNULL  # noqa: SIM115
        self.popen = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        if err_path is not None:
            err.close()  # type: ignore[union-attr]

    def kill9(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)
            self.popen.kill()
        self.popen.wait(timeout=30)


def start_server(
    data: Path, endpoint: str, feed: str, failure_rate: float
) -> tuple[subprocess.Popen[str], str, str]:
    from transport.cli.ready import await_ready

    proc = subprocess.Popen(
        [
            sys.executable, "-m", "transport.cli", "serve",
            "--endpoint", endpoint, "--feed-endpoint", feed, "--data", str(data),
            "--max-completed", "1000000", "--heartbeat", "0.2", "--client-timeout", "2",
            "--inject-commit-failures", str(failure_rate),
            "--ready-file", str(data.parent / "ready.json"),
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    ready, line = await_ready(proc, data.parent / "ready.json")
    if ready is None:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, ready["endpoint"], ready["feed_endpoint"]


def run(seconds: float, seed: int, failure_rate: float, workdir: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    data = workdir / "data"
    logs = workdir / "logs"
    logs.mkdir()
    from transport import RegistryClient

    # Port 0 the first time; every restart reuses the ports it got.
    server, endpoint, feed = start_server(
        data, "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", failure_rate
    )
    workers = [
        Proc(["worker", endpoint, str(logs / f"worker{i}.log"), str(seed * 10 + i)])
        for i in range(4)
    ]
    subs = [
        Proc(["subscriber", feed, endpoint, str(logs / f"sub{i}.log")], logs / f"sub{i}.err")
        for i in range(2)
    ]
    faults: dict[str, int] = {
        "server_kill9": 0,
        "worker_kill9": 0,
        "subscriber_kill9": 0,
        "subscriber_stop": 0,
    }
    started = time.monotonic()
    next_worker_id = 4
    try:
        while time.monotonic() - started < seconds:
            time.sleep(rng.uniform(0.5, 1.5))  # the schedule is time-based by design
            kind = rng.choice(list(faults))
            faults[kind] += 1
            if kind == "server_kill9":
                server.kill()
                server.wait(timeout=30)
                server, _, _ = start_server(data, endpoint, feed, failure_rate)
            elif kind == "worker_kill9":
                i = rng.randrange(len(workers))
                workers[i].kill9()
                workers[i] = Proc(
                    [
                        "worker",
                        endpoint,
                        str(logs / f"worker{next_worker_id}.log"),
                        str(seed * 10 + next_worker_id),
                    ]
                )
                next_worker_id += 1
            elif kind == "subscriber_kill9":
                i = rng.randrange(len(subs))
                subs[i].kill9()
                subs[i] = Proc(subs[i].args, subs[i].err_path)
            else:
                i = rng.randrange(len(subs))
                subs[i].popen.send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(0.2, 1.0))
                subs[i].popen.send_signal(signal.SIGCONT)
        for w in workers:
            w.kill9()
        with RegistryClient(endpoint, timeout=30) as cli:
            # Commits the killed workers had in flight still land; wait until it is quiet.
            watermark = -1
            while (now := _read(cli.watermark)) != watermark:
                watermark = now
                time.sleep(1.0)
            while True:
                # Check exactly the batch the subscribers are held to: read it, let them
                # reach its watermark, and start over if anything committed meanwhile.
                batch = _read(lambda: cli.list_since(0))
                ops = _read(cli.list_operations)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not all(
                    _sub_seqs(logs / f"sub{i}.log")[-1:] == [batch.watermark] for i in range(2)
                ):
                    time.sleep(0.2)  # subscribers catch up on their own; poll their logs
                if _read(cli.watermark) == batch.watermark:
                    break
        # Whether each subscriber was still running when checked (one that exited on its
        # own cannot catch up; its exit code and stderr go in the report).
        exits = [s.popen.poll() for s in subs]
        for s in subs:
            s.kill9()
    finally:
        for p in [*workers, *subs]:
            if p.popen.poll() is None:
                p.popen.kill()
        server.terminate()
        server.wait(timeout=30)
    return check(logs, batch, ops, faults, seconds, exits)


def _tail(path: Path, lines: int = 6) -> list[str]:
    """The last lines a process wrote to ``path`` (empty when it wrote nothing)."""
    if not path.exists():
        return []
    return path.read_text(errors="replace").splitlines()[-lines:]


def _read(call: Callable[[], T]) -> T:
    """A read by the checker. The first request after a server restart opens the
    registry, whose recovery ends in-flight operations with commits; an injected commit
    failure there fails that request with ``Internal`` (and the next one retries)."""
    from actors import Internal

    for _ in range(20):
        try:
            return call()
        except Internal:
            continue
    return call()


def _sub_log(path: Path) -> list[tuple[int, str]]:
    """(seq, operation id) pairs a subscriber logged; a torn last line is ignored."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            out.append((int(parts[0]), parts[1]))
    return out


def _sub_seqs(path: Path) -> list[int]:
    return [seq for seq, _ in _sub_log(path)]


def check(
    logs: Path,
    batch: Any,
    ops: list[Any],
    faults: dict[str, int],
    seconds: float,
    exits: list[int | None],
) -> dict[str, Any]:
    from actors import Cancelled, Completed, Failed

    tried: dict[str, str] = {}
    acked: set[str] = set()
    hung = 0
    nacks = 0
    barriers = {"resolved": 0, "typed_error": 0, "hung": 0}
    for path in logs.glob("worker*.log"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "try":
                tried[parts[1]] = parts[2]
            elif len(parts) == 2 and parts[0] == "ack":
                acked.add(parts[1])
            elif parts and parts[0] == "watch-hung":
                hung += 1
            elif parts and parts[0] == "nack":
                nacks += 1
            elif parts and parts[0] == "barrier-ok":
                barriers["resolved"] += 1
            elif parts and parts[0] == "barrier-error":
                barriers["typed_error"] += 1
            elif parts and parts[0] == "barrier-hung":
                barriers["hung"] += 1
    by_op = {str(e.operation_id): e for e in batch.entries}
    lost = []
    for op in acked:
        entry = by_op.get(op)
        want = tried[op]
        ok = entry is not None and (
            (want == "completed" and isinstance(entry.terminal_outcome, Completed))
            or (want == "failed" and entry.terminal_outcome == Failed(f"e-{op}"))
            or (want == "cancelled" and entry.terminal_outcome == Cancelled(f"c-{op}"))
        )
        if not ok:
            lost.append(op)
    seqs_ok = [e.seq for e in batch.entries] == list(range(1, batch.watermark + 1))
    sub_report = []
    seq_of = {str(e.operation_id): e.seq for e in batch.entries}
    for i in range(2):
        pairs = _sub_log(logs / f"sub{i}.log")
        got = [seq for seq, _ in pairs]
        sub_report.append(
            {
                "received": len(got),
                "gap_free": got == list(range(1, len(got) + 1)),
                "caught_up": got[-1:] == [batch.watermark],
                # the seq a subscriber saw for an operation is the one the registry keeps
                "same_seqs_as_registry": all(seq_of.get(op) == seq for seq, op in pairs),
                "exit_code_at_check": exits[i],
                "stderr_tail": _tail(logs / f"sub{i}.err"),
            }
        )
    acked_seqs_known = all(op in seq_of for op in acked)
    stuck = [s for s in ops if not s.status.is_terminal]
    result = {
        "bench": "chaos",
        "seconds": seconds,
        "faults": {**faults, "commit_failures_seen_by_workers": nacks},
        "faults_total": sum(faults.values()) + nacks,
        "operations": len(tried),
        "acknowledged": len(acked),
        "lost": len(lost),
        "feed_watermark": batch.watermark,
        "feed_seqs_contiguous": seqs_ok,
        "subscribers": sub_report,
        "non_terminal_left": len(stuck),
        "watchers_hung": hung,
        "barriers": barriers,
        "acknowledged_have_seqs": acked_seqs_known,
    }
    result["ok"] = (
        not lost
        and seqs_ok
        and hung == 0
        and barriers["hung"] == 0
        and acked_seqs_known
        and all(s["gap_free"] and s["caught_up"] and s["same_seqs_as_registry"] for s in sub_report)
    )
    result["summary"] = (
        f"faults injected {result['faults_total']}, operations {len(tried)}, acknowledged "
        f"{len(acked)}, lost {len(lost)}, subscriber gaps "
        f"{sum(not s['gap_free'] for s in sub_report)}, watchers hung {hung}, "
        f"barriers hung {barriers['hung']}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "worker":
        worker_main(args[1], args[2], int(args[3]))
        return 0
    if args and args[0] == "subscriber":
        subscriber_main(args[1], args[2], args[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--failure-rate", type=float, default=0.02)
    parser.add_argument("--quick", action="store_true", help="a 15-second run")
    opts = parser.parse_args(args)
    workdir = Path(tempfile.mkdtemp(prefix="opsreg-chaos-"))
    try:
        result = run(15.0 if opts.quick else opts.seconds, opts.seed, opts.failure_rate, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
