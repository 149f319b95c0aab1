"""The chaos run at reduced size: kill -9 of the server, workers and subscribers, a
stopped subscriber and injected commit failures; nothing acknowledged may be lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.transport.conftest import ROOT


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", [1, 2])
def test_chaos_loses_nothing(seed: int) -> None:
    seconds = os.environ.get("OPSREG_CHAOS_SECONDS", "7")
    done = subprocess.run(
        [sys.executable, "bench/chaos.py", "--seconds", seconds, "--seed", str(seed)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["lost"] == 0, result
    assert result["feed_seqs_contiguous"], result
    assert all(s["gap_free"] and s["caught_up"] for s in result["subscribers"]), result
    assert all(s["same_seqs_as_registry"] for s in result["subscribers"]), result
    assert result["acknowledged_have_seqs"], result
    assert result["watchers_hung"] == 0, result
    assert result["barriers"]["hung"] == 0, result
    assert result["faults_total"] > 0 and result["acknowledged"] > 0, result
    assert done.returncode == 0, result["summary"]
