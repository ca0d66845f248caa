"""The Bunshin page in a real browser, on the shared local platform (``conftest.py``)."""

from __future__ import annotations

import pytest
from browser_helpers import sign_in
from dev_helpers import Dev
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_bunshin_page_clones_the_server_runs_shows_logs_and_cancels(
    page: Page, dev: Dev
) -> None:
    """Runs after the MIG test: alice's server is up (the module keeps one platform)."""
    sign_in(page, dev, "alice", "alice-pw")
    page.goto(f"{dev.url}/services/bunshin/")
    expect(page.locator("h2", has_text="Clone my server as a job")).to_be_visible()
    page.fill("#command", "python -c \"print('hello from bunshin')\"")
    page.fill("#name", "hello")
    page.click("button:has-text('Submit')")
    expect(page.locator("body")).to_contain_text("Submitted bunshin-alice-")
    row = page.locator("tr", has_text="hello")
    # the local Kueue stand-in admits it; the emulator runs it as a local process
    for _ in range(60):
        if "succeeded" in row.inner_text():
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(row).to_contain_text("succeeded")
    row.locator("a", has_text="logs").click()
    expect(page.locator("pre")).to_contain_text("hello from bunshin")
    # a second job, cancelled from the page
    page.goto(f"{dev.url}/services/bunshin/")
    page.fill("#command", "sleep 300")
    page.fill("#name", "long")
    page.click("button:has-text('Submit')")
    long_row = page.locator("tr", has_text="long")
    long_row.locator("button", has_text="Cancel").click()
    expect(page.locator("body")).to_contain_text("Cancelled bunshin-alice-")
    expect(page.locator("tr", has_text="long")).to_contain_text("cancelled")
