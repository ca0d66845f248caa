"""The Bunshin page ("Batch jobs") in a real browser, on the shared local platform
(``conftest.py``). Self-sufficient: it starts alice's server through the spawn form when none
runs, and leaves no job and no server running behind it (the next browser module shares the
platform). Every change the page makes by itself is waited for in place, never reloaded."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from browser_helpers import ARTIFACTS, sign_in
from dev_helpers import Dev
from iam_platform import wait_for
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
HELLO = """python -c "print('hello from bunshin')" """.strip()
TICKS = (
    "python -u -c \"import time; [print('tick', i, flush=True) or time.sleep(1) "
    'for i in range(120)]"'
)
FAILING = "python -c \"import sys; print('about to fail'); sys.exit(3)\""


def xsrf(page: Page, path: str = "/hub/") -> str:
    """The XSRF cookie the hub (or the service, at its path) set for this session."""
    cookies = page.context.cookies()
    return next(c["value"] for c in cookies if c["name"] == "_xsrf" and c["path"] == path)


def server_ready(page: Page, dev: Dev) -> bool:
    """Whether alice's default server runs (the Hub API, with her browser session)."""
    model = page.request.get(
        f"{dev.url}/hub/api/users/alice", headers={"X-XSRFToken": xsrf(page)}
    ).json()
    return bool(model["servers"].get("", {}).get("ready"))


def start_server_if_none(page: Page, dev: Dev) -> None:
    """Through the spawn form, as alice would: the cuda-ml image, no accelerator."""
    page.goto(f"{dev.url}/hub/home")
    if server_ready(page, dev):
        return
    page.goto(f"{dev.url}/hub/spawn")
    page.check("#accelerator-none")
    page.check("#image-cuda-ml")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/alice/**", timeout=120_000)
    wait_for(lambda: server_ready(page, dev), 120, "alice's server")


def leave_nothing_running(page: Page, dev: Dev) -> None:
    """Cancel alice's active jobs and stop her server (the API, her session's XSRF token)."""
    page.goto(f"{dev.url}/services/bunshin/")  # its XSRF cookie
    headers = {"X-XSRFToken": xsrf(page, "/services/bunshin/")}
    jobs = page.request.get(f"{dev.url}/services/bunshin/api/v1/jobs", headers=headers).json()
    for job in jobs:
        if job["status"] in ("queued", "admitted", "running"):
            page.request.delete(
                f"{dev.url}/services/bunshin/api/v1/jobs/{job['id']}", headers=headers
            )
    page.goto(f"{dev.url}/hub/home")
    stopped = page.request.delete(
        f"{dev.url}/hub/api/users/alice/server", headers={"X-XSRFToken": xsrf(page)}
    )
    assert stopped.status in (202, 204), stopped.text()
    wait_for(lambda: not server_ready(page, dev), 120, "alice's server to stop")
    page.goto(f"{dev.url}/services/bunshin/")  # the last screenshot: the jobs, all finished


@pytest.fixture
def alice(page: Page, dev: Dev) -> Iterator[Page]:
    sign_in(page, dev, "alice", "alice-pw")
    start_server_if_none(page, dev)
    try:
        yield page
    finally:
        leave_nothing_running(page, dev)


def screenshot(page: Page, name: str) -> None:
    """A page worth seeing besides the test's last one (``test-artifacts/e2e/``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def submit(page: Page, command: str, name: str, accelerator: str = "none") -> None:
    page.fill("#command", command)
    page.fill("#name", name)
    page.select_option("#accelerator", accelerator)
    page.fill("#count", "")
    page.click("button:has-text('Submit')")
    expect(page.locator(".alert-success")).to_contain_text("Submitted bunshin-alice-")


def test_batch_jobs_update_in_place_follow_logs_explain_failures_and_confirm_cancels(
    alice: Page, dev: Dev
) -> None:
    page = alice
    # the hub's services menu says what the service is for
    page.goto(f"{dev.url}/hub/home")
    expect(page.locator('a.dropdown-item[href="/services/bunshin/"]')).to_have_text("Batch jobs")

    page.goto(f"{dev.url}/services/bunshin/")
    expect(page.locator("h2", has_text="Clone my server as a job")).to_be_visible()
    # "same as my server" says what that is, and units for it are applied or refused
    same = page.locator("#accelerator option[value='']")
    expect(same).to_have_text("Same as my server (no GPU)")
    page.fill("#command", "python train.py")
    page.select_option("#accelerator", "")
    page.fill("#count", "4")
    page.click("button:has-text('Submit')")
    error = page.locator("#bunshin-submit #submit-error")  # next to the form that caused it
    expect(error).to_contain_text("your server has no accelerator")
    expect(error).to_have_attribute("role", "alert")
    expect(page.locator("#command")).to_have_value("python train.py")

    # a job without a GPU; its row goes to succeeded in place while alice types
    submit(page, HELLO, "hello")
    row = page.locator("tr", has_text="hello")
    expect(row.locator("code.bunshin-command")).to_have_text(HELLO)  # as typed, quotes kept
    created = row.locator("time.bunshin-time")
    expect(created).to_have_attribute("title", re.compile(r" UTC$"))  # UTC on hover
    assert "UTC" not in created.inner_text()  # shown in her time zone
    page.evaluate("window.notReloaded = true")
    page.fill("#command", "a draft being typed")
    expect(row.locator(".bunshin-status")).to_have_attribute(
        "data-status", "succeeded", timeout=90_000
    )
    expect(page.locator("#command")).to_have_value("a draft being typed")
    assert page.evaluate("window.notReloaded") is True

    # a failing command fails at once, with its exit code and the end of its log
    submit(page, FAILING, "doomed")
    doomed = page.locator("tr", has_text="doomed")
    expect(doomed.locator(".bunshin-status")).to_have_attribute(
        "data-status", "failed", timeout=90_000
    )
    expect(doomed.locator(".bunshin-reason")).to_have_text("the command failed with exit code 3")
    doomed.locator(".bunshin-failure summary").click()
    expect(doomed.locator(".bunshin-failure-log")).to_contain_text("about to fail")

    # a running job's log follows in place
    submit(page, TICKS, "ticker")
    ticker = page.locator("tr", has_text="ticker")
    ticker.locator("a", has_text="logs").click()
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#bunshin-follow")).to_have_text("Following the log…")
    expect(page.locator("pre.bunshin-log")).to_contain_text("tick 3", timeout=90_000)
    expect(page.locator(".bunshin-state")).to_have_text("running")
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "bunshin-logs-followed")

    # a cancel asks first: dismissed, nothing happens; accepted, the job is cancelled
    page.goto(f"{dev.url}/services/bunshin/")
    ticker = page.locator("tr", has_text="ticker")
    page.once("dialog", lambda dialog: dialog.dismiss())
    ticker.locator("button", has_text="Cancel").click()
    expect(ticker.locator(".bunshin-status")).to_have_attribute("data-status", "running")
    page.once("dialog", lambda dialog: dialog.accept())
    ticker.locator("button", has_text="Cancel").click()
    expect(page.locator(".alert-success")).to_contain_text("Cancelled bunshin-alice-")
    expect(page.locator("tr", has_text="ticker")).to_contain_text("cancelled")
    page.locator("tr", has_text="doomed").locator(".bunshin-failure summary").click()
    screenshot(page, "bunshin-jobs")
