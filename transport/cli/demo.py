"""The walk-through subcommands: demo (server, worker pool, subscriber) and example."""

from __future__ import annotations

import argparse
import json

from transport.cli.common import EXIT_FAILED, EXIT_OK


def demo(args: argparse.Namespace) -> int:
    """A server, a 4-process pool and a subscriber; a live progress bar, then a summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from transport.demo import run_demo

    console = Console(stderr=args.json)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=args.json,
    ) as bar:
        task = bar.add_task("completions on the feed", total=args.operations)
        report = run_demo(
            args.operations,
            args.processes,
            on_progress=lambda done, total: bar.update(task, completed=done),
        )
    if args.json:
        print(
            json.dumps(
                {
                    "operations": report.operations,
                    "outcomes": dict(report.outcomes),
                    "seconds": round(report.seconds, 3),
                    "throughput_per_s": round(report.throughput, 1),
                    "watcher_latency_ms": {
                        "p50": report.latency(0.5),
                        "p99": report.latency(0.99),
                    },
                    "feed_entries": report.feed_entries,
                    "feed_in_order": report.feed_in_order,
                    "wait_all_members": report.wait_all_members,
                }
            )
        )
    else:
        table = Table(title="opsreg demo")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for name, value in report.rows():
            table.add_row(name, value)
        console.print(table)
    return EXIT_OK if report.feed_in_order else EXIT_FAILED


def example(_: argparse.Namespace) -> int:
    from transport.example import run_example

    run_example(print)
    return 0
