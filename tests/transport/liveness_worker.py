"""Client processes for the liveness tests. ``python -m tests.transport.liveness_worker MODE ...``

Each prints one line per event on stdout so the test can follow it without sleeping.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from actors import OperationId, OperationKind, OperationSpec, OpsLifecycleError
from actors.futures import OpsFuture
from transport import RegistryClient


def _say(text: str) -> None:
    print(text, flush=True)


def _describe(future: OpsFuture[Any]) -> str:
    try:
        value = future.get(timeout=0)
    except OpsLifecycleError as exc:
        return f"{type(exc).__name__}: {exc}"
    if isinstance(value, tuple):  # wait_any: (id, outcome)
        value = value[1]
    return str(value) if isinstance(value, int) else type(value).__name__


def hold_all(endpoint: str, watched: str, any_id: str, all_a: str, all_b: str) -> None:
    """Hold one of each kind of wait; print ``settled KIND RESULT`` as each settles."""
    cli = RegistryClient(endpoint, timeout=30, heartbeat=0.2)
    futures = {
        "watcher": cli.register_watcher(OperationId(watched)),
        "wait_any": cli.wait_any([OperationId(any_id)]),
        "wait_all": cli.wait_all("held", [OperationId(all_a), OperationId(all_b)]),
        "advance": cli.wait_for_advance(cli.watermark()),
    }
    done = threading.Semaphore(0)
    for kind, future in futures.items():

        def settled(f: OpsFuture[Any], kind: str = kind) -> None:
            _say(f"settled {kind} {_describe(f)}")
            done.release()

        future.add_done_callback(settled)
    _say("holding")
    for _ in futures:
        done.acquire()
    cli.close()


def watchers(endpoint: str, op: str, count: str) -> None:
    """Ask for ``count`` watchers on ``op`` at once; say how many were refused; then wait."""
    cli = RegistryClient(endpoint, timeout=60, heartbeat=0.2)
    firsts = [cli.submit("register_watcher", OperationId(op)) for _ in range(int(count))]
    held = refused = 0
    for f in firsts:
        try:
            f.get(timeout=60)
            held += 1
        except OpsLifecycleError as exc:
            refused += 1
            last = exc
    _say(f"holding {held} refused {refused} {last if refused else ''}".rstrip())
    threading.Event().wait()  # until killed


def leased(endpoint: str, count: str) -> None:
    """Register ``count`` leased operations, print their ids, then wait to be killed."""
    cli = RegistryClient(endpoint, timeout=30, heartbeat=0.2)
    for i in range(int(count)):
        spec = OperationSpec(
            id=OperationId.new(),
            kind=OperationKind.BACKGROUND_TOOL_CAPACITY_SLOT,
            owner_session_id="leaseholder",
            display_name=f"leased-{i}",
            source_label="test",
            lease=True,
        )
        cli.register_operation(spec)
        cli.provisioning_succeeded(spec.id)
        _say(f"registered {spec.id}")
    _say("holding")
    threading.Event().wait()


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    {"hold_all": hold_all, "watchers": watchers, "leased": leased}[mode](*rest)
