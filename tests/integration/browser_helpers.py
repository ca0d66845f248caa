"""What the browser tests share: Chromium's flags, where screenshots go, signing in."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dev_helpers import Dev
from playwright.sync_api import Browser, Page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def sign_in(page: Page, dev: Dev, user: str, password: str) -> None:
    """Through the provider's own pages, as a person does."""
    page.goto(f"{dev.url}/hub/oauth_login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[value=login]")
    page.click("button[value=allow]")


@contextmanager
def fresh_page(browser: Browser, screenshot: str) -> Iterator[Page]:
    """A new browser context (its own cookies) and page; its last state is saved as
    ``test-artifacts/e2e/<screenshot>.png``."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(60_000)
    try:
        yield opened
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"{screenshot}.png"), full_page=True)
        context.close()
