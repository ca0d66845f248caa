"""The hub's own pages (login, home, logout, refusal, admin) in a real browser, on the shared
local platform (``conftest.py``).

Each test makes the state it needs (a user's server started through the hub's REST API from
that user's own page, as its JavaScript does) and the module leaves no server running.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from browser_helpers import ARTIFACTS, sign_in
from dev_helpers import Dev
from iam_platform import wait_for
from playwright.sync_api import Browser, Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

GPU_SERVER = {"accelerator": "a100-1g-10gb", "count": "1", "image": "cuda-ml"}

# the hub's own JavaScript API calls: cookie session plus the page's XSRF token
_API = """async ([method, path, body]) => {
  const response = await fetch(window.jhdata.base_url + "api/" + path, {
    method,
    headers: {"X-XSRFToken": window.jhdata.xsrf_token, "Content-Type": "application/json"},
    body: body === null ? undefined : JSON.stringify(body),
  });
  return [response.status, await response.text()];
}"""


def _api(page: Page, dev: Dev, method: str, path: str, body: Any = None) -> tuple[int, str]:
    if "/hub/" not in page.url:
        page.goto(f"{dev.url}/hub/home")
    status, text = page.evaluate(_API, [method, path, body])
    return int(status), str(text)


def _server(page: Page, dev: Dev, user: str) -> dict[str, Any] | None:
    """The user's default server as the hub's API describes it, or ``None``."""
    status, text = _api(page, dev, "GET", f"users/{user}")
    assert status == 200, text
    server: dict[str, Any] | None = json.loads(text)["servers"].get("")
    return server


def _server_running(page: Page, dev: Dev, user: str) -> bool:
    return bool((_server(page, dev, user) or {}).get("ready"))


def ensure_gpu_server(page: Page, dev: Dev, user: str) -> None:
    """``user`` (signed in on ``page``) has a running server with a MIG slice, whatever an
    earlier module left behind."""
    server = _server(page, dev, user)
    accelerator = ((server or {}).get("user_options") or {}).get("accelerator")
    if server and server.get("ready") and accelerator == GPU_SERVER["accelerator"]:
        return
    if server:
        status, text = _api(page, dev, "DELETE", f"users/{user}/server")
        assert status in (202, 204), text
        wait_for(lambda: _server(page, dev, user) is None, 60, f"{user}'s server to stop")
    status, text = _api(page, dev, "POST", f"users/{user}/server", GPU_SERVER)
    assert status in (201, 202), text
    # the hub's own progress page sends the browser on once the server is up
    page.goto(f"{dev.url}/hub/spawn-pending/{user}")
    page.wait_for_url(f"**/user/{user}/**", timeout=120_000)


def screenshot(page: Page, name: str) -> None:
    """A page the test passes through, kept next to the tests' last pages."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def signed_in(page: Page, dev: Dev, user: str, password: str) -> None:
    """Signed in, back on the hub (its spawn page, or the running server)."""
    sign_in(page, dev, user, password)
    page.wait_for_url(re.compile(rf"^{re.escape(dev.url)}/(hub|user)/"))


def test_the_login_page_names_the_platform_and_what_it_is_for(page: Page, dev: Dev) -> None:
    page.goto(f"{dev.url}/hub/login")
    expect(page.locator("#aiinfn-platform-name")).to_have_text("AI_INFN platform")
    expect(page.locator("#aiinfn-platform-description")).to_contain_text("machine learning")
    expect(page.get_by_role("button", name="Sign in with INDIGO IAM")).to_be_visible()


