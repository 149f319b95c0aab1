"""actors/arguments.py without a registry: what each terminal method asks for, and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from actors import (
    Aborted,
    Cancelled,
    Completed,
    Failed,
    InvalidArgument,
    OperationId,
    OperationResult,
    Retired,
    Terminated,
    arguments,
    calls,
)

pytestmark = pytest.mark.timeout(10)

OP = OperationId.new()
RESULT = OperationResult(id=OP, content="done", is_error=False)


@pytest.mark.parametrize(
    ("method", "args", "action", "outcome"),
    [
        ("provisioning_failed", ("boom",), "fail_operation", Failed("boom")),
        ("fail_operation", ("boom",), "fail_operation", Failed("boom")),
        ("complete_operation", (RESULT,), "complete_operation", Completed(RESULT)),
        ("abort_provisioning", (None,), "abort_provisioning", Aborted(None)),
        ("abort_provisioning", (), "abort_provisioning", Aborted(None)),
        ("cancel_operation", ("why",), "cancel_operation", Cancelled("why")),
        ("mark_retired", (), "mark_retired", Retired()),
    ],
)
def test_each_terminal_method_asks_for_its_transition(
    method: str, args: tuple[Any, ...], action: str, outcome: Any
) -> None:
    assert arguments.terminal(method, str(OP), *args) == (OP, action, outcome)


def test_terminal_methods_all_change_state() -> None:
    assert set(arguments.TERMINAL_ACTIONS) <= calls.CHANGES_STATE
    assert arguments.terminated("bye") == ("terminate_owner", Terminated("bye"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: arguments.terminal("fail_operation", OP, 3), "error must be a string"),
        (lambda: arguments.terminal("cancel_operation", OP, 3), "reason must be a string or None"),
        (lambda: arguments.terminal("complete_operation", OP, "x"), "needs an OperationResult"),
        (lambda: arguments.terminal("fail_operation", "not-an-id", "x"), "id"),
        (lambda: arguments.terminated(None), "reason must be a string"),
        (lambda: arguments.ids("abc", "wait_any ids"), "not a string"),
        (lambda: arguments.after_seq(-1), "non-negative"),
        (lambda: arguments.after_seq(True), "non-negative"),
        (lambda: arguments.run_id(7), "run_id"),
        (lambda: arguments.run_id("x" * 10_000), "run_id"),
    ],
)
def test_bad_arguments_are_invalid_argument(call: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call()
