"""``opsreg`` client commands as a user runs them: a real CLI process against a real server."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors import OperationId, OperationKind, OperationProgressUpdate
from tests.conftest import background_spec, result_for
from tests.transport.conftest import ROOT, ServerProcess
from transport import RegistryClient

pytestmark = pytest.mark.timeout(60)

UNREACHABLE = ["--endpoint", "tcp://127.0.0.1:9", "--timeout", "0.5"]


@dataclass
class World:
    server: ServerProcess
    client: RegistryClient
    done: OperationId  # completed, with one progress report at 50%
    failed: OperationId
    running: OperationId
    child: OperationId  # running, kind mob_member_child

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSREG_")}
        env["OPSREG_ENDPOINT"] = self.server.endpoint
        env["OPSREG_FEED_ENDPOINT"] = self.server.feed_endpoint
        env["OPSREG_TIMEOUT"] = "10"
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(*args, env=self.env())

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "transport.cli", *args],
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def complete_from_another_thread(self, op: OperationId, content: str) -> None:
        t = threading.Thread(
            target=self.client.complete_operation, args=(op, result_for(op, content))
        )
        t.start()
        t.join(timeout=30)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSREG_")}
    return subprocess.run(
        [sys.executable, "-m", "transport.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _running(cli: RegistryClient, name: str, kind: OperationKind | None = None) -> OperationId:
    spec = background_spec(name) if kind is None else background_spec(name, kind)
    cli.register_operation(spec)
    cli.provisioning_succeeded(spec.id)
    return spec.id


@pytest.fixture
def world(server_process: ServerProcess) -> Iterator[World]:
    with RegistryClient(server_process.endpoint, timeout=10) as cli:
        done = _running(cli, "alpha")
        cli.report_progress(done, OperationProgressUpdate("half way", 50.0))
        cli.complete_operation(done, result_for(done, "all good"))
        failed = _running(cli, "bravo")
        cli.fail_operation(failed, "disk full")
        running = _running(cli, "charlie")
        child = _running(cli, "delta", OperationKind.MOB_MEMBER_CHILD)
        yield World(server_process, cli, done, failed, running, child)


# --- ls, show, stats ---------------------------------------------------------------------------------


def test_ls_prints_a_table_in_registry_order(world: World) -> None:
    proc = world.run("ls")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "KIND", "STATUS", "PROGRESS", "LAST%", "ELAPSED"]
    assert [r.split()[:4] for r in rows] == [
        [world.done, "alpha", "background_tool_op", "completed"],
        [world.failed, "bravo", "background_tool_op", "failed"],
        [world.running, "charlie", "background_tool_op", "running"],
        [world.child, "delta", "mob_member_child", "running"],
    ]
    assert rows[0].split()[4:6] == ["1", "50%"]
    assert rows[1].split()[4:6] == ["0", "-"]


def test_ls_filters_and_json(world: World) -> None:
    proc = world.run("ls", "--json")
    assert proc.returncode == 0, proc.stderr
    snaps = json.loads(proc.stdout)
    assert [s["id"] for s in snaps] == [world.done, world.failed, world.running, world.child]
    assert snaps[0]["terminal_outcome"]["result"]["content"] == "all good"
    assert snaps[0]["last_progress"] == {"message": "half way", "percent": 50.0}

    proc = world.run("ls", "--status", "failed", "--status", "completed", "--json")
    assert [s["id"] for s in json.loads(proc.stdout)] == [world.done, world.failed]

    proc = world.run("ls", "--kind", "mob_member_child", "--status", "running")
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and "delta" in lines[1] and world.child in lines[1]

    proc = world.run("ls", "--status", "cancelled")
    assert proc.returncode == 0 and proc.stdout.strip() == "no operations match"


def test_show_prints_every_field(world: World) -> None:
    proc = world.run("show", world.done)
    assert proc.returncode == 0, proc.stderr
    fields = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert fields["id"] == world.done
    assert fields["display_name"] == "alpha"
    assert fields["status"] == "completed"
    assert fields["outcome"] == "completed"
    assert fields["result"] == "all good"
    assert fields["last_progress"] == "50% half way"
    assert fields["progress_count"] == "1"
    assert fields["completed_at"].endswith("Z")

    failed = dict(
        line.split(None, 1) for line in world.run("show", world.failed).stdout.splitlines()
    )
    assert failed["status"] == "failed" and failed["error"] == "disk full"

    proc = world.run("show", world.running, "--json")
    snap = json.loads(proc.stdout)
    assert snap["id"] == world.running
    assert snap["status"] == "running"
    assert snap["terminal_outcome"] is None


def test_show_unknown_id_is_one_error_line_and_exit_1(world: World) -> None:
    unknown = OperationId.new()
    proc = world.run("show", unknown)
    assert proc.returncode == 1
    assert proc.stdout == ""
    _one_error_line(proc, "operation not found", unknown)


def test_stats_counts_by_status_and_kind(world: World) -> None:
    proc = world.run("stats", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["operation_count"] == 4
    assert stats["active_count"] == 2
    assert stats["wait_active"] is False
    assert stats["watermark"] == 2
    assert stats["dropped_through"] == 0
    assert stats["by_status"]["completed"] == 1
    assert stats["by_status"]["failed"] == 1
    assert stats["by_status"]["running"] == 2
    assert stats["by_status"]["cancelled"] == 0
    assert stats["by_kind"] == {
        "mob_member_child": 1,
        "background_tool_op": 3,
        "background_tool_capacity_slot": 0,
        "detached_job_wait": 0,
    }

    human = world.run("stats").stdout
    fields = dict(line.split(None, 1) for line in human.splitlines() if ":" not in line)
    assert fields["operation_count"] == "4"
    assert fields["active_count"] == "2"
    assert fields["watermark"] == "2"
    assert "running" in human and "mob_member_child" in human


# --- watch and wait ---------------------------------------------------------------------------------


def test_watch_exit_code_follows_the_outcome(world: World) -> None:
    proc = world.run("watch", world.done)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [world.done, "alpha", "completed", "all", "good"]

    proc = world.run("watch", world.failed)
    assert proc.returncode == 1
    assert proc.stdout.split() == [world.failed, "bravo", "failed", "disk", "full"]
    assert proc.stderr == ""

    proc = world.run("watch", world.failed, "--json")
    assert proc.returncode == 1
    line = json.loads(proc.stdout)
    assert line["operation_id"] == world.failed
    assert line["status"] == "failed"
    assert line["terminal_outcome"] == {"outcome": "failed", "error": "disk full"}


def test_watch_waits_for_a_running_operation(world: World) -> None:
    proc = world.popen("watch", world.running)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("waiting for charlie") and world.running in first
    # The line is printed once the watcher is registered.
    snap = world.client.snapshot(world.running)
    assert snap is not None and snap.watcher_count == 1
    world.complete_from_another_thread(world.running, "finished later")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.split() == [world.running, "charlie", "completed", "finished", "later"]
    assert err == ""


def test_watch_gives_up_after_wait_timeout(world: World) -> None:
    proc = world.run("watch", world.running, "--wait-timeout", "0.2")
    assert proc.returncode == 4
    _one_error_line(proc, world.running, "--wait-timeout")


def test_wait_prints_each_outcome_and_succeeds_when_all_complete(world: World) -> None:
    # The test holds the registry's single wait_all barrier: `opsreg wait` must not need it.
    barrier = world.client.wait_all("test-run", [world.running])
    proc = world.popen("wait", world.done, world.running)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "waiting for 1 of 2 operation(s)"
    assert proc.stdout.readline().split()[:3] == [world.done, "alpha", "completed"]
    world.complete_from_another_thread(world.running, "ok")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [world.running, "charlie", "completed", "ok"]
    assert lines[1] == "all 2 completed"
    assert barrier.get(timeout=10).outcomes[0][0] == world.running


def test_wait_with_one_failure_exits_1(world: World) -> None:
    proc = world.run("wait", world.done, world.failed)
    assert proc.returncode == 1
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert {line.split()[2] for line in lines[:2]} == {"completed", "failed"}
    assert lines[2] == "1 of 2 did not complete: 1 failed"

    proc = world.run("wait", world.done, world.failed, "--json")
    assert proc.returncode == 1
    outcomes = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {o["operation_id"]: o["status"] for o in outcomes} == {
        world.done: "completed",
        world.failed: "failed",
    }


def test_wait_and_watch_unknown_id_exit_1(world: World) -> None:
    unknown = OperationId.new()
    proc = world.run("wait", world.done, unknown)
    assert proc.returncode == 1
    assert proc.stdout == ""
    _one_error_line(proc, "operation not found", unknown)

    proc = world.run("watch", unknown)
    assert proc.returncode == 1
    _one_error_line(proc, "operation not found", unknown)


# --- tail -----------------------------------------------------------------------------------------


def test_tail_prints_the_feed_from_a_seq(world: World) -> None:
    proc = world.run("tail")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2"]
    assert lines[0].split()[2:5] == ["completed", world.done, "alpha"]
    assert lines[1].split()[2:] == ["failed", world.failed, "bravo", "disk", "full"]

    proc = world.run("tail", "--from", "1", "--json")
    entries = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["seq"] for e in entries] == [2]
    assert entries[0]["operation_id"] == world.failed
    assert entries[0]["terminal_outcome"]["outcome"] == "failed"

    proc = world.run("tail", "--from", "2")
    assert proc.returncode == 0 and proc.stdout == ""


def test_tail_follow_prints_new_entries_until_interrupted(world: World) -> None:
    proc = world.popen("tail", "--from", "1", "--follow", "--json")
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["seq"] == 2
    world.complete_from_another_thread(world.running, "fresh")
    entry = json.loads(proc.stdout.readline())
    assert entry["seq"] == 3
    assert entry["operation_id"] == world.running
    assert entry["terminal_outcome"]["result"]["content"] == "fresh"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out == "" and err == ""


# --- usage, reachability, keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["ls", "--bogus"],
        ["ls", "--status", "sleeping"],
        ["show"],
        ["show", "not-a-uuid"],
        ["tail", "--from", "-1"],
        ["watch", str(OperationId.new()), "--wait-timeout", "0"],
        ["ls", "--timeout", "soon"],
    ],
)
def test_bad_usage_exits_2(args: list[str]) -> None:
    proc = _run(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_refused_registry_name_is_a_usage_error(world: World) -> None:
    proc = world.run("ls", "--registry", "no spaces allowed")
    assert proc.returncode == 2
    _one_error_line(proc, "registry name")


@pytest.mark.parametrize(
    "command",
    [["ls"], ["show", str(OperationId.new())], ["watch", str(OperationId.new())], ["stats"]],
)
def test_unreachable_server_exits_3_with_one_line(command: list[str]) -> None:
    proc = _run(*command, *UNREACHABLE)
    assert proc.returncode == 3
    assert proc.stdout == ""
    _one_error_line(proc, "unavailable", "tcp://127.0.0.1:9")


def test_options_come_from_flags_as_well_as_environment(world: World) -> None:
    proc = _run(
        "ls",
        "--endpoint",
        world.server.endpoint,
        "--feed-endpoint",
        world.server.feed_endpoint,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 4


def test_keys_creates_certificates_that_a_curve_server_accepts(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    proc = _run("keys", str(keys))
    assert proc.returncode == 0, proc.stderr
    server_secret = keys / "server" / "server.key_secret"
    server_public = keys / "server" / "server.key"
    client_secret = keys / "client" / "client.key_secret"
    allowed = keys / "allowed" / "client.key"
    for path in (server_secret, server_public, client_secret, allowed):
        assert path.is_file(), path
    for secret in (server_secret, client_secret):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert f"--curve-secret {server_secret}" in proc.stdout
    assert f"--curve-allow {keys / 'allowed'}" in proc.stdout

    again = _run("keys", str(keys))
    assert again.returncode == 1
    _one_error_line(again, "already exists")
    before = server_secret.read_text()
    more = _run("keys", str(keys), "--client", "worker2", "--json")
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["new_server_key"] is False
    assert server_secret.read_text() == before
    assert (keys / "allowed" / "worker2.key").is_file()

    sp = ServerProcess(
        tmp_path / "data",
        "--curve-secret",
        str(server_secret),
        "--curve-allow",
        str(keys / "allowed"),
    ).start()
    try:
        base = ["--endpoint", sp.endpoint, "--feed-endpoint", sp.feed_endpoint]
        curve = ["--curve-server", str(server_public), "--curve-cert", str(client_secret)]
        proc = _run("stats", "--json", *base, *curve)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["operation_count"] == 0
        # Without a certificate the server never answers the handshake.
        proc = _run("stats", *base, "--timeout", "0.5")
        assert proc.returncode == 3
        _one_error_line(proc, "unavailable")
    finally:
        assert sp.stop() == 0


@pytest.mark.timeout(120)
def test_demo_runs_to_completion_at_a_reduced_size() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "transport.cli", "demo", "--operations", "200", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["operations"] == 200
    assert sum(summary["outcomes"].values()) == 200
    assert summary["feed_in_order"] is True and summary["feed_entries"] == 200
    assert summary["wait_all_members"] == 50
    assert set(summary["outcomes"]) <= {"completed", "failed", "cancelled", "retired"}
