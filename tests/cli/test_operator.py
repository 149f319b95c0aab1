"""The operator's commands (cancel, fail, terminate, ls --owner): a real CLI against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from actors import Cancelled, Failed, OperationId, OperationSpec, OperationStatus, Terminated
from tests.conftest import background_spec, result_for
from tests.transport.conftest import ROOT, ServerProcess
from transport import RegistryClient

pytestmark = pytest.mark.timeout(90)


def run(
    server: ServerProcess, *args: str, columns: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSREG_")}
    env.pop("COLUMNS", None)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    env["OPSREG_ENDPOINT"] = server.endpoint
    env["OPSREG_TIMEOUT"] = "10"
    return subprocess.run(
        [sys.executable, "-m", "transport.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _spec(name: str, owner: str) -> OperationSpec:
    s = background_spec(name)
    return OperationSpec(
        id=s.id,
        kind=s.kind,
        owner_session_id=owner,
        display_name=name,
        source_label=s.source_label,
        child_session_id=None,
        expect_peer_channel=False,
    )


@dataclass
class Ops:
    server: ServerProcess
    client: RegistryClient
    mine: list[OperationId]  # owner "alice": running, provisioning
    mine_done: OperationId  # owner "alice", completed
    theirs: OperationId  # owner "bob", running


@pytest.fixture
def ops(server_process: ServerProcess) -> Iterator[Ops]:
    with RegistryClient(server_process.endpoint, timeout=10) as cli:
        a1, a2, a3, b1 = (
            _spec("a-running", "alice"),
            _spec("a-provisioning", "alice"),
            _spec("a-done", "alice"),
            _spec("b-running", "bob"),
        )
        for s in (a1, a2, a3, b1):
            cli.register_operation(s)
        for s in (a1, a3, b1):
            cli.provisioning_succeeded(s.id)
        cli.complete_operation(a3.id, result_for(a3.id))
        yield Ops(server_process, cli, [a1.id, a2.id], a3.id, b1.id)


def _outcome(cli: RegistryClient, op: OperationId) -> object:
    snap = cli.snapshot(op)
    assert snap is not None
    return snap.terminal_outcome


def test_cancel_ends_an_operation_cancelled_with_its_reason(ops: Ops) -> None:
    proc = run(ops.server, "cancel", str(ops.mine[0]), "--reason", "not needed")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [ops.mine[0], "cancelled"]
    assert _outcome(ops.client, ops.mine[0]) == Cancelled("not needed")

    again = run(ops.server, "cancel", str(ops.mine[0]))
    assert again.returncode == 1
    one_error_line(again, "invalid lifecycle transition", "Cancelled -> cancel_operation")


def test_fail_ends_an_operation_failed_and_needs_an_error(ops: Ops) -> None:
    proc = run(ops.server, "fail", str(ops.mine[1]), "--error", "disk full", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "failed"
    assert _outcome(ops.client, ops.mine[1]) == Failed("disk full")

    assert run(ops.server, "fail", str(ops.theirs)).returncode == 2  # --error is required
    done = run(ops.server, "fail", str(ops.mine_done), "--error", "late")
    assert done.returncode == 1
    one_error_line(done, "Completed -> fail_operation")


def test_unknown_id_exits_1_and_bad_id_exits_2(ops: Ops) -> None:
    unknown = str(OperationId.new())
    for args in (["cancel", unknown], ["fail", unknown, "--error", "x"]):
        proc = run(ops.server, *args)
        assert proc.returncode == 1
        one_error_line(proc, "operation not found", unknown)
    assert run(ops.server, "cancel", "not-an-id").returncode == 2


def test_terminate_owner_ends_only_that_owners_live_operations(ops: Ops) -> None:
    proc = run(ops.server, "terminate", "--owner", "alice", "--reason", "shift over")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "cancelled 2 operation(s) of owner alice"
    for op in ops.mine:
        assert _outcome(ops.client, op) == Cancelled("shift over")
    assert ops.client.snapshot(ops.mine_done).status is OperationStatus.COMPLETED  # type: ignore[union-attr]
    assert ops.client.snapshot(ops.theirs).status is OperationStatus.RUNNING  # type: ignore[union-attr]

    again = run(ops.server, "terminate", "--owner", "alice", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["cancelled"] == []


def test_terminate_all_is_the_registry_wide_terminate_owner(ops: Ops) -> None:
    assert run(ops.server, "terminate").returncode == 2  # --owner or --all is required
    assert run(ops.server, "terminate", "--owner", "x", "--all").returncode == 2
    proc = run(ops.server, "terminate", "--all", "--reason", "maintenance")
    assert proc.returncode == 0, proc.stderr
    for op in (*ops.mine, ops.theirs):
        assert _outcome(ops.client, op) == Terminated("maintenance")


def test_ls_owner_filters_on_the_server(ops: Ops) -> None:
    proc = run(ops.server, "ls", "--owner", "alice", "--json")
    assert proc.returncode == 0, proc.stderr
    assert {s["id"] for s in json.loads(proc.stdout)} == {*ops.mine, ops.mine_done}
    proc = run(ops.server, "ls", "--owner", "alice", "--status", "running")
    assert [r.split()[0] for r in proc.stdout.splitlines()[1:]] == [ops.mine[0]]
    proc = run(ops.server, "ls", "--owner", "nobody")
    assert proc.returncode == 0 and proc.stdout.strip() == "no operations match"


def test_ls_cuts_long_names_to_the_terminal_and_json_is_never_cut(ops: Ops) -> None:
    long = "a-very-long-operation-name-" * 4
    ops.client.register_operation(_spec(long, "carol"))
    proc = run(ops.server, "ls", "--owner", "carol", columns=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 120 for line in lines), lines
    assert "\u2026" in lines[1] and long not in lines[1]
    assert lines[1].split()[2:4] == ["background_tool_op", "provisioning"]
    assert long in run(ops.server, "ls", "--owner", "carol").stdout  # a pipe: whole lines
    proc = run(ops.server, "ls", "--owner", "carol", "--json", columns=120)
    assert json.loads(proc.stdout)[0]["display_name"] == long


@pytest.mark.parametrize(
    "args",
    [
        ["cancel", str(OperationId.new())],
        ["fail", str(OperationId.new()), "--error", "x"],
        ["terminate", "--owner", "alice"],
        ["terminate", "--all"],
    ],
)
def test_unreachable_server_exits_3(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSREG_")}
    proc = subprocess.run(
        [sys.executable, "-m", "transport.cli", *args],
        cwd=ROOT,
        env={**env, "OPSREG_ENDPOINT": "tcp://127.0.0.1:9", "OPSREG_TIMEOUT": "0.5"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    one_error_line(proc, "tcp://127.0.0.1:9")
