"""The dashboard in headless Chromium against real ``opsreg serve`` and ``opsreg web`` processes.

One page is opened and kept (no reloads after the first load: the page must follow the
registry by itself). Every wait is a ``WebDriverWait`` on a condition; every test ends by
checking the browser console for errors.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import Cancelled, OperationProgressUpdate, OperationResult, OperationSpec
from actors.calls import METHODS
from tests.transport.conftest import ROOT, ServerProcess
from tests.web.browser.conftest import GatewayProcess, Stack, failure
from transport import RegistryClient

SCREENSHOT = ROOT / "docs" / "dashboard.png"

#: What the console may show while the registry server is down on purpose: the browser's own
#: line for a read answered 503 (the page itself logs nothing).
EXPECTED_WHILE_DOWN = ("status of 503",)
#: A registry without ``progress_log`` answers the page's one request for it 404
#: ``UnknownMethod`` (the page then shows the last update only, and does not ask again).
EXPECTED_ALWAYS = () if "progress_log" in METHODS else ("/progress_log - ",)


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.02).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def conn_text(driver: Any) -> str:
    return str(js(driver, "return document.getElementById('conn').textContent"))


def row_status(driver: Any, op_id: str) -> str | None:
    return js(  # type: ignore[no-any-return]
        driver,
        'const r = document.querySelector(`#ops-body tr[data-id="${arguments[0]}"]`);'
        "return r ? r.dataset.status : null;",
        op_id,
    )


def stream_rows(driver: Any) -> list[tuple[int, str]]:
    """The completion stream as shown, oldest first: ``(seq, operation id)``."""
    rows = js(
        driver,
        "return [...document.querySelectorAll('#stream li[data-seq]')]"
        ".map(li => [Number(li.dataset.seq), li.dataset.id]);",
    )
    return [(int(s), str(i)) for s, i in reversed(rows)]


def severe(driver: Any, allowed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """SEVERE console entries since the last call, less network lines matching ``allowed``."""
    return [
        e
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE"
        and not (e.get("source") == "network" and any(a in e["message"] for a in allowed))
    ]


def open_dashboard(driver: Any, stack: Stack) -> None:
    if not driver.current_url.startswith(f"{stack.gateway.url}/"):
        driver.get(f"{stack.gateway.url}/")
    await_page(driver)


def await_page(driver: Any) -> None:
    """Wait for the page to have rendered its table and opened its feed."""
    wait_for(
        driver,
        lambda d: js(d, "return document.body.dataset.rendered === '1'"),
        20,
        "the first table render",
    )
    wait_for(driver, lambda d: conn_text(d) == "live", 20, "the feed to be live")


def start_op(stack: Stack, name: str) -> OperationSpec:
    spec = OperationSpec(owner_session_id="browser-test", display_name=name)
    stack.client.register_operation(spec)
    stack.client.provisioning_succeeded(spec.id)
    return spec


@pytest.fixture(autouse=True)
def _console_clean(chrome: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    severe(chrome, EXPECTED_WHILE_DOWN + EXPECTED_ALWAYS)  # drop what came before
    yield
    allowed = EXPECTED_ALWAYS + (EXPECTED_WHILE_DOWN if "kill9" in request.node.name else ())
    assert severe(chrome, allowed) == []


def table_names(driver: Any) -> list[str]:
    return js(  # type: ignore[no-any-return]
        driver,
        "return [...document.querySelectorAll('#ops-body tr')].map(r => r.cells[0].textContent)",
    )


def row_ids(driver: Any) -> list[str]:
    return js(
        driver, "return [...document.querySelectorAll('#ops-body tr')].map(r => r.dataset.id)"
    )  # type: ignore[no-any-return]


def type_into(driver: Any, element_id: str, text: str) -> None:
    box = driver.find_element("id", element_id)
    box.clear()
    if text:
        box.send_keys(text)
    else:  # clear() sets the value without an input event: the page would not notice
        js(driver, "arguments[0].dispatchEvent(new Event('input'))", box)


def choose(driver: Any, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


@pytest.mark.timeout(60)
def test_page_loads_and_renders_the_table(chrome: Any, stack: Stack) -> None:
    specs = [start_op(stack, f"test: table check {i:02d}") for i in range(12)]
    for spec in specs[:4]:
        stack.client.complete_operation(spec.id, OperationResult(content="ok"))
    stack.client.fail_operation(specs[4].id, "boom")
    stack.client.report_progress(specs[5].id, OperationProgressUpdate("halfway", 50.0))
    stack.start_worker()
    open_dashboard(chrome, stack)
    assert js(chrome, "return window.opsregDash.firstRenderMs") > 0
    shown = table_names(chrome)
    assert shown and shown == sorted(shown)  # the server's order (names are unique here)
    # The name search (a prefix, served by the registry's order).
    type_into(chrome, "f-name", "test: table")
    wanted = [s.display_name for s in specs]
    wait_for(chrome, lambda d: table_names(d) == wanted, 20, "the search's rows")
    statuses = [row_status(chrome, s.id) for s in specs[:6]]
    assert statuses == ["completed"] * 4 + ["failed", "running"]
    progress = chrome.find_element("css selector", f'#ops-body tr[data-id="{specs[5].id}"]')
    assert "halfway" in progress.text
    # A status filter on top of it.
    choose(chrome, "f-status", "completed")
    wait_for(chrome, lambda d: table_names(d) == wanted[:4], 20, "the completed ones")
    choose(chrome, "f-status", "")
    type_into(chrome, "f-name", "")
    wait_for(chrome, lambda d: len(table_names(d)) > 12, 20, "every operation again")


@pytest.mark.timeout(60)
def test_pages_by_cursor(chrome: Any, stack: Stack) -> None:
    open_dashboard(chrome, stack)
    wait_for(chrome, lambda d: len(table_names(d)) > 30, 20, "more than 30 operations")
    choose(chrome, "f-limit", "25")
    wait_for(chrome, lambda d: len(table_names(d)) == 25, 20, "a page of 25")
    first = table_names(chrome)
    chrome.find_element("id", "next").click()
    wait_for(
        chrome,
        lambda d: d.find_element("id", "page-info").text.startswith("page 2"),
        20,
        "page 2",
    )
    second = table_names(chrome)
    assert second and second == sorted(second) and second[0] > first[-1]
    chrome.find_element("id", "prev").click()
    wait_for(
        chrome,
        lambda d: d.find_element("id", "page-info").text.startswith("page 1"),
        20,
        "page 1 again",
    )
    assert not chrome.find_element("id", "prev").is_enabled()
    choose(chrome, "f-limit", "100")
    wait_for(chrome, lambda d: len(table_names(d)) > 25, 20, "a page of 100")


@pytest.mark.timeout(60)
def test_sorting_by_another_column_sorts_the_loaded_page(chrome: Any, stack: Stack) -> None:
    open_dashboard(chrome, stack)
    header = 'th[data-sort="{}"]'

    def statuses(d: Any) -> list[str]:
        return js(
            d, "return [...document.querySelectorAll('#ops-body tr')].map(r => r.dataset.status)"
        )  # type: ignore[no-any-return]

    js(chrome, f"document.querySelector('{header.format('status')}').click()")
    wait_for(
        chrome,
        lambda d: "within this page" in d.find_element("id", "sort-note").text,
        20,
        "the note",
    )
    shown = statuses(chrome)
    assert len(set(shown)) > 1 and shown == sorted(shown)
    # "created" is an order the registry pages in: newest first, then oldest first (by id,
    # a UUIDv7, so by registration time)
    js(chrome, f"document.querySelector('{header.format('created_at_ms')}').click()")
    wait_for(
        chrome,
        lambda d: d.find_element("id", "sort-note").text.startswith("newest first"),
        20,
        "newest",
    )
    wait_for(chrome, lambda d: (ids := row_ids(d)) == sorted(ids, reverse=True), 20, "newest rows")
    js(chrome, f"document.querySelector('{header.format('created_at_ms')}').click()")
    wait_for(
        chrome,
        lambda d: d.find_element("id", "sort-note").text.startswith("oldest first"),
        20,
        "oldest",
    )
    wait_for(chrome, lambda d: (ids := row_ids(d)) == sorted(ids), 20, "oldest rows")
    js(chrome, f"document.querySelector('{header.format('display_name')}').click()")
    wait_for(
        chrome, lambda d: "server order" in d.find_element("id", "sort-note").text, 20, "the note"
    )
    names = table_names(chrome)
    assert names == sorted(names)


@pytest.mark.timeout(60)
def test_a_completion_shows_within_a_second_without_reload(chrome: Any, stack: Stack) -> None:
    open_dashboard(chrome, stack)
    spec = start_op(stack, "test: live completion")
    # Its name as the search: the worker keeps adding operations, and by name a new one
    # may sort past the first page after a slow start.
    type_into(chrome, "f-name", spec.display_name)
    wait_for(chrome, lambda d: row_status(d, spec.id) == "running", 20, "the new row")
    loads = js(chrome, "return performance.getEntriesByType('navigation').length")
    began = time.time()
    stack.client.complete_operation(spec.id, OperationResult(content="done"))
    wait_for(chrome, lambda d: row_status(d, spec.id) == "completed", 5, "the completed row")
    shown_at_ms = js(
        chrome,
        'return Number(document.querySelector(`#ops-body tr[data-id="${arguments[0]}"]`)'
        ".dataset.updatedAt)",
        spec.id,
    )
    assert shown_at_ms / 1000 - began < 1.0
    assert spec.id in {op for _, op in stream_rows(chrome)}
    assert js(chrome, "return performance.getEntriesByType('navigation').length") == loads
    type_into(chrome, "f-name", "")


@pytest.mark.timeout(60)
def test_the_cancel_button_cancels(chrome: Any, stack: Stack) -> None:
    open_dashboard(chrome, stack)
    spec = start_op(stack, "test: cancel me")
    # Its name as the search: the worker keeps adding operations, and by name a new one
    # may sort past the first page after a slow start.
    type_into(chrome, "f-name", spec.display_name)
    wait_for(chrome, lambda d: row_status(d, spec.id) == "running", 20, "the new row")
    watch = stack.client.register_watcher(spec.id)
    # (clicked from the page: the row is re-rendered every 2 s, a held element goes stale)
    js(chrome, 'document.querySelector(`#ops-body tr[data-id="${arguments[0]}"]`).click()', spec.id)
    button = chrome.find_element("id", "d-cancel")
    wait_for(chrome, lambda d: button.is_displayed() and button.is_enabled(), 20, "the button")
    button.click()
    outcome = watch.get(timeout=10)
    assert outcome == Cancelled(reason="cancelled from the dashboard")
    assert stack.client.snapshot(spec.id).status == "cancelled"
    wait_for(chrome, lambda d: row_status(d, spec.id) == "cancelled", 20, "the cancelled row")
    wait_for(
        chrome,
        lambda d: "cancelled" in d.find_element("id", "d-timeline").text,
        20,
        "the timeline's outcome",
    )
    chrome.find_element("id", "d-close").click()
    type_into(chrome, "f-name", "")


@pytest.mark.timeout(60)
def test_an_operations_timeline(chrome: Any, stack: Stack) -> None:
    """Registered, started, its progress updates, and the failure with its traceback."""
    open_dashboard(chrome, stack)
    spec = start_op(stack, "test: timeline")
    for i in range(1, 4):
        stack.client.report_progress(spec.id, OperationProgressUpdate(f"step {i} of 3", i * 33.0))
    stack.client.fail_operation(spec.id, failure(random.Random(3)))
    chrome.get(f"{stack.gateway.url}/#op={spec.id}")  # an operation's own address
    await_page(chrome)
    timeline = chrome.find_element("id", "d-timeline")
    wait_for(chrome, lambda d: "failed" in timeline.text, 20, "the timeline")
    text = timeline.text
    kept = ["step 1 of 3", "step 2 of 3"] if "progress_log" in METHODS else []
    events = ["registered", "started", *kept, "step 3 of 3", "failed", "Traceback", "ValueError"]
    at = [text.find(word) for word in events]
    assert -1 not in at and at == sorted(at), text
    assert not chrome.find_element("id", "d-cancel").is_enabled()
    chrome.find_element("id", "d-close").click()


@pytest.mark.timeout(60)
def test_screenshot_of_a_busy_page(chrome: Any, stack: Stack) -> None:
    """docs/dashboard.png: a few dozen operations in mixed states and the charts drawn."""
    open_dashboard(chrome, stack)
    wait_for(
        chrome,
        lambda d: js(d, "return document.querySelectorAll('#chart-rate rect').length") >= 6,
        30,
        "six seconds of completions in the chart",
    )
    wait_for(
        chrome,
        lambda d: js(d, "return document.querySelectorAll('#ops-body tr').length") >= 40,
        20,
        "forty rows",
    )
    assert stack.worker is not None and stack.worker.errors == 0
    js(chrome, "document.querySelector('.table-wrap').scrollTop = 0")
    chrome.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


@pytest.mark.timeout(60)
def test_a_gateway_with_a_token_asks_for_it_once(chrome: Any, stack: Stack, tmp_path: Path) -> None:
    """Reads closed by token: the page asks, keeps it for the tab, and the feed flows."""
    token = "browser-test-token-0123456789"
    (tmp_path / "token").write_text(token + "\n")
    gateway = GatewayProcess(
        stack.server.endpoint,
        stack.server.feed_endpoint,
        tmp_path / "web.ready.json",
        *("--http-token-file", str(tmp_path / "token"), "--http-reads", "token"),
    )
    spec = start_op(stack, "test: seen through the token")
    try:
        chrome.get(f"{gateway.url}/")
        box = chrome.find_element("id", "auth-token")
        wait_for(chrome, lambda d: box.is_displayed(), 20, "the token form")
        box.send_keys(token)
        chrome.find_element("css selector", "#auth-form button").click()
        wait_for(chrome, lambda d: conn_text(d) == "live", 20, "the feed, with the token")
        type_into(chrome, "f-name", spec.display_name)
        wait_for(chrome, lambda d: row_status(d, spec.id) == "running", 20, "its row")
        stack.client.complete_operation(spec.id, OperationResult(content="ok"))
        wait_for(chrome, lambda d: spec.id in {op for _, op in stream_rows(d)}, 20, "its entry")
        chrome.refresh()  # the same tab: the token is kept, not asked again
        await_page(chrome)
        assert not chrome.find_element("id", "auth").is_displayed()
    finally:
        chrome.get("about:blank")  # before the gateway goes: no reads refused meanwhile
        gateway.stop()
    # the first reads, before the token was given, were answered 401
    assert severe(chrome, ("status of 401",)) == []


def complete_many(endpoint: str, count: int) -> None:
    with RegistryClient(endpoint, timeout=30) as client:
        for start in range(0, count, 500):
            with client.pipeline() as p:
                for i in range(start, min(count, start + 500)):
                    spec = OperationSpec(owner_session_id="bulk", display_name=f"bulk {i:04d}")
                    p.register_operation(spec)
                    p.provisioning_succeeded(spec.id)
                    p.complete_operation(spec.id, OperationResult(content="ok"))


@pytest.mark.timeout(60)
def test_a_gateway_restart_resumes_the_feed_and_shows_a_gap(chrome: Any, tmp_path: Path) -> None:
    """The gateway goes away while more completions happen than the registry keeps (1,024
    here); a new gateway on the same address: the page's EventSource reconnects by itself
    with Last-Event-ID, and what the registry no longer holds arrives as one gap."""
    server = ServerProcess(tmp_path / "data", "--max-completed", "50").start()
    ready = tmp_path / "web.json"
    gateway = GatewayProcess(server.endpoint, server.feed_endpoint, ready)
    try:
        complete_many(server.endpoint, 10)
        chrome.get(f"{gateway.url}/")
        await_page(chrome)
        wait_for(chrome, lambda d: 10 in dict(stream_rows(d)), 20, "seqs 1-10")
        address = gateway.url.removeprefix("http://")
        gateway.stop()
        wait_for(chrome, lambda d: conn_text(d) == "reconnecting…", 20, "'reconnecting…'")
        complete_many(server.endpoint, 1100)
        gateway = GatewayProcess(server.endpoint, server.feed_endpoint, ready, "--http", address)
        wait_for(
            chrome,
            lambda d: js(d, "return window.opsregDash.feed.lastSeq") == 1110,
            20,
            "seq 1110 on the page",
        )
        with RegistryClient(server.endpoint, timeout=10) as client:
            kept_from = client.list_since(0, 1).entries[0].seq
        assert kept_from > 11  # the registry no longer holds 11..kept_from-1
        dash = js(chrome, "return window.opsregDash")
        assert dash["gaps"] == [[11, kept_from - 1]]  # (its row is past the 1,000 kept now)
        assert dash["duplicates"] == 0 and dash["holes"] == []
        wait_for(
            chrome,
            lambda d: conn_text(d) == "reconnected, resumed after seq 10",
            20,
            "'reconnected, resumed after seq 10'",
        )
    finally:
        chrome.get("about:blank")
        gateway.stop()
        server.stop()
    # the reconnects refused while no gateway listened, and the stream it cut
    assert severe(chrome, ("net::ERR_",)) == []


@pytest.mark.timeout(90)
def test_kill9_restart_the_page_recovers_with_every_row_once(chrome: Any, stack: Stack) -> None:
    open_dashboard(chrome, stack)
    wait_for(chrome, lambda d: len(stream_rows(d)) > 20, 20, "the stream's first rows")
    before = stream_rows(chrome)[-1][0]
    stack.server.kill9()
    wait_for(chrome, lambda d: conn_text(d) == "reconnecting…", 20, "'reconnecting…'")
    stack.server.start()  # the same ports and data directory
    wait_for(
        chrome,
        lambda d: conn_text(d).startswith("reconnected, resumed after seq"),
        30,
        "'reconnected, resumed after seq N'",
    )
    spec = start_op(stack, "test: after the restart")
    stack.client.complete_operation(spec.id, OperationResult(content="after"))
    wait_for(
        chrome,
        lambda d: spec.id in {op for _, op in stream_rows(d)},
        20,
        "a completion made after the restart",
    )
    shown = stream_rows(chrome)
    first, last = shown[0][0], shown[-1][0]
    assert first <= before < last
    held: list[tuple[int, str]] = []
    while len(held) < last - first + 1:
        batch = stack.client.list_since(first - 1 + len(held), 1024)
        held += [(e.seq, str(e.operation_id)) for e in batch.entries]
    assert shown == held[: len(shown)]
    assert js(chrome, "return [window.opsregDash.duplicates, window.opsregDash.holes]") == [0, []]