def test_someone_in_no_project_reads_why_once_and_can_switch_account(page: Page, dev: Dev) -> None:
    sign_in(page, dev, "guest", "guest-pw")
    page.wait_for_url("**/hub/not-in-a-project")
    body = page.locator("body")
    expect(body).to_contain_text("not in a research project enabled on this hub")
    assert body.inner_text().count("not in a research project enabled on this hub") == 1
    expect(page.locator("#aiinfn-refused-user")).to_have_text("guest")
    projects = page.locator("#aiinfn-projects")
    for name in ("CMS", "ML_INFN", "LHCb Flash Simulation"):
        expect(projects).to_contain_text(name)
    expect(page.locator("#aiinfn-contact")).to_contain_text("the platform administrators")
    screenshot(page, "hub_page_not_in_a_project")
    # the page can be reloaded (the OAuth callback it came from cannot)
    page.reload()
    expect(body).to_contain_text("not in a research project enabled on this hub")
    expect(body).not_to_contain_text("OAuth state")
    # signing out of the provider lets another account in
    page.locator("#aiinfn-sign-out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url("**/hub/login**")
    page.get_by_role("button", name="Sign in with INDIGO IAM").click()
    page.fill("input[name=username]", "alice")  # the provider asks again: its session ended
    page.fill("input[name=password]", "alice-pw")
    page.click("button[value=login]")
    page.click("button[value=allow]")
    page.wait_for_url(re.compile(rf"^{re.escape(dev.url)}/(hub|user)/"))
    page.goto(f"{dev.url}/hub/home")
    expect(page.locator("nav")).to_contain_text("alice")


def test_the_home_page_says_what_the_running_server_holds_and_since_when(
    page: Page, dev: Dev
) -> None:
    signed_in(page, dev, "alice", "alice-pw")
    ensure_gpu_server(page, dev, "alice")
    page.goto(f"{dev.url}/hub/home")
    running = page.locator("#aiinfn-running")
    expect(running).to_contain_text("1g.10gb")
    expect(running).to_contain_text("cuda-ml")
    expect(running).to_contain_text(re.compile(r"on server-\d"))  # the node it runs on
    expect(running).to_contain_text("running since")
    expect(running).to_contain_text("stays allocated to you")
    screenshot(page, "hub_page_home_with_a_gpu_server")
    started = page.locator("time.aiinfn-started")
    expect(started).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT[\d:]+Z$"))


def test_logging_out_with_a_gpu_server_offers_to_stop_it(
    page: Page, dev: Dev, browser: Browser
) -> None:
    signed_in(page, dev, "alice", "alice-pw")
    ensure_gpu_server(page, dev, "alice")
    page.goto(f"{dev.url}/hub/home")
    page.locator("#logout").click()
    warning = page.locator("#aiinfn-logout")
    expect(warning).to_contain_text("still holds an accelerator")
    expect(warning).to_contain_text("1g.10gb")
    screenshot(page, "hub_page_logout_with_a_gpu_server")
    # cancel keeps the session
    warning.get_by_role("link", name="Cancel").click()
    page.wait_for_url("**/hub/home")
    expect(page.locator("#aiinfn-running")).to_be_visible()
    page.locator("#logout").click()
    page.get_by_role("button", name="Stop my server and log out").click()
    # the hub session is over and the browser is at the provider's sign-out
    expect(page.get_by_role("button", name="Yes, sign me out")).to_be_visible()
    context = browser.new_context()
    try:
        other = context.new_page()
        signed_in(other, dev, "alice", "alice-pw")
        assert not _server_running(other, dev, "alice")
    finally:
        context.close()


def test_the_admin_sees_users_servers_and_groups_and_stops_a_server(
    page: Page, dev: Dev, browser: Browser
) -> None:
    context = browser.new_context()
    try:
        alice = context.new_page()
        signed_in(alice, dev, "alice", "alice-pw")
        ensure_gpu_server(alice, dev, "alice")
    finally:
        context.close()
    sign_in(page, dev, "admin", "admin-pw")
    page.goto(f"{dev.url}/hub/admin")
    row = page.locator("tr", has_text="alice").first
    expect(row).to_be_visible()
    expect(row).to_contain_text("Stop Server")
    # project groups show their settings as readable properties
    page.goto(f"{dev.url}/hub/admin#/groups")
    page.get_by_role("link", name="cms", exact=True).click()
    properties = page.locator("input[value='limits.maxGpus']")
    expect(properties).to_be_visible()
    expect(page.locator("input[value='CMS']")).to_be_visible()
    assert page.locator("input[value='[object Object]']").count() == 0
    screenshot(page, "hub_page_admin_project_group")
    page.goto(f"{dev.url}/hub/admin")
    row = page.locator("tr", has_text="alice").first
    row.get_by_role("button", name="Stop Server").click()
    expect(row.get_by_role("button", name="Start Server")).to_be_visible(timeout=60_000)
