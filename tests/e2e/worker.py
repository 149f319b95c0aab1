"""Worker processes for end-to-end tests. ``python -m tests.e2e.worker MODE ENDPOINT ...``

Each prints one line per event to stdout so the test can follow it without sleeping.
"""

from __future__ import annotations

import sys

from actors import OperationId, OperationKind, OperationResult, OperationSpec, OpsLifecycleError
from transport import RegistryClient, Unavailable


def spec(name: str) -> OperationSpec:
    return OperationSpec(
        id=OperationId.new(),
        kind=OperationKind.BACKGROUND_TOOL_OP,
        owner_session_id="e2e",
        display_name=name,
        source_label="e2e",
    )


def lifecycles(endpoint: str, n: int, tag: str) -> None:
    """n lifecycles, every 5th failed; prints 'done <n>' at the end."""
    with RegistryClient(endpoint, timeout=60) as cli:
        for i in range(n):
            s = spec(f"{tag}-{i:05}")
            cli.register_operation(s)
            cli.provisioning_succeeded(s.id)
            if i % 5 == 4:
                cli.fail_operation(s.id, f"boom {i}")
            else:
                cli.complete_operation(s.id, OperationResult(id=s.id, content=f"{tag}-{i}"))
    print(f"done {n}", flush=True)


def hold_barrier(endpoint: str, *ids: str) -> None:
    """Take the registry's wait_all barrier, say so, then wait forever (to be killed)."""
    cli = RegistryClient(endpoint, timeout=30)
    future = cli.wait_all("held-by-a-process", [OperationId(i) for i in ids])
    print("holding", flush=True)
    future.get(timeout=None)


def watch(endpoint: str, op: str) -> None:
    with RegistryClient(endpoint, timeout=30) as cli:
        future = cli.register_watcher(OperationId(op))
        print("watching", flush=True)
        outcome = future.get(timeout=60)
        print(f"outcome {type(outcome).__name__}", flush=True)


def churn(endpoint: str, tag: str) -> None:
    """Lifecycles until killed, through server restarts; prints 'ack <id>' per terminal."""
    cli = RegistryClient(endpoint, timeout=5)
    i = 0
    while True:
        i += 1
        s = spec(f"{tag}-{i}")
        try:
            cli.register_operation(s)
            cli.provisioning_succeeded(s.id)
            print(f"try {s.id}", flush=True)
            cli.complete_operation(s.id, OperationResult(id=s.id, content=f"{tag}-{i}"))
        except Unavailable:
            cli.wait_connected(timeout=30)  # until a (restarted) server answers a heartbeat
            continue
        except OpsLifecycleError as exc:
            print(f"error {type(exc).__name__} {s.id}", flush=True)
            continue
        print(f"ack {s.id}", flush=True)


if __name__ == "__main__":
    mode, endpoint, *rest = sys.argv[1:]
    if mode == "lifecycles":
        lifecycles(endpoint, int(rest[0]), rest[1])
    elif mode == "hold_barrier":
        hold_barrier(endpoint, *rest)
    elif mode == "watch":
        watch(endpoint, rest[0])
    elif mode == "churn":
        churn(endpoint, rest[0])
    else:
        raise SystemExit(f"unknown mode {mode}")
