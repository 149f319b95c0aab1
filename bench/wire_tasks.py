"""The worker side of ``bench/transport.py``: what each pooled worker process runs
(per-call and pipelined load, the watcher and its prober, feed subscribers and their
producer, the watermark check), driven over a pipe by ``wire_pool.Pool``.

Spawned workers find ``worker_main`` and the tasks by this module's name: the child
re-runs bench/transport.py (as ``__mp_main__``), which imports this module.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final

from _common import die_with_parent, lifecycles, make_ops, now_ns
from raw_ceiling import (
    ACCEPTED,
    CALL_TIMEOUT,
    REGISTRY,
    MiniOpsClient,
    RawClient,
    raw_ops,
)

from actors import OperationId, OperationResult, OperationSpec
from transport.client import RegistryClient
from transport.errors import FeedGap
from transport.feed import FeedSubscriber

WINDOW: Final = 200
WARM_LIFECYCLES: Final = 50
WARM_PROBES: Final = 20
PROBE_GAP_S: Final = 0.002


class Ctl:
    """A task's side of the control pipe to the main process."""

    def __init__(self, conn: Connection, peer: Connection | None) -> None:
        self.conn = conn
        self.peer = peer

    def ready(self) -> int:
        """Tell main we are ready and wait for "go"; returns the time go arrived."""
        self.conn.send(("ready",))
        while True:
            msg = self.conn.recv()
            if msg[0] == "go":
                return now_ns()

    def ready_nowait(self) -> None:
        self.conn.send(("ready",))

    def stop_requested(self) -> bool:
        while self.conn.poll(0):
            if self.conn.recv()[0] == "stop":
                return True
        return False


def connect(endpoint: str) -> RegistryClient:
    cli = RegistryClient(endpoint, registry=REGISTRY, timeout=CALL_TIMEOUT)
    if not cli.wait_connected(30):
        cli.close()
        raise RuntimeError(f"no answer from {endpoint}")
    return cli


def timed(ctl: Ctl, run: Callable[[list[Any]], None], ops: list[Any]) -> dict[str, Any]:
    """Warm up on the first WARM_LIFECYCLES operations, wait for "go", time the rest."""
    run(ops[:WARM_LIFECYCLES])
    t0 = ctl.ready()
    cpu0 = time.process_time()
    run(ops[WARM_LIFECYCLES:])
    t1 = now_ns()
    return {"t_start": t0, "t_end": t1, "cpu": time.process_time() - cpu0}


