"""The hub's own pages (refusal, admin) in a real browser, on the shared local platform
(``conftest.py``)."""

from __future__ import annotations

import pytest
from browser_helpers import sign_in
from dev_helpers import Dev
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_someone_in_no_project_sees_the_clear_403_page(page: Page, dev: Dev) -> None:
    sign_in(page, dev, "guest", "guest-pw")
    expect(page.locator("body")).to_contain_text("not in a research project enabled on this hub")


def test_the_admin_sees_users_servers_and_groups_and_stops_a_server(page: Page, dev: Dev) -> None:
    """Runs last: it stops alice's server."""
    sign_in(page, dev, "admin", "admin-pw")
    page.goto(f"{dev.url}/hub/admin")
    row = page.locator("tr", has_text="alice").first
    expect(row).to_be_visible()
    expect(row).to_contain_text("Stop Server")
    page.goto(f"{dev.url}/hub/admin#/groups")
    expect(page.locator("body")).to_contain_text("cms")
    page.goto(f"{dev.url}/hub/admin")
    row = page.locator("tr", has_text="alice").first
    row.get_by_role("button", name="Stop Server").click()
    expect(row.get_by_role("button", name="Start Server")).to_be_visible(timeout=60_000)
