"""End to end in a real browser (Debian's Chromium driven by Playwright) against
``aiinfn-dev dev``. Each test saves a screenshot of its last page under
``test-artifacts/e2e/`` (see the README). The platform and the browser are shared by every
browser test module (``conftest.py``): a module leaves no server or job running behind it."""

from __future__ import annotations

import pytest
from browser_helpers import sign_in
from dev_helpers import Dev
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_login_through_the_provider_pages_greets_the_user(page: Page, dev: Dev) -> None:
    sign_in(page, dev, "bruno", "bruno-pw")
    page.wait_for_url("**/hub/spawn**")
    expect(page.locator("body")).to_contain_text("bruno")
    expect(page.locator("#aiinfn-accelerators")).to_contain_text("free")


def test_someone_in_no_project_sees_the_clear_403_page(page: Page, dev: Dev) -> None:
    sign_in(page, dev, "guest", "guest-pw")
    expect(page.locator("body")).to_contain_text("not in a research project enabled on this hub")


def test_a_tampered_form_is_refused_with_the_reason_and_no_server(page: Page, dev: Dev) -> None:
    sign_in(page, dev, "bruno", "bruno-pw")
    page.wait_for_url("**/hub/spawn**")
    # devtools-style: change a value the form does not offer, then submit
    page.evaluate(
        "() => { const cpu = document.querySelector('#cpu');"
        " cpu.options[0].value = '64'; cpu.value = '64'; }"
    )
    page.click("input[type=submit], button[type=submit]")
    expect(page.locator("body")).to_contain_text("cpu 64 is not allowed")
    expect(page.locator("#aiinfn-accelerators")).to_be_visible()  # the form again


def test_a_mig_slice_starts_jupyterlab_with_home_and_projects(page: Page, dev: Dev) -> None:
    sign_in(page, dev, "alice", "alice-pw")
    page.wait_for_url("**/hub/spawn**")
    free_before = page.locator("label[for=accelerator-a100-1g-10gb]").inner_text()
    assert "3 of 3 free" in free_before, free_before
    page.check("#accelerator-a100-1g-10gb")
    page.check("#image-cuda-ml")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/alice/lab**", timeout=120_000)
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=120_000)
    browser_panel = page.locator(".jp-DirListing-content")
    expect(browser_panel).to_contain_text("projects", timeout=60_000)
    expect(browser_panel).to_contain_text("buckets")
    # the next user sees one slice fewer
    other = page.context.browser.new_context()  # type: ignore[union-attr]
    second = other.new_page()
    sign_in(second, dev, "bruno", "bruno-pw")
    second.wait_for_url("**/hub/spawn**")
    assert "2 of 3 free" in second.locator("label[for=accelerator-a100-1g-10gb]").inner_text()
    other.close()


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
