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
