"""A pool whose worker processes die while starting fails once, clearly, and cleans up.

Each case is a real script file run as its own Python process (as a user runs one):
under the spawn start method every worker imports the script again as its main module.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actors import OperationStatus
from transport import RegistryClient, RegistryServer

pytestmark = pytest.mark.timeout(120)

HEAD = """\
import sys
from transport.workers import WorkerPool, WorkerStartError

endpoint, runs = sys.argv[1], sys.argv[2]
with open(runs, "a") as f:
    f.write("ran\\n")


def square(x):
    return x * x


"""

POOL = """\
pool = WorkerPool(endpoint, processes=2, owner_session_id="start-failure")
try:
    pool.submit(square, 3).result(timeout=60)
    print("UNEXPECTED: the call ran")
except WorkerStartError as exc:
    print("ERROR:", exc)
try:
    pool.submit(square, 4)
    print("UNEXPECTED: a broken pool took a call")
except WorkerStartError:
    print("REFUSED")
print("start_failures", pool.start_failures, "replaced", pool.replaced)
pool.close()
"""

#: no ``__main__`` guard: each worker re-runs the script and would start a pool of its own
NO_GUARD = HEAD + POOL
#: guarded, but importing the script fails in a worker (as a missing module would)
IMPORT_ERROR = (
    HEAD
    + 'if __name__ != "__main__":\n    raise ImportError("no module named \'missing\'")\n'
    + 'if __name__ == "__main__":\n'
    + textwrap.indent(POOL, "    ")
)


def run_script(tmp_path: Path, server: RegistryServer, source: str) -> tuple[str, int]:
    script = tmp_path / "user_script.py"
    script.write_text(source)
    runs = tmp_path / "runs.txt"
    proc = subprocess.run(
        [sys.executable, str(script), server.endpoint, str(runs)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    assert "UNEXPECTED" not in proc.stdout, proc.stdout
    return proc.stdout, len(runs.read_text().splitlines())


def assert_nothing_left_running(server: RegistryServer) -> None:
    with RegistryClient(server.endpoint, timeout=10) as cli:
        ops = cli.list_operations(owner_session_id="start-failure")
    assert ops, "the pool registered its call"
    assert all(op.status is OperationStatus.FAILED for op in ops), ops


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        (NO_GUARD, 'put the code that creates the pool under `if __name__ == "__main__":`'),
        (IMPORT_ERROR, "a worker process ended (exit code 1) before it could run a task"),
    ],
    ids=["no-main-guard", "import-error"],
)
def test_workers_that_die_while_starting_break_the_pool_once(
    tmp_path: Path, server: RegistryServer, source: str, cause: str
) -> None:
    out, runs = run_script(tmp_path, server, source)
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, out
    assert errors[0].startswith("ERROR: worker processes could not start (3 start failures): ")
    assert cause in errors[0]
    assert "REFUSED" in out
    # Bounded: 2 workers, then at most one respawn per start failure before the third.
    failures, replaced = (int(w) for w in out.split("start_failures")[1].split()[::2])
    assert failures == 3
    assert replaced <= 2
    assert runs <= 1 + 2 + 2  # the script itself, then each worker that imported it
    assert_nothing_left_running(server)
