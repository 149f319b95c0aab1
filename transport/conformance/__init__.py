"""A wire-level conformance suite: does a server at ENDPOINT speak opsreg's protocol?

The suite opens its own DEALER (and SUB, for the feed) and speaks raw frames
built with :mod:`transport.codec`'s encoders, never ``RegistryClient`` or
``FeedSubscriber``; it is derived from the method table (``actors.calls``: ``METHODS``,
``CHANGES_STATE``, ``FUTURE``), so a method added to the table and not to
the suite is reported as a failure. It runs in a fresh registry named
``conformance-<random>`` unless told otherwise, so pointing it at a live
server touches no real data.

>>> report = run("tcp://127.0.0.1:5555", timeout=0.05)  # doctest: +SKIP
>>> report.failed
0

``opsreg conformance ENDPOINT [--feed-endpoint URL] [--registry NAME] [--json]``
prints one line per check and ``N passed, M failed``; it exits 0 only if no
check failed (a check that does not apply, such as ``MaxConcurrentExceeded``
on a server without a limit, is skipped with a note).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors import calls
from transport.conformance._errors import ERROR_CHECKS
from transport.conformance._feed import FEED_CHECKS
from transport.conformance._frames import FRAME_CHECKS
from transport.conformance._lifecycle import SUCCESS_CHECKS, TAIL_CHECKS
from transport.conformance._session import Session
from transport.conformance._wire import CheckFailed, Skip, expect

__all__ = ["CHECKS", "CheckResult", "Report", "add_arguments", "command", "run"]

Check = Callable[[Session], "str | None"]


def _every_method(s: Session) -> str:
    missing = sorted(set(calls.METHODS) - s.exercised)
    expect(not missing, f"never answered successfully: {', '.join(missing)}")
    return f"{len(calls.METHODS)} methods"


#: every check, in the order it runs (later ones build on the state earlier ones left)
CHECKS: list[tuple[str, Check]] = [
    *SUCCESS_CHECKS,
    *ERROR_CHECKS,
    *FRAME_CHECKS,
    *FEED_CHECKS,
    *TAIL_CHECKS,
    ("method table: every method answered on its success path", _every_method),
]


@dataclass(frozen=True)
class CheckResult:
    name: str
    #: "pass", "fail" or "skip"
    result: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    endpoint: str
    registry: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.result == "pass" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.result == "fail" for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.result == "skip" for r in self.results)

    def summary(self) -> str:
        text = f"{self.passed} passed, {self.failed} failed"
        return text + (f", {self.skipped} skipped" if self.skipped else "")

    def as_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "registry": self.registry,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "checks": [
                {"name": r.name, "result": r.result, "detail": r.detail, "seconds": r.seconds}
                for r in self.results
            ],
        }


def run(
    endpoint: str,
    feed_endpoint: str | None = None,
    registry: str | None = None,
    *,
    timeout: float = 5.0,
    on_result: Callable[[CheckResult], None] | None = None,
) -> Report:
    """Run every check against the server at ``endpoint``; ``on_result`` sees each as it ends."""
    session = Session(endpoint, feed_endpoint, registry, timeout)
    report = Report(endpoint, session.registry)
    try:
        for name, check in CHECKS:
            if report.results and report.results[0].result == "fail":
                result = CheckResult(name, "fail", "not run: the server did not answer a ping")
            else:
                result = _run_one(session, name, check)
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        session.close()
    return report


def _run_one(session: Session, name: str, check: Check) -> CheckResult:
    started = time.monotonic()
    try:
        detail = check(session) or ""
        outcome = "pass"
    except Skip as exc:
        detail, outcome = str(exc), "skip"
    except CheckFailed as exc:
        detail, outcome = str(exc), "fail"
    except Exception as exc:  # a reply the suite could not even read is a failure too
        detail, outcome = f"{type(exc).__name__}: {exc}", "fail"
    return CheckResult(name, outcome, detail, round(time.monotonic() - started, 3))


# --- the `opsreg conformance` subcommand (the CLI only wires these in) --------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", metavar="ENDPOINT", help="the server's request endpoint")
    parser.add_argument(
        "--feed-endpoint", metavar="URL", help="the server's feed endpoint (else: feed skipped)"
    )
    parser.add_argument(
        "--registry",
        metavar="NAME",
        help="run in this registry (default: a fresh conformance-<random> one). Its live "
        "operations are terminated and its ended ones collected",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="wait per reply"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary")


_MARKS = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}


def command(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """Run the suite for the CLI, writing through ``out``; 0 only if nothing failed."""

    def line(r: CheckResult) -> None:
        out(f"{_MARKS[r.result]} {r.name}" + (f": {r.detail}" if r.detail else ""))

    report = run(
        args.endpoint,
        args.feed_endpoint,
        args.registry,
        timeout=args.timeout,
        on_result=None if args.json else line,
    )
    if args.json:
        out(json.dumps(report.as_json()))
    else:
        out(report.summary())
    return 0 if report.failed == 0 else 1