def task_per_call(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = connect(endpoint)
    try:
        return timed(ctl, lambda ops: lifecycles(cli, ops), make_ops(n + WARM_LIFECYCLES, owner))
    finally:
        cli.close()


def pipelined(cli: RegistryClient, ops: list[tuple[OperationSpec, OperationResult]]) -> None:
    submit = cli.submit
    for i in range(0, len(ops), WINDOW):
        futures = []
        for spec, result in ops[i : i + WINDOW]:
            futures.append(submit("register_operation", spec))
            futures.append(submit("provisioning_succeeded", spec.id))
            futures.append(submit("complete_operation", spec.id, result))
        for f in futures:
            f.get(timeout=CALL_TIMEOUT)


def task_pipelined(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = connect(endpoint)
    try:
        return timed(ctl, lambda ops: pipelined(cli, ops), make_ops(n + WARM_LIFECYCLES, owner))
    finally:
        cli.close()


def call_lifecycles(call: Callable[..., Any], ops: list[tuple[Any, Any, Any]]) -> None:
    """Per-call lifecycles through a ``call(method, *args)`` client: (key, spec, result)."""
    for key, spec, result in ops:
        call("register_operation", spec)
        call("provisioning_succeeded", key)
        call("complete_operation", key, result)


def task_mini_per_call(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = MiniOpsClient(endpoint)
    try:
        ops = [(spec.id, spec, result) for spec, result in make_ops(n + WARM_LIFECYCLES, owner)]
        return timed(ctl, lambda chunk: call_lifecycles(cli.call, chunk), ops)
    finally:
        cli.close()


def task_raw_pipelined(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = RawClient(endpoint)

    def run(ops: list[tuple[str, Any, Any]]) -> None:
        send = cli.send
        for i in range(0, len(ops), WINDOW):
            chunk = ops[i : i + WINDOW]
            for key, spec, result in chunk:
                send("register_operation", (spec,))
                send("provisioning_succeeded", (key,))
                send("complete_operation", (key, result))
            cli.take(3 * len(chunk))

    try:
        return timed(ctl, run, raw_ops(n + WARM_LIFECYCLES, owner))
    finally:
        cli.close()


def task_raw_per_call(ctl: Ctl, endpoint: str, n: int, owner: str) -> dict[str, Any]:
    cli = RawClient(endpoint)
    try:
        return timed(
            ctl, lambda ops: call_lifecycles(cli.call, ops), raw_ops(n + WARM_LIFECYCLES, owner)
        )
    finally:
        cli.close()


def task_watcher(ctl: Ctl, endpoint: str, raw: bool) -> dict[str, Any]:
    """Arm a watcher on each id the prober sends; stamp when it resolves."""
    peer = ctl.peer
    assert peer is not None
    resolved: list[int] = []
    if raw:
        rcli = RawClient(endpoint)
        try:
            ctl.ready_nowait()
            while (msg := peer.recv())[0] == "probe":
                req_id = rcli.send("register_watcher", (msg[1],))
                if rcli.recv(req_id).status != ACCEPTED:
                    raise RuntimeError("raw watch was not held")
                peer.send(("armed",))
                rcli.recv(req_id)
                resolved.append(now_ns())
        finally:
            rcli.close()
        return {"resolved": resolved}
    cli = connect(endpoint)
    try:
        ctl.ready_nowait()
        while (msg := peer.recv())[0] == "probe":
            future = cli.register_watcher(OperationId(msg[1]))
            peer.send(("armed",))
            future.get(timeout=CALL_TIMEOUT)
            resolved.append(now_ns())
    finally:
        cli.close()
    return {"resolved": resolved}


def task_prober(ctl: Ctl, endpoint: str, raw: bool, count: int | None) -> dict[str, Any]:
    """Probe watcher latency: ``count`` probes, or until main says stop."""
    peer = ctl.peer
    assert peer is not None
    called: list[int] = []
    returned: list[int] = []
    if raw:
        rcli = RawClient(endpoint)

        def probe() -> tuple[int, int]:
            key, spec, result = raw_ops(1, "prober")[0]
            rcli.call("register_operation", spec)
            rcli.call("provisioning_succeeded", key)
            peer.send(("probe", key))
            peer.recv()
            t_call = now_ns()
            rcli.call("complete_operation", key, result)
            return t_call, now_ns()

        close: Callable[[], None] = rcli.close
    else:
        cli = connect(endpoint)

        def probe() -> tuple[int, int]:
            spec, result = make_ops(1, "prober")[0]
            cli.register_operation(spec)
            cli.provisioning_succeeded(spec.id)
            peer.send(("probe", str(spec.id)))
            peer.recv()
            t_call = now_ns()
            cli.complete_operation(spec.id, result)
            return t_call, now_ns()

        close = cli.close
    try:
        for _ in range(WARM_PROBES):
            probe()
        ctl.ready()
        while (count is None and not ctl.stop_requested()) or (
            count is not None and len(called) < count
        ):
            t_call, t_ret = probe()
            called.append(t_call)
            returned.append(t_ret)
            time.sleep(PROBE_GAP_S)
    finally:
        peer.send(("end",))
        close()
    return {"warm": WARM_PROBES, "called": called, "returned": returned}


def task_subscriber(
    ctl: Ctl, feed_endpoint: str, endpoint: str, burst: int, after: int
) -> dict[str, Any]:
    sub = FeedSubscriber(endpoint, feed_endpoint, registry=REGISTRY, after_seq=after)
    received = out_of_order = 0
    expect = after + 1
    gap: str | None = None
    t_first = t_last = 0
    try:
        while sub.next(timeout=0.3) is not None:  # the catch-up; nothing should be there
            out_of_order += 1
        ctl.ready()
        last = after + burst
        while expect <= last:
            entry = sub.next(timeout=CALL_TIMEOUT)
            if entry is None:
                break
            if entry.seq != expect:
                out_of_order += 1
            received += 1
            expect = entry.seq + 1
            if received == 1:
                t_first = now_ns()
        t_last = now_ns()
    except FeedGap as exc:
        gap = str(exc)
    finally:
        repairs, duplicates = sub.repairs, sub.duplicates
        sub.close()
    return {
        "received": received,
        "out_of_order": out_of_order,
        "cursor": expect - 1,
        "feed_gap": gap,
        "repairs": repairs,
        "duplicates": duplicates,
        "t_first": t_first,
        "t_last": t_last,
    }


def task_producer(ctl: Ctl, endpoint: str, burst: int) -> dict[str, Any]:
    cli = connect(endpoint)
    try:
        ops = make_ops(burst, "producer")
        t0 = ctl.ready()
        cpu0 = time.process_time()
        pipelined(cli, ops)
        t1 = now_ns()
        return {"t_start": t0, "t_end": t1, "cpu": time.process_time() - cpu0}
    finally:
        cli.close()


def task_watermark(ctl: Ctl, endpoint: str) -> dict[str, Any]:
    cli = connect(endpoint)
    try:
        ctl.ready_nowait()
        return {"watermark": cli.watermark()}
    finally:
        cli.close()


TASKS: Final[dict[str, Callable[..., dict[str, Any]]]] = {
    "per_call": task_per_call,
    "pipelined": task_pipelined,
    "raw_per_call": task_raw_per_call,
    "mini_per_call": task_mini_per_call,
    "raw_pipelined": task_raw_pipelined,
    "watcher": task_watcher,
    "prober": task_prober,
    "subscriber": task_subscriber,
    "producer": task_producer,
    "watermark": task_watermark,
}


def worker_main(conn: Connection, peer: Connection | None) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # main cleans up; Ctrl-C is its business
    ctl = Ctl(conn, peer)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "exit":
            return
        if msg[0] != "run":
            continue  # a stale "go" or "stop"
        _, name, kwargs = msg
        try:
            result = TASKS[name](ctl, **kwargs)
        except BaseException:
            conn.send(("error", f"{name}: {traceback.format_exc()}"))
        else:
            conn.send(("done", result))
