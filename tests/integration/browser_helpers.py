"""What the browser tests share: Chromium's flags, where screenshots go, signing in."""

from __future__ import annotations

import shutil
from pathlib import Path

from dev_helpers import Dev
from playwright.sync_api import Page

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
