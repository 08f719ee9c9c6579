"""The dashboard's page in Debian's headless chromium (Playwright), for the browser tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Page, sync_playwright


@contextmanager
def dashboard_page(url: str, ready: str, timeout_ms: int) -> Iterator[Page]:
    """The page at `url`, once `ready` (a selector) is there; every wait of it up to `timeout_ms`."""
    chromium = shutil.which("chromium")
    assert chromium, "the dashboard's test drives Debian's chromium: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(timeout_ms)
        page.goto(url)
        page.wait_for_selector(ready)
        yield page
        browser.close()
