"""A real browser's ``EventSource`` on the SSE feed: it resumes with ``Last-Event-ID``.

Headless Chromium through Selenium, as the dashboard's tests start it
(tests/web/browser/conftest.py: it fails without Chromium unless OPSREG_SKIP_BROWSER=1). The gateway stops
(its streams end cleanly, so the browser reconnects after ``retry: 1000``), completions
go on meanwhile, and a new gateway on the same port is what the browser reconnects to:
the page must hold every seq exactly once, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.transport.conftest import ServerProcess
from tests.web.browser.conftest import browser_paths, new_driver
from tests.web.sse_util import Gateway
from tests.web.test_sse import FEED, produce
from transport.web.config import GatewayConfig

PAGE = """
window.got = []; window.hellos = []; window.opens = 0;
const es = new EventSource('%s?after=0');
es.onopen = () => { window.opens += 1; };
es.addEventListener('hello', e => window.hellos.push(JSON.parse(e.data)));
es.addEventListener('completion', e => window.got.push(Number(e.lastEventId)));
window.es = es;
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium, chromedriver = browser_paths()
    driver = new_driver(chromium, chromedriver, str(tmp_path / "profile"))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(browser: Any, script: str, timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script(script)
    )


def test_event_source_resumes_after_the_gateway_restarts(tmp_path: Path, browser: Any) -> None:
    server = ServerProcess(tmp_path / "data").start()

    def config(port: int) -> GatewayConfig:
        return GatewayConfig(
            endpoint=server.endpoint, feed_endpoint=server.feed_endpoint, port=port
        )

    gateway = Gateway(config(0)).start()
    try:
        produce(server, 100)
        browser.get(f"http://127.0.0.1:{gateway.port}/healthz")  # the page's origin
        browser.execute_script(PAGE % FEED)
        _wait(browser, "return window.got.length >= 100")
        gateway.stop()  # the stream ends cleanly: the browser will reconnect
        produce(server, 100)  # completed while no gateway is there
        gateway = Gateway(config(gateway.port)).start()
        _wait(browser, "return window.got.length >= 200")
        produce(server, 50)
        _wait(browser, "return window.got.length >= 250")
        got = browser.execute_script("return window.got")
        assert got == list(range(1, 251))
        hellos = browser.execute_script("return window.hellos")
        assert hellos[0] == {"watermark": 100, "after": 0}
        assert hellos[-1]["after"] == 100  # the reconnect sent Last-Event-ID: 100
        browser.execute_script("window.es.close()")
    finally:
        gateway.stop()
        server.stop()
