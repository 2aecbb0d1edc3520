"""The live status page of ``hundi serve`` in a real headless Chromium.

A real simulator feeds a real ``hundi collect`` writing an embedded store while ``hundi serve``
reads it; Debian's ``chromium`` (driven by Playwright, whose own browser download is not
used) loads ``/status`` and must show the running collector's streams, update them live and
draw the chart and the book. Without chromium: a failure under ``CI=true``, a skip otherwise.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import HUNDI, serve

from children import Child, spawn
from hundi.simulator.process import SimulatorProcess
from stored import anything_stored

pytestmark = pytest.mark.slow

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
SYMBOLS = ("BTC-USDT", "ETH-USDT")
DEADLINE_S = 90.0  # a loaded 2-core machine: the collector, the server and chromium share it


def _chromium() -> str:
    """Debian's chromium; missing under CI is a failure, locally a skip with the install hint."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    message = "chromium is not installed; install it with `apt-get install -y chromium`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _wait_for(what: str, check: Callable[[], Any], deadline_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {deadline_s:g} s")
        time.sleep(0.2)


@pytest.fixture
def collecting(tmp_path: Path) -> Iterator[tuple[Path, Child]]:
    """A real collector writing the simulator's market data (and a top-5 book series) into an
    embedded store, running for the whole test."""
    store = tmp_path / "data"
    with SimulatorProcess(["--rate", "200", "--seed", "7"]) as sim:
        collector = spawn(
            [
                HUNDI, "collect", "binance", "--symbols", "BTCUSDT,ETHUSDT",
                "--channels", "trades,bbo,book", "--endpoint", sim.ws_url,
                "--rest-endpoint", sim.rest_url, "--store", str(store),
                "--flush-interval", "0.5", "--series", "book:5@1s",
            ],
            cwd=tmp_path,
        )  # fmt: skip
        try:
            _wait_for("stored trades", lambda: anything_stored(store))
            yield store, collector
        finally:
            collector.terminate()
            try:
                collector.wait(timeout=60)
            except subprocess.TimeoutExpired:
                collector.kill()
                collector.wait()


def _browser() -> Any:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    # root in a container has no user namespace for chromium's sandbox
    browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
    return playwright, browser


def _page_shows_live_collection(url: str, screenshot: Path, collector: Child) -> None:
    """Assert what the page shows; the screenshot is taken however that ends (a failure's
    message names it)."""
    playwright, browser = _browser()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        _check_page(page, url, collector)
    except Exception as failure:  # an assertion or a Playwright timeout
        page.screenshot(path=str(screenshot), full_page=True)
        raise AssertionError(f"{failure} (screenshot: {screenshot})") from failure
    else:
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        browser.close()
        playwright.stop()


def _check_page(page: Any, url: str, collector: Child) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    assert "#token" not in page.url, "the token must leave the address bar"
    for symbol in SYMBOLS:
        for channel in ("trades", "bbo", "book"):
            row = page.locator(f'#streams tr[data-stream="binance/{symbol}/{channel}"]')
            row.wait_for(timeout=DEADLINE_S * 1000)
    trades = page.locator('#streams tr[data-stream="binance/BTC-USDT/trades"]')
    _wait_for("a trade rate above 0", lambda: float(trades.locator(".rate").inner_text()) > 0)
    first = trades.get_attribute("data-last")
    assert first, "a running trade stream shows its last record"
    # live: the page polls, so the last trade it shows moves on while the collector runs
    _wait_for("the last trade time to change", lambda: trades.get_attribute("data-last") != first)
    assert collector.poll() is None, collector.stderr_text()[-2000:]
    sync = page.locator('#symbols tr[data-symbol="binance/BTC-USDT"] .sync')
    _wait_for("the book's sync state", lambda: sync.inner_text().startswith("synced since"))
    chart = page.locator("#chart")
    _wait_for("the chart's trades", lambda: int(chart.get_attribute("data-trades") or 0) > 1)
    _wait_for("the chart's mids", lambda: int(chart.get_attribute("data-mids") or 0) > 1)
    _wait_for("5 book levels", lambda: page.locator("#top tr.level").count() == 5)
    assert page.locator("#top-note").inner_text().startswith("book_levels:5@1s at ")
    assert page.locator("#problem").inner_text() == ""
    assert not errors, errors


def test_status_page_shows_the_running_collector_live(
    collecting: tuple[Path, Child], tmp_path: Path, record_property: Callable[[str, str], None]
) -> None:
    store, collector = collecting
    screenshot = tmp_path / "status-page.png"
    with serve(str(store), tmp_path) as api:
        _page_shows_live_collection(f"{api.base}/status", screenshot, collector)
    assert screenshot.stat().st_size > 10_000
    record_property("screenshot", str(screenshot))  # in the JUnit XML
    print(f"status page screenshot: {screenshot}")


def test_status_page_with_a_token(collecting: tuple[Path, Child], tmp_path: Path) -> None:
    """With ``HUNDI_API_TOKEN`` the page is open, its data is not; the token given in the URL
    fragment (never sent to the server as part of the URL) is sent as a bearer header."""
    store, collector = collecting
    token = secrets.token_urlsafe(32)
    env = {"HUNDI_API_TOKEN": token}
    with serve(str(store), tmp_path, env=env) as api:
        assert api.get("/api/v1/status").status == 401
        assert api.get("/api/v1/status", token=token).status == 200
        _page_shows_live_collection(
            f"{api.base}/status#token={token}", tmp_path / "status-token.png", collector
        )
        assert token not in api.process.stderr_text() + api.process.stdout_text()


def test_status_page_without_the_token_asks_for_it(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(32)
    (tmp_path / "data").mkdir()
    with serve(str(tmp_path / "data"), tmp_path, env={"HUNDI_API_TOKEN": token}) as api:
        playwright, browser = _browser()
        try:
            page = browser.new_page()
            page.goto(f"{api.base}/status")
            page.locator("#login").wait_for(state="visible", timeout=DEADLINE_S * 1000)
            assert "requires its API token" in page.locator("#problem").inner_text()
            page.fill("#token", token)
            page.click("#login button")
            # a poll already on its way without the token may still answer 401: then the next
            # one, with it, must clear the message and hide the field again
            _wait_for(
                "the answer with the token",
                lambda: (
                    page.locator("#store").inner_text()
                    and page.locator("#problem").inner_text() == ""
                    and page.locator("#login").is_hidden()
                ),
            )
        finally:
            browser.close()
            playwright.stop()
