"""Every benchmark runs at a tiny size and prints one JSON line (figures are not asserted:
speed is measured by the benchmarks themselves, not by the test suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.transport.conftest import ROOT

TINY = {
    "inprocess.py": ["--quick", "--n", "200", "--repeat", "1"],
    "durability.py": ["--quick", "--tiny", "--n", "80", "--n-naive", "16", "--repeat", "1"],
    "transport.py": [
        "--quick", "--n", "200", "--pipelined-n", "800", "--burst", "400",
        "--probes", "20", "--repeat", "1",
    ],
    "scaling.py": ["--sizes", "100,500", "--n", "200", "--repeat", "1"],
    "flood.py": ["--quick"],
    "waits.py": ["--quick"],
    "bitflip.py": ["--trials", "10"],
    "field_caps.py": ["--n", "50"],
    "connection_cap.py": ["--quick"],
    "soak.py": ["--n", "2000", "--sample-every", "0.5"],
    "chaos.py": ["--seconds", "3", "--seed", "5"],
    "peers/ray_registry.py": ["--quick", "--n", "40", "--repeat", "1"],
    "peers/dask_futures.py": ["--quick", "--n", "40", "--repeat", "1"],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_at_a_tiny_size(script: str) -> None:
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *TINY[script]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout[-2000:]
    result = json.loads(lines[0])
    assert isinstance(result, dict) and result.get("bench"), result


@pytest.mark.timeout(120)
def test_run_all_renders_a_table_with_verdicts_from_results(tmp_path: Path) -> None:
    results = {
        "transport": {
            "lifecycles_per_s": {"per_call": {"median": 2000.0}, "pipelined": {"median": 12_000.0}},
            "ratios": {"per_call_over_raw": {"of_medians": 0.4}},
        },
        "peer_ray": {"installed": False},
    }
    source = tmp_path / "20990101T000000.json"
    source.write_text(json.dumps(results))
    done = subprocess.run(
        [sys.executable, "bench/run_all.py", "--render", str(source), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = (tmp_path / "latest.md").read_text()
    assert "| pipelined over tcp ÷ 10,000 lifecycles/s | 1.2 | ≥ 1 | yes |" in table
    assert "| per-call over tcp ÷ raw ZeroMQ+pykka ceiling | 0.4 | ≥ 0.7 | **no** |" in table
    assert "| per-call ÷ Ray actor registry | n/a | ≥ 7 | n/a |" in table
    assert "| peer_ray | not installed" in table
