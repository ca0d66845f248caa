"""End to end in a real browser (Debian's Chromium driven by Playwright) against
``aiinfn-dev dev``. Each test saves a screenshot of its last page under
``test-artifacts/e2e/`` (see the README). The platform and the browser are shared by every
browser test module (``conftest.py``): this module assumes nothing about the servers others
started and leaves no server of its own running."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jupyterhub
import pytest
from browser_helpers import fresh_page, sign_in
from dev_helpers import Dev
from iam_platform import wait_for
from playwright.sync_api import Browser, Page, Response, expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SLICE = "a100-1g-10gb"
ACCELERATORS_API = "/hub/api/aiinfn/accelerators"

# the progress page's event stream, each event with the page's event log as it showed it then
RECORD_PROGRESS = """
(() => {
  const Original = window.EventSource;
  if (!Original || !window.aiinfnRecord) { return; }
  window.EventSource = function (url, options) {
    const source = new Original(url, options);
    source.addEventListener("message", (e) => {
      setTimeout(() => {  // after the page's own handler has shown it
        // each entry of the page's "Event log": its line, and its collapsed details apart
        const entries = Array.from(document.querySelectorAll("#progress-log > div"));
        const log = entries.map((entry) => {
          const line = entry.cloneNode(true);
          line.querySelectorAll("details").forEach((d) => d.remove());
          const details = entry.querySelector("details");
          return {line: line.textContent, details: details ? details.textContent : ""};
        });
        window.aiinfnRecord(JSON.stringify({event: JSON.parse(e.data), log: log}));
      }, 0);
    });
    return source;
  };
  window.EventSource.prototype = Original.prototype;
})();
"""


def xsrf(page: Page) -> str:
    """The hub's XSRF cookie of this browser session (sent back as ``X-XSRFToken``)."""
    cookies = page.context.cookies()
    return next(c["value"] for c in cookies if c["name"] == "_xsrf" and c["path"] == "/hub/")


def server_model(page: Page, dev: Dev, user: str) -> dict[str, Any]:
    """The user's default server in the Hub API ({} when none), with this session."""
    response = page.request.get(
        f"{dev.url}/hub/api/users/{user}", headers={"X-XSRFToken": xsrf(page)}
    )
    assert response.ok, response.text()
    server: dict[str, Any] = response.json()["servers"].get("", {})
    return server


def stop_server(page: Page, dev: Dev, user: str) -> None:
    """Stop the user's server if one runs or starts, and wait until it is gone."""
    if not server_model(page, dev, user):
        return
    page.request.delete(
        f"{dev.url}/hub/api/users/{user}/server", headers={"X-XSRFToken": xsrf(page)}
    )
    wait_for(lambda: not server_model(page, dev, user), 120, f"{user}'s server to stop")


def free_count(page: Page, model: str) -> int:
    """The "N of M free" the form shows for ``model``."""
    text = page.locator(f"label[for=accelerator-{model}] .aiinfn-free").inner_text()
    found = re.match(r"(\d+) of \d+ free", text)
    assert found, text
    return int(found.group(1))


