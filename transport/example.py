"""The walk-through behind ``opsreg example``: a few operations and the feed they produce."""

from __future__ import annotations

from collections.abc import Callable

from actors import (
    OperationId,
    OperationKind,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    OpsLifecycleError,
    OpsRegistry,
)


def run_example(out: Callable[[str], None]) -> None:
    with OpsRegistry.start(max_completed=256) as reg:
        ids = []
        for name in ("fetch-docs", "summarise", "send-report", "cleanup"):
            op = OperationId.new()
            reg.register_operation(
                OperationSpec(
                    id=op,
                    kind=OperationKind.BACKGROUND_TOOL_OP,
                    owner_session_id="example-session",
                    display_name=name,
                    source_label="opsreg example",
                )
            )
            reg.provisioning_succeeded(op)
            ids.append(op)
        out(f"registered and started {len(ids)} operations")

        watches = [reg.register_watcher(op) for op in ids]
        barrier = reg.wait_all("example-run", ids)
        reg.report_progress(ids[0], OperationProgressUpdate("downloaded 3 of 4 pages", 75.0))
        reg.complete_operation(
            ids[0], OperationResult(id=ids[0], content="4 pages", duration_ms=12)
        )
        reg.complete_operation(
            ids[1], OperationResult(id=ids[1], content="a summary", duration_ms=40)
        )
        reg.fail_operation(ids[2], "smtp: connection refused")
        reg.cancel_operation(ids[3], "not needed")
        try:
            reg.complete_operation(ids[3], OperationResult(id=ids[3], content="late"))
        except OpsLifecycleError as exc:
            out(f"refused as expected: {exc}")

        for op, watch in zip(ids, watches, strict=True):
            outcome = watch.get(timeout=5)
            out(f"watcher for {op}: {type(outcome).__name__}")
        result = barrier.get(timeout=5)
        out(f"wait_all satisfied for {len(result.outcomes)} operations")

        out("completion feed:")
        for entry in reg.list_since(0).entries:
            out(
                f"  seq={entry.seq} {entry.display_name:<12} "
                f"{entry.terminal_outcome.status.value:<10} {entry.operation_id}"
            )
