"""``make bench``: every benchmark in one process tree, then a table and a chart.

Runs the scripts below one after another (each prints one JSON line), writes all lines to
``bench/results/<timestamp>.json``, a table to ``bench/results/latest.md`` and a bar chart
of every figure as a ratio to its baseline to ``bench/results/latest.png``.

    python bench/run_all.py [--quick] [--out DIR] [--only SCRIPT ...]
    python bench/run_all.py --render bench/results/<timestamp>.json   # redraw only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "inprocess.py",
    "durability.py",
    "transport.py",
    "scaling.py",
    "http_calls.py",
    "http_sse.py",
    "dashboard.py",
    "peers/ray_registry.py",
    "peers/dask_futures.py",
]


def run(script: str, quick: bool) -> dict[str, Any]:
    if not (HERE / script).exists():  # a script another branch adds
        return {"bench": bench_name(script), "not_run": f"bench/{script} is missing"}
    cmd = [sys.executable, str(HERE / script), *(["--quick"] if quick else [])]
    print(f"# {script}", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"bench": script, "error": (done.stderr or "no output").strip().splitlines()[-1:]}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def bench_name(script: str) -> str:
    """The ``bench`` name a script reports (its file name, peers prefixed)."""
    stem = Path(script).stem
    return f"peer_{stem.split('_')[0]}" if script.startswith("peers/") else stem


#: rows whose benchmark may not have run: figure -> the ``bench`` it reads
SOURCES = {
    "per-call over HTTP ÷ over ZeroMQ (4 processes)": "http",
    "SSE entries/s to 4 subscribers ÷ 10,000/s": "http_sse",
    "1 s ÷ dashboard first render, 100,000 operations": "dashboard",
}


def _get(d: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def ratios(results: dict[str, dict[str, Any]]) -> list[tuple[str, float | None, str]]:
    """(figure, ratio, what it is compared with)."""
    inproc = results.get("inprocess", {})
    dur = results.get("durability", {})
    tr = results.get("transport", {})
    sc = results.get("scaling", {})
    ray = results.get("peer_ray", {})
    dask = results.get("peer_dask", {})
    web = results.get("http", {})
    sse = results.get("http_sse", {})
    dash = results.get("dashboard", {})
    per_call = _get(tr, "lifecycles_per_s", "per_call", "median")
    pipelined = _get(tr, "lifecycles_per_s", "pipelined", "median")

    def div(a: Any, b: Any) -> float | None:
        return (
            round(a / b, 3)
            if isinstance(a, int | float) and isinstance(b, int | float) and b
            else None
        )

    return [
        ("in-process calls ÷ raw pykka ask (4 threads)",
         _get(inproc, "ratios", "memory", "threads_4", "calls_over_raw", "of_medians"), "≥ 0.5"),
        ("journal FULL ÷ in-memory (8 threads)",
         _get(dur, "ratios", "journal_full_over_memory", "threads_8", "of_medians"), "≥ 0.5"),
        ("journal FULL ÷ naive snapshot-per-terminal (8 threads)",
         _get(dur, "ratios", "journal_full_over_naive_snapshot", "threads_8", "of_medians"), "≥ 5"),
        ("per-call over tcp ÷ raw ZeroMQ+pykka ceiling",
         _get(tr, "ratios", "per_call_over_raw", "of_medians"), "≥ 0.7"),
        ("pipelined over tcp ÷ 10,000 lifecycles/s", div(pipelined, 10_000), "≥ 1"),
        ("scaling: 100k active ÷ 1k active", _get(sc, "largest_over_smallest", "of_medians"), "≥ 0.8"),
        ("per-call over HTTP ÷ over ZeroMQ (4 processes)",
         _get(web, "ratios", "http_over_zmq", "of_medians"), "≥ 0.25"),
        ("SSE entries/s to 4 subscribers ÷ 10,000/s", div(_get(sse, "http", "entries_per_s"), 10_000), "≥ 1"),
        ("1 s ÷ dashboard first render, 100,000 operations",
         div(1000, _get(dash, "first_render_ms", "median")), "≥ 1"),
        ("per-call ÷ Ray actor registry", div(per_call, _get(ray, "lifecycles_per_s", "per_call", "median")), "≥ 7"),
        ("pipelined ÷ Ray pipelined", div(pipelined, _get(ray, "lifecycles_per_s", "pipelined", "median")), "≥ 15"),
        ("per-call ÷ Dask futures", div(per_call, _get(dask, "tasks_per_s", "per_call", "median")), "≥ 10"),
        ("Ray watcher p50 ÷ opsreg watcher p50 (end to end)",
         div(_get(ray, "watcher_latency_us", "from_complete_call", "p50"),
             _get(tr, "watcher_latency_us", "opsreg", "standalone", "from_complete_call", "p50")), "≥ 2"),
    ]  # fmt: skip


def _not_run(result: dict[str, Any] | None) -> bool:
    """Whether a benchmark did not run at all (missing, or left out of a results file)."""
    return result is None or "not_run" in result


def _threshold(target: str) -> float:
    return float(target.removeprefix("≥").strip())


def holds(value: float | None, target: str) -> bool | None:
    return None if value is None else value >= _threshold(target)


def table(results: dict[str, dict[str, Any]], rows: list[tuple[str, float | None, str]]) -> str:
    out = ["| figure | ratio | target | holds |", "|---|---|---|---|"]
    for name, value, target in rows:
        verdict = {None: "n/a", True: "yes", False: "**no**"}[holds(value, target)]
        source = SOURCES.get(name)
        if value is None and source is not None and _not_run(results.get(source)):
            verdict = "not run"
        shown = verdict if verdict == "not run" else "n/a" if value is None else value
        out.append(f"| {name} | {shown} | {target} | {verdict} |")
    out.append("")
    out.append("| benchmark | status |")
    out.append("|---|---|")
    for name, result in results.items():
        if "error" in result:
            status = f"error: {' '.join(result['error'])}"
        elif "not_run" in result:
            status = f"not run ({result['not_run']})"
        elif result.get("installed") is False:
            status = "not installed (`pip install -e .[peers]`)"
        else:
            status = "ok"
        out.append(f"| {name} | {status} |")
    return "\n".join(out) + "\n"


def chart(rows: list[tuple[str, float | None, str]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shown = [(n, v, t) for n, v, t in rows if v is not None]
    if not shown:
        return False
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(shown) + 1.8))
    names = [n for n, _, _ in shown]
    values = [v for _, v, _ in shown]
    colors = ["#2e8b57" if holds(v, t) else "#d9822b" for _, v, t in shown]
    ax.barh(names, values, color=colors)
    ax.set_xscale("log")  # ratios from 0.3 to 40 on one axis
    for i, (_, v, t) in enumerate(shown):
        ax.plot([_threshold(t)] * 2, [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.annotate(f"{v:g}", (v, i), xytext=(4, 0), textcoords="offset points", va="center")
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xlabel(
        "ratio to its baseline (log scale); black tick = target; green holds, orange misses"
    )
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--render", metavar="JSON", help="only redraw latest.md/png from a results file"
    )
    parser.add_argument("--out", metavar="DIR", default=str(HERE / "results"))
    parser.add_argument(
        "--only",
        action="append",
        metavar="SCRIPT",
        help="run only this script of the list (repeatable), e.g. --only http_calls.py",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.only or ()) - set(SCRIPTS))
    if unknown:
        parser.error(f"--only: not in the list: {', '.join(unknown)}")
    out_dir = Path(args.out)
    out_dir.mkdir(exist_ok=True)
    if args.render:
        results = json.loads(Path(args.render).read_text())
        stamp = Path(args.render).stem
    else:
        results = {}
        for script in SCRIPTS:
            if args.only and script not in args.only:
                continue
            result = run(script, args.quick)
            results[str(result.get("bench", script))] = result
        stamp = time.strftime("%Y%m%dT%H%M%S")
        (out_dir / f"{stamp}.json").write_text(json.dumps(results, indent=1) + "\n")
    rows = ratios(results)
    (out_dir / "latest.md").write_text(
        f"# Benchmarks, {stamp}{' (quick)' if args.quick else ''}\n\n" + table(results, rows)
    )
    drew = chart(rows, out_dir / "latest.png")
    print(json.dumps({"bench": "all", "results": str(out_dir / f"{stamp}.json"), "chart": drew}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
