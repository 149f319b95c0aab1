"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium.

The stack is three real processes: ``opsreg serve`` (``ServerProcess``), ``opsreg web`` (a
separate process, so the registry server can be ``kill -9``ed under it) and Chromium. A
background *worker* (a Python ``RegistryClient`` in a thread) registers, runs and ends
operations the whole time, so the page is busy as it would be in use.

Chromium comes from apt (``make test`` installs ``chromium`` and ``chromium-driver`` when
root); nothing is downloaded at run time. Without it these tests FAIL, saying how to install
it; ``OPSREG_SKIP_BROWSER=1`` is the only way to skip them.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import (
    OperationId,
    OperationProgressUpdate,
    OperationResult,
    OperationSpec,
    OpsregError,
)
from tests.transport.conftest import ServerProcess
from tests.web.http_util import GatewayProcess
from transport import RegistryClient

INSTALL_HINT = (
    "the browser tests need Debian's Chromium and its driver (/usr/bin/chromium, "
    "/usr/bin/chromedriver): run `make test` as root, or `sudo apt-get install -y chromium "
    "chromium-driver`; OPSREG_SKIP_BROWSER=1 skips these tests"
)

#: Chromium's flags: headless, and quiet on this closed network (without the networking
#: flags it stalls trying to reach Google's services).
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,900",
)


def browser_paths() -> tuple[str, str]:
    """``(chromium, chromedriver)``; fails (or skips, with ``OPSREG_SKIP_BROWSER=1``)."""
    if os.environ.get("OPSREG_SKIP_BROWSER") == "1":
        pytest.skip("OPSREG_SKIP_BROWSER=1")
    chromium = os.environ.get("OPSREG_CHROMIUM") or shutil.which("chromium")
    driver = os.environ.get("OPSREG_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(INSTALL_HINT, pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("selenium is missing: pip install -e '.[test]'", pytrace=False)
    return chromium, driver


def new_driver(chromium: str, chromedriver: str, profile: str) -> Any:
    """A headless Chromium with its console log kept (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.fixture(scope="session")
def chrome() -> Iterator[Any]:
    """One browser for the browser tests (starting Chromium costs about two seconds)."""
    chromium, chromedriver = browser_paths()
    with tempfile.TemporaryDirectory(prefix="opsreg-chromium-") as profile:
        driver = new_driver(chromium, chromedriver, profile)
        try:
            yield driver
        finally:
            driver.quit()


NAMES = (
    "resize images",
    "embed documents",
    "crawl docs site",
    "transcode video",
    "index repository",
    "summarise thread",
    "render report",
    "sync bucket",
)


class Worker:
    """A background load: registers, starts, reports progress on and ends operations.

    Runs in a thread with its own client; survives a server restart (calls that fail
    while the server is down are counted and skipped).
    """

    def __init__(self, endpoint: str, rate: float = 12.0) -> None:
        self.client = RegistryClient(endpoint, timeout=3.0)
        self.period = 1.0 / rate
        self.rng = random.Random(14)
        self.live: list[OperationId] = []
        self.count = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dash-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.step()
            except OpsregError:
                self.errors += 1

    def step(self) -> None:
        c, rng = self.client, self.rng
        self.count += 1
        name = f"{rng.choice(NAMES)} #{self.count:04d}"
        spec = OperationSpec(owner_session_id=f"worker-{rng.randint(1, 3)}", display_name=name)
        c.register_operation(spec)
        if rng.random() < 0.9:
            c.provisioning_succeeded(spec.id)
            self.live.append(spec.id)
            c.report_progress(spec.id, OperationProgressUpdate("fetching inputs", 10.0))
        if len(self.live) > 12:
            op = self.live.pop(rng.randrange(len(self.live)))
            c.report_progress(op, OperationProgressUpdate("writing outputs", 90.0))
            roll = rng.random()
            if roll < 0.72:
                ms = rng.randint(80, 4000)
                c.complete_operation(
                    op, OperationResult(content=f"ok: {ms // 10} items", duration_ms=ms)
                )
            elif roll < 0.9:
                c.fail_operation(op, failure(rng))
            else:
                c.cancel_operation(op, "superseded by a newer run")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()


def failure(rng: random.Random) -> BaseException:
    """A real exception with a traceback, as a worker would report it."""
    try:
        int(f"row {rng.randint(1, 999)}")
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


class Stack:
    """The server, the gateway, a Python client and the background worker."""

    def __init__(self, tmp: Path) -> None:
        self.server = ServerProcess(tmp / "data", "--max-completed", "5000").start()
        self.gateway = GatewayProcess(
            self.server.endpoint, self.server.feed_endpoint, tmp / "web.ready.json"
        )
        self.client = RegistryClient(self.server.endpoint, timeout=5.0)
        self.worker: Worker | None = None

    def start_worker(self) -> Worker:
        self.worker = Worker(self.server.endpoint)
        return self.worker

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.client.close()
        self.gateway.stop()
        self.server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("dash"))
    try:
        yield s
    finally:
        s.close()