@pytest.fixture
def second(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A second person's browser (its own cookies), screenshot as ``<test>-second.png``."""
    with fresh_page(browser, f"{request.node.name}-second") as opened:
        yield opened


def test_login_through_the_provider_pages_greets_the_user(page: Page, dev: Dev) -> None:
    sign_in(page, dev, "bruno", "bruno-pw")
    page.wait_for_url("**/hub/spawn**")
    expect(page.locator("body")).to_contain_text("bruno")
    expect(page.locator("#aiinfn-accelerators")).to_contain_text("free")


def test_the_form_offers_only_choices_that_can_start(page: Page, dev: Dev) -> None:
    """CUDA images with a GPU or MIG model, its own servers to pin, plain words for memory
    and a hint per kind; no unit count for CPU only."""
    sign_in(page, dev, "bruno", "bruno-pw")
    page.wait_for_url("**/hub/spawn**")
    page.check("#accelerator-none")
    expect(page.locator("#aiinfn-units")).to_be_hidden()  # no unit count for CPU only
    expect(page.locator("#image-base")).to_be_visible()
    expect(page.locator("#memory option[value='8Gi']")).to_have_text("8 GB")
    expect(page.locator("#kind-mig")).to_contain_text("MIG slices")
    expect(page.locator("#hint-mig")).to_contain_text("share of one GPU")
    expect(page.locator("#hint-fpga")).to_contain_text("programmable board")
    page.check("#image-base")
    page.check(f"#accelerator-{SLICE}")
    # base has no CUDA: hidden, and a CUDA image selected in its place
    expect(page.locator("#image-base")).to_be_hidden()
    expect(page.locator("#image-cuda-ml")).to_be_checked()
    expect(page.locator("#aiinfn-units")).to_be_visible()
    page.locator("#aiinfn-pin summary").click()
    pins = page.locator("#server option:not([disabled])")
    expect(pins).to_have_text(["Any server with free units", "server-3"])
    page.select_option("#server", "server-3")
    page.check("#accelerator-t4")  # server-3 has no T4: the pin goes back to any server
    expect(page.locator("#server")).to_have_value("")
    expect(page.locator("#server option[value='server-1']")).to_be_enabled()
    page.check("#accelerator-u50")  # an FPGA needs no CUDA: every image again
    expect(page.locator("#image-base")).to_be_visible()


def test_a_tampered_form_is_refused_next_to_the_field(page: Page, dev: Dev) -> None:
    sign_in(page, dev, "bruno", "bruno-pw")
    page.wait_for_url("**/hub/spawn**")
    # devtools-style: change a value the form does not offer, then submit
    page.evaluate(
        "() => { const cpu = document.querySelector('#cpu');"
        " cpu.options[0].value = '64'; cpu.value = '64'; }"
    )
    page.click("input[type=submit], button[type=submit]")
    alert = page.locator("#error-cpu")
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_have_text(
        "Your projects allow up to 16 CPU cores: choose one of the values listed."
    )
    expect(page.locator("#cpu")).to_have_attribute("aria-describedby", "error-cpu")
    expect(page.locator(".spawn-error-msg")).to_be_hidden()  # no "Error: HTTP 400 …" line
    expect(page.locator("#aiinfn-accelerators")).to_be_visible()  # the form again
    assert not server_model(page, dev, "bruno")


def test_a_mig_slice_starts_and_every_page_follows(page: Page, dev: Dev, second: Page) -> None:
    """alice takes a MIG slice with the form's default image while bruno's form is open: his
    counts drop without a reload (no refresh refused), alice's progress page reads as steps,
    the admin panel's Profile column says what she holds, and her next form is pre-filled."""
    refreshes: list[Response] = []
    second.on("response", lambda r: refreshes.append(r) if ACCELERATORS_API in r.url else None)
    sign_in(second, dev, "bruno", "bruno-pw")
    second.wait_for_url("**/hub/spawn**")
    before = free_count(second, SLICE)
    assert before >= 1
    second.evaluate("() => { window.aiinfnNotReloaded = true; }")

    events: list[dict[str, Any]] = []
    page.expose_function("aiinfnRecord", lambda data: events.append(json.loads(data)))
    page.add_init_script(RECORD_PROGRESS)
    try:
        sign_in(page, dev, "alice", "alice-pw")
        page.wait_for_url("**/hub/spawn**")
        page.check(f"#accelerator-{SLICE}")  # the image is left as the form chose it
        expect(page.locator("#image-cuda-ml")).to_be_checked()
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url("**/user/alice/lab**", timeout=120_000)
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=120_000)
        browser_panel = page.locator(".jp-DirListing-content")
        expect(browser_panel).to_contain_text("projects", timeout=60_000)
        expect(browser_panel).to_contain_text("buckets")

        # the progress page: steps a person understands, the raw events kept
        entries = max((e["log"] for e in events), key=len)
        log = [entry["line"] for entry in entries]
        node = server_model(page, dev, "alice")["user_options"]["profile"].split(" on ")[1]
        node = node.split(" ")[0]
        steps = [
            f"Scheduled on {node} with 1 \u00d7 NVIDIA A100 MIG slice 1g.10gb",
            "Preparing your home and project folders",
            "Starting JupyterLab",
        ]
        for step in steps:
            assert step in log, log
        assert not any("[Normal]" in line for line in log), log  # no raw event as a step
        details = " ".join(entry["details"] for entry in entries)  # the raw events, kept
        assert f"[Normal] Successfully assigned jupyterhub/jupyter-alice to {node}" in details
        raw = [e["event"]["raw_event"] for e in events if "raw_event" in e["event"]]
        assert any(r.get("reason") == "Scheduled" for r in raw)
        bar = [e["event"]["progress"] for e in events if "progress" in e["event"]]
        assert bar and bar == sorted(bar), bar

        # bruno's open form: one slice fewer, without a reload, and no refresh was refused
        expect(second.locator(f"label[for=accelerator-{SLICE}] .aiinfn-free")).to_contain_text(
            f"{before - 1} of ", timeout=30_000
        )
        assert second.evaluate("() => window.aiinfnNotReloaded === true")
        assert refreshes and all(r.status == 200 for r in refreshes), [
            (r.status, r.url) for r in refreshes
        ]
        expect(second.locator("#aiinfn-refresh-status")).to_have_text("")

        # the admin panel's Profile column (JupyterHub 6's admin page shows
        # user_options["profile"]; 5.5's, in the z2jh 4.4.0 hub image, has no such column)
        second.context.clear_cookies()
        sign_in(second, dev, "admin", "admin-pw")
        second.goto(f"{dev.url}/hub/admin")
        row = second.locator("tr", has_text="alice").first
        if int(jupyterhub.__version__.split(".")[0]) >= 6:
            expect(row.get_by_test_id("user-row-profile-used")).to_have_text(
                f"cms · NVIDIA A100 MIG slice 1g.10gb \u00d71 on {node} · cuda-ml"
            )
        else:
            expect(row).to_contain_text("alice")
    finally:
        page.goto(f"{dev.url}/hub/home")
        stop_server(page, dev, "alice")
    # the next form starts from the choice that started
    page.goto(f"{dev.url}/hub/spawn")
    expect(page.locator(f"#accelerator-{SLICE}")).to_be_checked()
    expect(page.locator("#image-cuda-ml")).to_be_checked()
