"""The Bunshin service under abuse, over HTTP: its real tornado application and HubOAuth, the
emulated cluster, and a small threaded stand-in for the Hub API (who a token is, where the
user's server runs). Parallel submissions keep the quota, with one replica or two; logs are
capped per pod and per answer and say so; bodies are bounded; finished jobs do not pile up."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulated_server import JOBS, ROOT, SERVERS, dana_running, start_emulator
from playwright.async_api import async_playwright, expect
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.httpserver import HTTPServer

from aiinfn_hub.bunshin.app import make_app, serve_http
from aiinfn_hub.bunshin.errors import BunshinError
from aiinfn_hub.bunshin.service import JobService
from aiinfn_hub.config import PlatformConfig, validate_platform_config
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.processes import free_port
from aiinfn_hub.kube.rest import KubeRest
from aiinfn_hub.services.hub_api import HubClient
from aiinfn_hub.services.web import ServiceAuth

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PREFIX = "/services/bunshin/"
TOKEN = "dana-token"
LIMITS = {
    "maxActiveJobsPerUser": 2,
    "maxFinishedJobsPerUser": 2,
    "maxLogBytesPerPod": 4096,
    "maxLogBytesPerResponse": 10000,
}


def platform() -> PlatformConfig:
    data = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
    data["jobs"].update(LIMITS)
    return validate_platform_config(data)


class HubStandIn:
    """The Hub API's two answers the service needs, on its own thread (HubOAuth blocks)."""

    def __init__(self, pod_uid: str) -> None:
        user = {
            "kind": "user",
            "name": "dana",
            "admin": False,
            "groups": ["cms"],
            "scopes": ["access:services!service=bunshin", "custom:bunshin:submit"],
            "session_id": None,
        }
        server = {"ready": True, "state": {"pod_name": "jupyter-dana", "namespace": SERVERS}}
        server["state"]["pod_uid"] = pod_uid
        answers = {
            "/hub/api/user": user,
            "/hub/api/users/dana": {"name": "dana", "servers": {"": server}},
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.headers.get("Authorization", "").partition(" ")[2]
                answer = answers.get(self.path.split("?")[0])
                allowed = token == TOKEN or (token == "service" and self.path != "/hub/api/user")
                status = 200 if answer is not None and allowed else 403
                data = json.dumps(answer if status == 200 else {"message": "no"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_url = f"http://127.0.0.1:{self.server.server_address[1]}/hub/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Running:
    emulator: Emulator
    kube: KubeRest
    urls: list[str]  # one per replica of the service
    # the test's own client: the service's share the loop's default one (10 at a time)
    http: AsyncHTTPClient

    async def call(self, method: str, path: str, replica: int = 0, **kwargs: Any) -> HTTPResponse:
        request = HTTPRequest(
            f"{self.urls[replica]}{PREFIX}api/v1/{path}",
            method=method,
            headers={"Authorization": f"token {TOKEN}", **kwargs.pop("headers", {})},
            request_timeout=60,
            **kwargs,
        )
        response: HTTPResponse = await self.http.fetch(request, raise_error=False)
        return response

    async def jobs(self) -> list[dict[str, Any]]:
        answer = await self.kube.get(f"/apis/batch/v1/namespaces/{JOBS}/jobs")
        return [j for j in answer["items"] if not j["metadata"].get("deletionTimestamp")]


async def wait_until(predicate: Any, what: str, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with start_emulator(tmp_path / "emulator") as running:
        yield running


@pytest.fixture
async def service(emulator: Emulator) -> AsyncIterator[Running]:
    """dana's running server in the servers' namespace and two replicas of the service."""
    async with dana_running(emulator) as (kube, pod):
        hub = HubStandIn(pod["metadata"]["uid"])
        cfg = platform()
        servers: list[HTTPServer] = []
        urls = []
        for _ in range(2):  # replicas: each its own locks, one cluster
            svc = JobService(cfg, HubClient(hub.api_url, "service"), kube, SERVERS)
            auth = ServiceAuth(
                api_url=hub.api_url,
                api_token="service",
                oauth_client_id="service-bunshin",
                access_scopes={"access:services!service=bunshin"},
            )
            port = free_port()
            servers.append(serve_http(make_app(svc, PREFIX, hub_auth=auth), svc, "127.0.0.1", port))
            urls.append(f"http://127.0.0.1:{port}")
        try:
            http = AsyncHTTPClient(force_instance=True, max_clients=100)
            yield Running(emulator, kube, urls, http)
        finally:
            for server in servers:
                server.stop()
            hub.stop()


async def test_fifty_parallel_submissions_create_no_more_than_the_limit(service: Running) -> None:
    body = json.dumps({"command": ["true"]})
    answers = await asyncio.gather(*(service.call("POST", "jobs", body=body) for _ in range(50)))
    codes = sorted(a.code for a in answers)
    assert codes == [201] * 2 + [409] * 48, [
        a.body[:200] for a in answers if a.code not in (201, 409)
    ]
    refused = json.loads(next(a for a in answers if a.code == 409).body)
    assert refused["error"] == "over-quota" and "the limit is 2" in refused["message"]
    assert len(await service.jobs()) == 2


async def test_two_replicas_racing_roll_back_what_passes_the_limit(service: Running) -> None:
    body = json.dumps({"command": ["true"]})
    answers = await asyncio.gather(
        *(service.call("POST", "jobs", replica=i % 2, body=body) for i in range(20))
    )
    created = [json.loads(a.body)["id"] for a in answers if a.code == 201]
    assert {a.code for a in answers} <= {201, 409} and 1 <= len(created) <= 2
    assert sorted(j["metadata"]["name"] for j in await service.jobs()) == sorted(created)


async def test_a_replica_that_sees_the_limit_passed_removes_its_own_job(service: Running) -> None:
    """Replicas may see different lists: A listed before B's job existed (and kept its own),
    B sees three. B must roll back its own job whatever the names or timestamps say."""
    body = json.dumps({"command": ["true"]})
    first, second = [await service.call("POST", "jobs", body=body) for _ in range(2)]
    assert (first.code, second.code) == (201, 201)
    # "B" created a job at the same moment; its name sorts before the others
    template = next(iter(await service.jobs()))
    raced = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "bunshin-dana-000000",
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
        },
        "spec": {k: v for k, v in template["spec"].items() if k != "selector"},
    }
    raced["spec"]["template"]["metadata"]["labels"] = {
        k: v
        for k, v in raced["spec"]["template"]["metadata"]["labels"].items()
        if not k.startswith(("batch.kubernetes.io/", "controller-uid", "job-name"))
    }
    job = await service.kube.post(f"/apis/batch/v1/namespaces/{JOBS}/jobs", raced)
    cfg = platform()
    replica = JobService(cfg, HubClient("http://127.0.0.1:9/hub/api", "unused"), service.kube)
    with pytest.raises(BunshinError) as over:
        await replica.within_quota(cfg, job, await replica.jobs_of(cfg, "dana"))
    assert over.value.status == 409 and "limit is 2" in over.value.message
    names = {j["metadata"]["name"] for j in await service.jobs()}
    assert "bunshin-dana-000000" not in names and len(names) == 2


async def test_logs_are_cut_per_pod_and_per_answer_and_say_so(service: Running) -> None:
    body = json.dumps({"command": ["yes"], "completions": 3, "parallelism": 3})
    answer = await service.call("POST", "jobs", body=body)
    assert answer.code == 201, answer.body
    job_id = json.loads(answer.body)["id"]
    await service.kube.merge_patch(
        f"/apis/batch/v1/namespaces/{JOBS}/jobs/{job_id}", {"spec": {"suspend": False}}
    )

    async def three_running() -> list[str]:
        pods = (await service.kube.get(f"/api/v1/namespaces/{JOBS}/pods"))["items"]
        names = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
        return names if len(names) == 3 else []

    pods = await wait_until(three_running, "the job's three pods to run")
    line = "é" * 99 + "\n"  # two bytes per letter: a cut falls inside one sometimes
    for name in pods:
        key = (JOBS, name, "main")
        service.emulator.call(
            lambda key=key: service.emulator.store.logs.__setitem__(key, line * 30)
        )
    logs = await service.call("GET", f"jobs/{job_id}/logs")
    assert logs.code == 200 and logs.headers["Content-Type"] == "application/json"
    data = json.loads(logs.body)
    sizes = [len(p["log"].encode()) for p in data["pods"]]
    assert all(p["truncated"] for p in data["pods"]) and data["truncated"] is True
    assert max(sizes) <= 4096 and sum(sizes) <= 10000 and sizes[0] > 4000
    assert "cut at 4096 bytes per pod and 10000 per answer" in data["message"]
    tail = json.loads((await service.call("GET", f"jobs/{job_id}/logs?tail=2")).body)
    assert [p["log"] for p in tail["pods"]] == [line * 2] * 3 and tail["truncated"] is False
    for bad in ("%C2%B2", "-1", "1e3", "99999999"):  # "²" is a digit to str.isdigit()
        refused = await service.call("GET", f"jobs/{job_id}/logs?tail={bad}")
        assert refused.code == 400, (bad, refused.body)
        assert json.loads(refused.body)["message"].startswith("tail: expected a number")


async def test_bodies_past_the_limit_are_refused_unread_and_nothing_is_made(
    service: Running,
) -> None:
    huge = json.dumps({"command": ["true"], "sandbox": {"a.txt": "x" * (2 * 1024 * 1024)}})
    refused = await service.call("POST", "jobs", body=huge)
    assert refused.code == 400
    assert await service.jobs() == []
    fits = json.dumps({"command": ["true"], "sandbox": {"a.txt": "x" * 300_000}})
    over = await service.call("POST", "jobs", body=fits)  # read, then refused with the limit
    assert over.code == 422 and "sandbox: 300005 bytes, at most 262144" in over.body.decode()
    assert (await service.call("GET", "jobs")).code == 200  # still serving


async def test_finished_jobs_past_the_cap_go_oldest_first_with_their_sandboxes(
    service: Running,
) -> None:
    finished = []
    for minute in range(3):
        body = json.dumps({"command": ["true"], "sandbox": {"run.sh": "true"}})
        answer = await service.call("POST", "jobs", body=body)
        assert answer.code == 201, answer.body
        job_id = json.loads(answer.body)["id"]
        done = f"2030-01-01T00:0{minute}:00Z"
        path = f"/apis/batch/v1/namespaces/{JOBS}/jobs/{job_id}/status"
        await service.kube.merge_patch(
            path,
            {
                "status": {
                    "startTime": done,
                    "completionTime": done,
                    "conditions": [
                        {
                            "type": "SuccessCriteriaMet",
                            "status": "True",
                            "lastTransitionTime": done,
                        },
                        {"type": "Complete", "status": "True", "lastTransitionTime": done},
                    ],
                }
            },
        )
        finished.append(job_id)
    views = json.loads((await service.call("GET", "jobs")).body)
    assert sorted(v["id"] for v in views if v["status"] == "succeeded") == sorted(finished)
    newest = await service.call("POST", "jobs", body=json.dumps({"command": ["true"]}))
    assert newest.code == 201, newest.body
    left = sorted(j["metadata"]["name"] for j in await service.jobs())
    assert left == sorted([*finished[1:], json.loads(newest.body)["id"]])

    async def sandbox_gone() -> bool:
        maps = await service.kube.get(f"/api/v1/namespaces/{JOBS}/configmaps")
        return f"{finished[0]}-sandbox" not in [m["metadata"]["name"] for m in maps["items"]]

    await wait_until(sandbox_gone, "the oldest job's sandbox to go with it")


async def succeed(service: Running, job_id: str) -> None:
    """The Job controller's part: the job succeeded."""
    done = "2030-01-01T00:00:00Z"
    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": done}
        for kind in ("SuccessCriteriaMet", "Complete")
    ]
    await service.kube.merge_patch(
        f"/apis/batch/v1/namespaces/{JOBS}/jobs/{job_id}/status",
        {"status": {"startTime": done, "completionTime": done, "conditions": conditions}},
    )


async def test_the_api_and_the_page_refuse_to_cancel_a_finished_job_alike(
    service: Running,
) -> None:
    answer = await service.call("POST", "jobs", body=json.dumps({"command": ["true"]}))
    assert answer.code == 201, answer.body
    job_id = json.loads(answer.body)["id"]
    await succeed(service, job_id)
    message = f"job {job_id} has already succeeded"
    api = await service.call("DELETE", f"jobs/{job_id}")
    assert api.code == 409
    assert json.loads(api.body) == {"error": "finished", "message": message}
    page = await service.http.fetch(
        HTTPRequest(
            f"{service.urls[0]}{PREFIX}jobs/{job_id}/cancel",
            method="POST",
            body="confirm=1",
            headers={"Authorization": f"token {TOKEN}"},
            follow_redirects=False,
        ),
        raise_error=False,
    )
    assert page.code == 409 and message in page.body.decode()
    # the refusal is shown in the job's row, where the button was
    row = page.body.decode().split(f'id="job-{job_id}"', 1)[1].split("</tr>", 1)[0]
    assert f'<div class="alert alert-danger mt-2 mb-0" role="alert">{message}</div>' in row
    (job,) = await service.jobs()
    assert "aiinfn.infn.it/cancelled" not in (job["metadata"].get("annotations") or {})


async def test_the_page_wears_the_hubs_look_and_keeps_its_statuses_current(
    service: Running,
) -> None:
    answer = await service.call("POST", "jobs", body=json.dumps({"command": ["sleep", "60"]}))
    job_id = json.loads(answer.body)["id"]
    page = await service.http.fetch(
        HTTPRequest(f"{service.urls[0]}{PREFIX}", headers={"Authorization": f"token {TOKEN}"}),
        raise_error=False,
    )
    html = page.body.decode()
    assert page.code == 200 and page.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    assert '<link rel="stylesheet" href="/hub/static/css/style.min.css">' in html
    assert 'href="/hub/home"' in html and 'href="/hub/logout"' in html  # the hub's navigation
    assert f'id="job-{job_id}"' in html and 'data-status="queued"' in html
    assert 'aria-live="polite"' in html and 'data-api="/services/bunshin/api/v1/jobs"' in html
    # without JavaScript: a refresh link; the page never reloads itself (it would wipe the
    # form being typed), with or without JavaScript
    assert f'<a href="{PREFIX}" id="bunshin-refresh">Refresh</a>' in html
    assert "http-equiv" not in html and "location.reload" not in html
    logs = await service.http.fetch(
        HTTPRequest(
            f"{service.urls[0]}{PREFIX}jobs/{job_id}/logs",
            headers={"Authorization": f"token {TOKEN}"},
        ),
        raise_error=False,
    )
    assert logs.code == 200 and f"Logs of {job_id}" in logs.body.decode()
    missing = await service.http.fetch(
        HTTPRequest(
            f"{service.urls[0]}{PREFIX}jobs/bunshin-dana-nothere/logs",
            headers={"Authorization": f"token {TOKEN}"},
        ),
        raise_error=False,
    )
    refusal = '<div class="alert alert-danger" role="alert">no job &#39;bunshin-dana-nothere&#39;'
    assert missing.code == 404 and refusal in missing.body.decode()


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
async def test_the_pages_script_updates_statuses_in_place_without_a_reload(
    service: Running,
) -> None:
    answer = await service.call("POST", "jobs", body=json.dumps({"command": ["sleep", "60"]}))
    job_id = json.loads(answer.body)["id"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = await browser.new_context(
                extra_http_headers={"Authorization": f"token {TOKEN}"}
            )
            page = await context.new_page()
            await page.goto(f"{service.urls[0]}{PREFIX}")
            await page.evaluate("window.notReloaded = true")
            cell = page.locator(f"#job-{job_id} .bunshin-status")
            await expect(cell).to_have_attribute("data-status", "queued")
            await expect(page.locator(f"#job-{job_id} .bunshin-cancel")).to_have_count(1)
            await succeed(service, job_id)
            await expect(cell).to_have_attribute("data-status", "succeeded", timeout=20_000)
            await expect(cell).to_have_class("bunshin-status bunshin-status-succeeded")
            await expect(page.locator(f"#job-{job_id} .bunshin-cancel")).to_have_count(0)
            await expect(page.locator("#bunshin-updates")).to_have_text(f"{job_id} is succeeded.")
            assert await page.evaluate("window.notReloaded") is True
        finally:
            await browser.close()


def test_one_user_reads_logs_in_at_most_two_requests_at_once() -> None:
    cfg = platform()
    svc = JobService(cfg, HubClient("http://127.0.0.1:9/hub/api", "unused"), None)  # type: ignore[arg-type]
    with svc.reading_logs("dana"), svc.reading_logs("dana"):
        with pytest.raises(BunshinError) as busy, svc.reading_logs("dana"):
            pass
        assert busy.value.status == 429 and "already reading logs in 2" in busy.value.message
        with svc.reading_logs("erin"):  # others are not held back
            pass
    with svc.reading_logs("dana"):  # released: reads again
        pass
