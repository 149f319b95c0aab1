"""``bench/http_calls.py`` (HTTP ÷ ZeroMQ per call) at its quick size, and its rows in ``make bench``.

Figures are not asserted (speed is measured by the benchmarks, not by the suite); what is
checked is that the run alternates the two ways, measures both in every round and reports
the ratio and the latencies it promises (docs/performance.md, "HTTP").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.transport.conftest import ROOT


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_http_bench_quick_alternates_the_ways_and_reports_the_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "bench/http_calls.py", "--quick", "--seconds", "0.5", "--latency-n", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout[-2000:]
    result = json.loads(lines[0])
    assert result["bench"] == "http"
    assert result["workers"] == 4
    assert result["order"] == ["zmq", "http"] * 3
    for way in ("zmq", "http"):
        rounds = result["lifecycles_per_s"][way]["rounds"]
        assert len(rounds) == 3 and all(r > 0 for r in rounds), result["lifecycles_per_s"]
        latency = result["latency_us"][way]
        assert latency["standalone"]["n"] == 60  # 20 lifecycles, 3 calls each
        assert latency["under_load"]["n"] > 0
        assert latency["standalone"]["p50"] <= latency["standalone"]["p99"]
    assert result["ratios"]["http_over_zmq"]["of_medians"] > 0
    assert result["cpu_us_per_lifecycle"]["http"]["gateway"]["median"] >= 0


@pytest.mark.timeout(120)
def test_run_all_shows_the_http_rows_and_says_not_run_for_a_missing_bench(
    tmp_path: Path,
) -> None:
    results = {
        "http": {"ratios": {"http_over_zmq": {"of_medians": 0.31}}},
        "http_sse": {"http": {"entries_per_s": 12_500.0}},
        "dashboard": {"not_run": "bench/dashboard.py is missing"},
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
    assert "| per-call over HTTP ÷ over ZeroMQ (4 processes) | 0.31 | ≥ 0.25 | yes |" in table
    assert "| SSE entries/s to 4 subscribers ÷ 10,000/s | 1.25 | ≥ 1 | yes |" in table
    row = "| 1 s ÷ dashboard first render, 100,000 operations | not run | ≥ 1 | not run |"
    assert row in table
    assert "| dashboard | not run (bench/dashboard.py is missing) |" in table


def test_run_all_runs_the_http_scripts_and_tolerates_a_missing_one() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run_all
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert {"http_calls.py", "http_sse.py", "dashboard.py"} <= set(run_all.SCRIPTS)
    missing = run_all.run("no_such_bench.py", quick=True)
    assert missing == {"bench": "no_such_bench", "not_run": "bench/no_such_bench.py is missing"}


def test_the_gateway_parses_http_with_httptools() -> None:
    """The gateway leaves uvicorn's parser on "auto", which takes httptools (a dependency,
    pyproject.toml) over the pure-Python h11 when it is installed: about 40% less gateway
    CPU per call (docs/performance.md, "HTTP"). Without it the gateway still works, slower."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
        raise AssertionError("not called")

    config = uvicorn.Config(app, lifespan="off", log_config=None)
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol


@pytest.mark.timeout(60)
def test_run_all_only_refuses_a_script_not_in_its_list(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/run_all.py", "--only", "nope.py", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 2
    assert "--only: not in the list: nope.py" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing ran, nothing written
