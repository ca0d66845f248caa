"""Jobs that behave as users expect (issue 17): "same as my server" with a number of units,
no retry of a failing command by default (retries asked, within the platform's bound), the
exit code and the end of the log of a failure, the command shown as typed, times for the
page, and the service's name in the hub's menu. Pure functions and the real hub templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from traitlets.config import Config

from aiinfn_hub.bunshin.errors import BunshinError
from aiinfn_hub.bunshin.hub_config import configure_bunshin
from aiinfn_hub.bunshin.job import COMMAND_TEXT, job_manifest
from aiinfn_hub.bunshin.job_view import job_status, job_view
from aiinfn_hub.bunshin.pages import form_to_body, utc_text
from aiinfn_hub.bunshin.policy import JobContext, plan_job
from aiinfn_hub.bunshin.request import Accelerator, parse_request
from aiinfn_hub.config import PlatformConfigError, load_platform_config, validate_platform_config
from aiinfn_hub.platform.entitlements import UserContext
from aiinfn_hub.services.registration import HUB_TEMPLATES

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
CONFIG = load_platform_config(ROOT / "examples" / "platform.yaml")
BACKOFF = "Job has reached the specified backoff limit"


def pod(case: str) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((GOLDEN / f"pod-{case}.json").read_text())
    manifest["metadata"] |= {"uid": "0b7c-uid", "namespace": "jupyterhub"}
    manifest["status"] = {"phase": "Running"}
    return manifest


def plan(body: dict[str, Any], case: str = "t4-pair", group: str = "ml-infn") -> Any:
    context = JobContext(UserContext("dana", frozenset({group})), CONFIG, False, 0)
    return plan_job(parse_request(body), context, pod(case), "")


# -- "same as my server" --------------------------------------------------------------------


def test_units_without_a_model_are_units_of_the_servers_model_or_a_refusal() -> None:
    assert parse_request({"command": ["x"], "accelerator": {"count": 1}}).accelerator == (
        Accelerator(None, 1)
    )
    one = plan({"command": ["x"], "accelerator": {"count": 1}})  # the server has two t4
    assert one.accelerator is not None and (one.accelerator.name, one.count) == ("t4", 1)
    # more than the model allows: refused, never silently one
    with pytest.raises(BunshinError, match="count must be between 1 and 2 for t4"):
        plan({"command": ["x"], "accelerator": {"count": 4}})
    # a server without a GPU has no model to count
    with pytest.raises(BunshinError) as refused:
        plan({"command": ["x"], "accelerator": {"count": 4}}, "cpu-only", "cms")
    assert refused.value.status == 422 and "your server has no accelerator" in str(refused.value)
    with pytest.raises(BunshinError, match="accelerator: expected"):
        parse_request({"command": ["x"], "accelerator": {}})


def test_the_form_asks_for_units_of_the_servers_model_or_for_no_gpu() -> None:
    same = form_to_body({"command": "x", "accelerator": "", "count": "4"})
    assert same["accelerator"] == {"count": 4}
    assert "accelerator" not in form_to_body({"command": "x", "accelerator": "", "count": ""})
    no_gpu = form_to_body({"command": "x", "accelerator": "none", "count": "4"})
    assert no_gpu["accelerator"] is None
    assert form_to_body({"command": "x", "accelerator": "t4", "count": ""})["accelerator"] == {
        "name": "t4",
        "count": 1,
    }
    for bad in ("-1", "1.5", "²", "99999"):
        with pytest.raises(BunshinError, match="units: expected a whole number"):
            form_to_body({"command": "x", "count": bad})


# -- retries -------------------------------------------------------------------------------


def test_a_failing_command_is_not_retried_unless_asked_within_the_bound() -> None:
    assert CONFIG.jobs.backoff_limit == 0 and CONFIG.jobs.max_retries == 3
    default = plan({"command": ["x"]})
    assert default.retries == 0
    assert job_manifest(default, CONFIG, "bunshin-dana-abc")["spec"]["backoffLimit"] == 0
    asked = plan({"command": ["x"], "retries": 2})
    assert job_manifest(asked, CONFIG, "bunshin-dana-abc")["spec"]["backoffLimit"] == 2
    with pytest.raises(BunshinError, match=r"retries: at most 3 \(asked 4\)"):
        plan({"command": ["x"], "retries": 4})
    with pytest.raises(BunshinError, match="retries: must be at least 0"):
        parse_request({"command": ["x"], "retries": -1})
    with pytest.raises(BunshinError, match="retries: expected a whole number"):
        parse_request({"command": ["x"], "retries": "2"})
    assert form_to_body({"command": "x", "retries": "2"})["retries"] == 2
    assert "retries" not in form_to_body({"command": "x", "retries": ""})


def test_the_default_retries_must_be_retries_a_request_may_ask() -> None:
    data = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
    data["jobs"].update({"backoffLimit": 2, "maxRetries": 1})
    with pytest.raises(PlatformConfigError, match="backoffLimit \\(2\\) must be at most"):
        validate_platform_config(data)
    data["jobs"].update({"backoffLimit": 2, "maxRetries": 2})
    assert validate_platform_config(data).jobs.backoff_limit == 2


# -- a failure says its exit code and the end of its log -----------------------------------


def failed_pod(name: str, code: int, reason: str = "Error", at: str = "10:00") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": {"job-name": "j"}},
        "spec": {"nodeName": "server-1"},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "main",
                    "state": {
                        "terminated": {
                            "exitCode": code,
                            "reason": reason,
                            "finishedAt": f"2026-12-07T{at}:00Z",
                        }
                    },
                }
            ],
        },
    }


def failed_job(retries: int = 0) -> dict[str, Any]:
    condition = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": BACKOFF,
        "lastTransitionTime": "2026-12-07T10:01:00Z",
    }
    return {
        "metadata": {
            "name": "j",
            "uid": "job-uid",
            "creationTimestamp": "2026-12-07T09:59:00Z",
            "annotations": {"aiinfn.infn.it/command": json.dumps(["python", "-c", "a b"])},
            "labels": {},
        },
        "spec": {"backoffLimit": retries},
        "status": {"failed": retries + 1, "conditions": [condition]},
    }


def test_a_failed_job_says_its_exit_code_not_the_backoff_limit() -> None:
    view = job_view(failed_job(), [failed_pod("j-a", 3)], None)
    assert view["status"] == "failed" and view["reason"] == "the command failed with exit code 3"
    assert view["exitCode"] == 3 and view["retries"] == 0
    assert view["failure"] == {
        "pod": "j-a",
        "index": None,
        "exitCode": 3,
        "reason": "Error",
        "attempts": 1,
    }
    assert view["pods"][0]["exitCode"] == 3
    pods = [failed_pod("j-b", 2, at="10:05"), failed_pod("j-a", 3)]
    retried = job_view(failed_job(1), pods, None)
    assert retried["reason"] == (
        "the command failed with exit code 2 (2 times: the job's retries were used up)"
    )
    assert retried["failure"]["pod"] == "j-b"  # the last one
    oom = job_view(failed_job(), [failed_pod("j-a", 137, "OOMKilled")], None)
    assert "more memory than the job has (exit code 137)" in oom["reason"]
    # with no pod left to say more, the controller's words
    assert job_status(failed_job(), None, []) == ("failed", BACKOFF)
    # a run past its time is said as the controller says it
    late = failed_job()
    late["status"]["conditions"][0] |= {"reason": "DeadlineExceeded", "message": "too long"}
    assert job_status(late, None, [failed_pod("j-a", 137)]) == ("failed", "too long")


# -- the command as typed, times -----------------------------------------------------------


def test_the_command_is_kept_and_shown_as_typed() -> None:
    typed = """python -c "print('hello from bunshin')" """.strip()
    body = form_to_body({"command": typed})
    assert body["command"] == ["python", "-c", "print('hello from bunshin')"]
    p = plan(body)
    job = job_manifest(p, CONFIG, "bunshin-dana-abc")
    assert job["metadata"]["annotations"][COMMAND_TEXT] == typed
    job["metadata"]["creationTimestamp"] = "2026-12-07T09:59:00Z"
    assert job_view(job, [], None)["commandText"] == typed
    # without a text (the CLI, the API), the items quoted as a shell would need them
    bare = failed_job()
    assert job_view(bare, [], None)["commandText"] == "python -c 'a b'"
    # the text must be the command: what the page shows is what runs
    with pytest.raises(BunshinError, match="commandText: must split into exactly"):
        parse_request({"command": ["rm", "-rf", "x"], "commandText": "ls"})
    with pytest.raises(BunshinError, match="commandText: one line"):
        parse_request({"command": ["ls"], "commandText": "ls\n"})


def test_times_without_javascript_say_utc() -> None:
    assert utc_text("2026-12-07T15:58:26Z") == "2026-12-07 15:58 UTC"
    assert utc_text("2026-12-07T16:58:26+01:00") == "2026-12-07 15:58 UTC"
    assert utc_text(None) == "" and utc_text("soon") == "soon"


# -- the hub's services menu ---------------------------------------------------------------


def test_the_hubs_services_menu_says_batch_jobs() -> None:
    c = Config()
    configure_bunshin(c, "/etc/aiinfn/platform.yaml", "http://127.0.0.1:10101")
    assert c.JupyterHub.template_paths == [HUB_TEMPLATES]
    configure_bunshin(Config(), "/p.yaml", "http://x:1")  # idempotent per configuration
    # the hub's own page frame (JupyterHub's loader: its templates under "templates/")
    import jupyterhub

    stock = Path(jupyterhub.__file__).resolve().parents[4] / "share" / "jupyterhub" / "templates"
    if not stock.exists():
        stock = Path(jupyterhub.__file__).resolve().parent.parent / "share/jupyterhub/templates"
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader([str(stock)])}, "/"),
                jinja2.FileSystemLoader([HUB_TEMPLATES, str(stock)]),
            ]
        ),
        autoescape=True,
    )

    class Service:
        name, href, info = "bunshin", "/services/bunshin/", {"display_name": "Batch jobs"}

    class User:
        name, json_escaped_name, spawner = "dana", "dana", None

    html = environment.get_template("page.html").render(
        user=User(),
        services=[Service()],
        parsed_scopes=set(),
        static_url=lambda *a, **k: "",
        base_url="/hub/",
        prefix="/",
    )
    assert '<a class="dropdown-item" href="/services/bunshin/">Batch jobs</a>' in html


# -- the page, rendered and in a browser ---------------------------------------------------


def render_page(jobs: list[dict[str, Any]], **values: Any) -> str:
    from aiinfn_hub.bunshin.pages import _TEMPLATES
    from aiinfn_hub.bunshin.service import FINISHED

    context: dict[str, Any] = {
        "hub_prefix": "/hub/",
        "service_prefix": "/services/bunshin/",
        "service_name": "Batch jobs",
        "user": "dana",
        "admin": False,
        "xsrf": "x",
        "prefix": "/services/bunshin/",
        "jobs": jobs,
        "finished": FINISHED,
        "poll_seconds": 1,
        "error": "",
        "form": {},
        "accelerators": [],
        "server_running": True,
        "logs": None,
        "max_retries": 3,
        "default_retries": 0,
    }
    return _TEMPLATES.get_template("bunshin.html").render(**(context | values))


def test_the_form_says_what_same_as_my_server_means() -> None:
    t4 = CONFIG.accelerator("t4")
    assert t4 is not None
    html = render_page([], server_accelerator=t4, server_units=2)
    assert f"Same as my server ({t4.description} \u00d7 2)</option>" in html
    assert '<option value="none" >No GPU (CPU only)</option>' in html
    assert 'id="count" name="count" min="1" step="1"\n               value="2"' in html
    bare = render_page([])
    assert "Same as my server (no GPU)</option>" in bare
    assert 'value=""\n               placeholder="1"' in bare  # no units of no model
    assert "http-equiv" not in bare  # never reloads itself


@pytest.mark.slow
async def test_the_pages_script_adds_new_jobs_in_place_with_local_times() -> None:
    import shutil

    from playwright.async_api import Route, async_playwright, expect

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("needs Debian's chromium")
    job = job_view(failed_job(), [failed_pod("j-a", 3)], None)
    job["commandText"] = """python -c "print('<b>hi</b>')" """.strip()
    job["failure"] |= {"log": "Traceback\n<script>alert(1)</script>", "logTruncated": False}
    html = render_page([])
    origin = "http://bunshin.test"

    async def serve(route: Route) -> None:
        if route.request.url.endswith("/api/v1/jobs"):
            await route.fulfill(json=[job])
        else:
            await route.fulfill(body=html, content_type="text/html")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = await browser.new_context(timezone_id="Asia/Tokyo", locale="en-GB")
            # the script's timers, shortened: its first poll comes at once, not in 30 s
            await context.add_init_script(
                "const wait = window.setTimeout;"
                "window.setTimeout = (f, ms) => wait(f, Math.min(ms, 200));"
            )
            page = await context.new_page()
            await page.route(f"{origin}/**", serve)
            await page.goto(f"{origin}/services/bunshin/")
            await page.evaluate("window.notReloaded = true")
            await page.fill("#command", "typing meanwhile")
            row = page.locator("#job-j")
            await expect(row).to_have_count(1)
            await expect(page.locator("#bunshin-no-jobs")).to_have_count(0)
            # user text as text: quotes kept, nothing interpreted as HTML
            await expect(row.locator("code.bunshin-command")).to_have_text(job["commandText"])
            await expect(row.locator(".bunshin-reason")).to_have_text(
                "the command failed with exit code 3"
            )
            await expect(row.locator(".bunshin-failure-log")).to_have_text(
                "Traceback\n<script>alert(1)</script>"
            )
            # 09:59 UTC is 18:59 in Tokyo
            await expect(row.locator("time")).to_contain_text("18:59")
            await expect(row.locator("time")).to_have_attribute("title", "2026-12-07 09:59 UTC")
            await expect(page.locator("#bunshin-updates")).to_contain_text("new job j")
            assert await page.locator("#command").input_value() == "typing meanwhile"
            assert await page.evaluate("window.notReloaded") is True
        finally:
            await browser.close()
