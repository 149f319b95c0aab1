"""Every ```python block of README.md runs, as written, against a real server process.

The blocks are extracted from the file (so the README cannot rot) and each runs in its
own subprocess from a temporary file (so a ``WorkerPool`` block's worker processes can
import it, and its ``if __name__ == "__main__":`` guard means what it says), with the
repository on ``PYTHONPATH``, a fresh temporary working directory and a timeout. The
README's endpoints are the server's defaults (``tcp://127.0.0.1:5555`` for requests,
``tcp://127.0.0.1:5556`` for the feed): the test **substitutes those strings** with the
endpoints of an ``opsreg serve`` process on free ports. That server keeps 1,024 feed
entries and has completed more than that before the blocks run (a subscriber that
started at seq 0 would raise ``FeedGap``). A block that is not meant to run must not be
marked ``python`` (use ``text``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import background_spec, result_for
from tests.transport.conftest import ROOT, ServerProcess
from transport import RegistryClient

pytestmark = pytest.mark.timeout(180)

README = ROOT / "README.md"
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_FEED_ENDPOINT = "tcp://127.0.0.1:5556"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("readme") / "data"
    sp = ServerProcess(data, "--max-completed", "1", "--synchronous", "normal").start()
    try:
        with RegistryClient(sp.endpoint, timeout=30) as cli:
            futures = []
            for i in range(1100):
                spec = background_spec(f"before-{i}")
                futures.append(cli.submit("register_operation", spec))
                futures.append(cli.submit("provisioning_succeeded", spec.id))
                futures.append(cli.submit("complete_operation", spec.id, result_for(spec.id)))
            for f in futures:
                f.get(timeout=60)
        yield sp
    finally:
        sp.stop()


def test_the_readme_has_python_blocks() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 4, "the README's examples were not found"
    for block in blocks:
        compile(block, "README.md", "exec")  # each is a whole program


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_a_readme_block_runs(index: int, busy: ServerProcess, tmp_path: Path) -> None:
    code = (
        python_blocks()[index]
        .replace(DEFAULT_ENDPOINT, busy.endpoint)
        .replace(DEFAULT_FEED_ENDPOINT, busy.feed_endpoint)
    )
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"README block {index} failed:\n{code}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip(), f"README block {index} printed nothing"
