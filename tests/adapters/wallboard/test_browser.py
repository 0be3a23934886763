"""The wallboard in a real browser (Playwright driving the system's Chromium): the page
is complete without JS, and with it, what a log's writer appends while the page is open
shows on screen within 2 s. A screenshot is saved to ``$OMNIROUTE_ARTIFACTS`` (else
the test's temporary folder) and its path printed."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from omniroute.engine import events as ev

from .conftest import Floor, opening, wallboard

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
ON_SCREEN_S = 2.0

WAITING = "acme/sales/voice"
_WAITING_JS = """([key, n]) => {
    const cell = document.querySelector(`[data-queue="${key}"] [data-field="waiting"]`);
    return cell !== null && cell.textContent.trim() === String(n);
}"""
_STATUS_JS = """([key, status]) => {
    const card = document.querySelector(`[data-agent="${key}"]`);
    return card !== null && card.dataset.status === status;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"the browser tests drive the system's Chromium: {CHROMIUM} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-background-networking",
                  "--disable-component-update"],
        )  # fmt: skip
        yield browser
        browser.close()


def _artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("OMNIROUTE_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_what_the_log_gets_shows_on_screen(browser: Browser, tmp_path: Path) -> None:
    log = tmp_path / "live.olog"
    floor = Floor(log)
    opening(floor)  # ann (sales) available, bob (mail) away
    with wallboard("--follow", log, "--every", "0.2") as (_proc, url, _said):
        # without JS: the first paint is the whole board
        static = browser.new_page(java_script_enabled=False)
        static.goto(url)
        assert static.get_attribute('[data-agent="acme/bob"]', "data-status") == "away"
        assert static.text_content("#conn") == "static"
        static.close()

        page = browser.new_page(viewport={"width": 1600, "height": 900})
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url)
        page.wait_for_selector("#conn.live", timeout=5000)
        assert page.query_selector(f'[data-queue="{WAITING}"]') is None  # no calls yet

        # ann steps away and three calls come in: they wait, on screen within 2 s
        floor.emit(ev.AgentStatusChanged, agent_id="ann", status="away", after_s=30)
        for i in range(3):
            floor.arrive(f"call-{i}", "voice", after_s=2)
        appended = time.monotonic()
        page.wait_for_function(_WAITING_JS, arg=[WAITING, 3], timeout=ON_SCREEN_S * 1000)
        waiting_s = time.monotonic() - appended
        assert page.get_attribute('[data-agent="acme/ann"]', "data-status") == "away"

        # bob comes back: his card changes within 2 s
        floor.emit(ev.AgentStatusChanged, agent_id="bob", status="available", after_s=3)
        appended = time.monotonic()
        page.wait_for_function(_STATUS_JS, arg=["acme/bob", "available"],
                               timeout=ON_SCREEN_S * 1000)  # fmt: skip
        status_s = time.monotonic() - appended

        shot = _artifacts(tmp_path) / "wallboard-live.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"\nwallboard screenshot: {shot} (waiting on screen after {waiting_s:.2f} s, "
              f"status after {status_s:.2f} s)")  # fmt: skip
        page.close()
    floor.close()
    assert all(u.startswith(url) for u in requested), requested  # nothing from elsewhere
    assert shot.stat().st_size > 10_000
