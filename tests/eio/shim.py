"""The disk-fault shim (``eio_shim.c``), built by gcc once per test session (skipped without gcc).

Test modules that use it import the fixture: ``from tests.eio.shim import eio_shim``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SHIM_SOURCE = Path(__file__).with_name("eio_shim.c")


@pytest.fixture(scope="session")
def eio_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the LD_PRELOAD EIO shim")
    out = tmp_path_factory.mktemp("eio") / "eio_shim.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return out
