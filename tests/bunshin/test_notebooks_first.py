"""Notebooks first: a job whose pod a notebook preempted is not failed. Its status and view
over the objects a real cluster shows (the preempted pod kept by the Job controller's
finalizer with kube-scheduler's ``DisruptionTarget`` condition, the replacement Pending for a
GPU, Kueue's Workload still admitted), the page, the CLI and the Kueue objects."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aiinfn_hub.bunshin import cli
from aiinfn_hub.bunshin.job import job_pod_spec
from aiinfn_hub.bunshin.job_view import MAX_PREEMPTIONS, job_status, job_view
from aiinfn_hub.bunshin.kueue import check_kueue, kueue_objects
from aiinfn_hub.bunshin.pages import _TEMPLATES
from aiinfn_hub.bunshin.policy import JobContext, plan_job
from aiinfn_hub.bunshin.request import parse_request
from aiinfn_hub.bunshin.service import FINISHED
from aiinfn_hub.config import load_platform_config
from aiinfn_hub.platform.entitlements import UserContext

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_platform_config(ROOT / "examples" / "platform.yaml")
NOW = datetime(2025, 3, 7, 15, 30, tzinfo=UTC)
NAME = "bunshin-dana-a1b2c3"
JSON = dict[str, Any]


def job(**spec: Any) -> JSON:
    """The Job as the API server returns it once Kueue admitted and unsuspended it."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": NAME,
            "namespace": "bunshin",
            "uid": "5c1e-job-uid",
            "creationTimestamp": "2025-03-07T13:40:00Z",
            "labels": {
                "app.kubernetes.io/managed-by": "bunshin",
                "aiinfn.infn.it/bunshin-user": "dana",
                "aiinfn.infn.it/project": "cms",
                "aiinfn.infn.it/accelerator": "t4",
                "aiinfn.infn.it/accelerator-count": "1",
                "kueue.x-k8s.io/queue-name": "cms",
            },
            "annotations": {
                "aiinfn.infn.it/user": "dana",
                "aiinfn.infn.it/command": '["python", "train.py"]',
                "aiinfn.infn.it/display-name": "train",
            },
        },
        "spec": {
            "suspend": False,
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": 3,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    }
                ]
            },
            "podReplacementPolicy": "Failed",
            **spec,
        },
        "status": {
            "startTime": "2025-03-07T13:45:00Z",
            "active": 1,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        },
    }


def workload() -> JSON:
    """Kueue's Workload (v1beta2): admitted, and still admitted after the preemption."""
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": f"job-{NAME}-3f2a1",
            "namespace": "bunshin",
            "labels": {"kueue.x-k8s.io/job-uid": "5c1e-job-uid"},
        },
        "spec": {"active": True, "queueName": "cms", "podSets": [{"name": "main", "count": 1}]},
        "status": {
            "admission": {
                "clusterQueue": "project-cms",
                "podSetAssignments": [
                    {"name": "main", "flavors": {"nvidia.com/gpu": "gpu-t4"}, "count": 1}
                ],
            },
            "conditions": [
                {
                    "type": "QuotaReserved",
                    "status": "True",
                    "reason": "QuotaReserved",
                    "message": "Quota reserved in ClusterQueue project-cms",
                    "lastTransitionTime": "2025-03-07T13:44:58Z",
                },
                {
                    "type": "Admitted",
                    "status": "True",
                    "reason": "Admitted",
                    "message": "The workload is admitted",
                    "lastTransitionTime": "2025-03-07T13:44:58Z",
                },
            ],
        },
    }


def pod(suffix: str, index: int | None = None) -> JSON:
    annotations = {} if index is None else {"batch.kubernetes.io/job-completion-index": str(index)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{NAME}-{suffix}",
            "namespace": "bunshin",
            "labels": {"job-name": NAME, "batch.kubernetes.io/job-name": NAME},
            "annotations": annotations,
            "finalizers": ["batch.kubernetes.io/job-tracking"],
        },
        "spec": {"priorityClassName": "bunshin-batch", "priority": -100},
        "status": {},
    }


def preempted(
    suffix: str = "x7k2p",
    at: str = "2025-03-07T14:02:31Z",
    started: str = "2025-03-07T13:50:00Z",
    reason: str = "PreemptionByScheduler",
    node: str = "gpu-node-1",
    index: int | None = None,
    terminating: bool = False,
) -> JSON:
    """A pod kube-scheduler preempted for a notebook: ``DisruptionTarget``, deleted (the Job
    controller's finalizer keeps it), Failed once the kubelet stopped it (or still going)."""
    message = {
        "PreemptionByScheduler": "default-scheduler: preempting to accommodate a higher "
        "priority pod",
        "DeletionByTaintManager": "Taint manager: deleting due to NoExecute taint",
        "TerminationByKubelet": "The node was low on resource: memory.",
        "EvictionByEvictionAPI": "Eviction API: evicting",
    }.get(reason, "")
    p = pod(suffix, index)
    p["metadata"]["deletionTimestamp"] = at
    p["metadata"]["deletionGracePeriodSeconds"] = 30
    p["spec"]["nodeName"] = node
    container = {
        "name": "main",
        "ready": False,
        "restartCount": 0,
        "state": {
            "terminated": {
                "exitCode": 143,
                "reason": "Error",
                "startedAt": "2025-03-07T13:51:10Z",
                "finishedAt": at,
            }
        },
    }
    if terminating:
        container["state"] = {"running": {"startedAt": "2025-03-07T13:51:10Z"}}
    p["status"] = {
        "phase": "Running" if terminating else "Failed",
        "startTime": started,
        "conditions": [
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": at,
            },
            {"type": "Ready", "status": "False", "lastTransitionTime": at},
            {
                "type": "PodScheduled",
                "status": "True",
                "lastTransitionTime": "2025-03-07T13:49:59Z",
            },
        ],
        "containerStatuses": [container],
    }
    return p


def pending(suffix: str = "q4m8z", index: int | None = None) -> JSON:
    """The replacement: no GPU free, and never allowed to preempt (``preemptionPolicy:
    Never``)."""
    p = pod(suffix, index)
    p["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: "
                "not eligible due to preemptionPolicy=Never.",
                "lastTransitionTime": "2025-03-07T14:02:33Z",
            }
        ],
    }
    return p


def running(suffix: str = "q4m8z", index: int | None = None) -> JSON:
    p = pod(suffix, index)
    p["spec"]["nodeName"] = "gpu-node-2"
    p["status"] = {
        "phase": "Running",
        "startTime": "2025-03-07T14:40:00Z",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": "main",
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2025-03-07T14:40:02Z"}},
            }
        ],
    }
    return p


def succeeded_job() -> JSON:
    finished = job()
    finished["status"] |= {
        "active": 0,
        "succeeded": 1,
        "completionTime": "2025-03-07T15:10:00Z",
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"},
        ],
    }
    return finished


# -- status and view -----------------------------------------------------------------------------


def test_a_preempted_job_waits_queued_for_a_gpu_and_is_not_failed() -> None:
    pods = [preempted(), pending()]
    status = job_status(job(), workload(), pods, NOW)
    assert status == ("queued", "preempted by a notebook at 14:02, waiting to run again")
    view = job_view(job(), pods, workload(), NOW)
    assert (view["status"], view["reason"]) == status
    assert view["preemptions"] == [
        {"at": "2025-03-07T14:02:31Z", "node": "gpu-node-1", "index": None, "lostSeconds": 751}
    ]
    assert view["preemptionNote"] == "preempted once by a notebook: lost 12 min of running"
    # before the kubelet stopped it, and before the Job controller made the replacement
    (terminating,) = [preempted(terminating=True)]
    assert job_status(job(), workload(), [terminating], NOW)[0] == "queued"
    assert job_status(job(), workload(), [preempted()], NOW)[0] == "queued"


def test_the_date_is_said_when_the_preemption_was_not_today() -> None:
    pods = [preempted(at="2025-03-06T23:58:00Z"), pending()]
    assert job_status(job(), workload(), pods, NOW)[1] == (
        "preempted by a notebook at 23:58 on 2025-03-06, waiting to run again"
    )
    # without "now" the date is always given (pure: no clock is read)
    assert "at 14:02 on 2025-03-07," in job_status(job(), workload(), [preempted()])[1]


def test_it_runs_again_and_says_so() -> None:
    pods = [preempted(), running()]
    assert job_status(job(), workload(), pods, NOW) == (
        "running",
        "running again after a preemption at 14:02",
    )
    view = job_view(job(), pods, workload(), NOW)
    assert {p["name"][-5:]: p["phase"] for p in view["pods"]} == {
        "x7k2p": "Failed",
        "q4m8z": "Running",
    }
    assert len(view["preemptions"]) == 1


def test_an_offloaded_job_that_went_remote_after_a_preemption_says_so() -> None:
    remote = running()
    remote["spec"]["nodeName"] = "vk-interlink"
    pods = [preempted(), remote]
    virtual = frozenset({"vk-interlink"})
    assert job_status(job(), workload(), pods, NOW, virtual) == (
        "running",
        "running again, offloaded to virtual node vk-interlink, after a preemption at 14:02",
    )
    view = job_view(job(), pods, workload(), NOW, virtual)
    assert {p["node"]: p["offloaded"] for p in view["pods"]} == {
        "gpu-node-1": False,
        "vk-interlink": True,
    }
    # without knowing the virtual nodes it is only running again; a job offloaded from the
    # start says where it runs
    assert (
        job_status(job(), workload(), pods, NOW)[1] == "running again after a preemption at 14:02"
    )
    assert job_status(job(), workload(), [remote], NOW, virtual) == (
        "running",
        "offloaded to virtual node vk-interlink",
    )
    assert job_status(job(), workload(), [running()], NOW, virtual) == ("running", "")


def test_a_finished_job_keeps_its_preemptions() -> None:
    done = running()
    done["status"]["phase"] = "Succeeded"
    pods = [preempted(), preempted("b9c3d", at="2025-03-07T14:30:00Z"), done]
    view = job_view(succeeded_job(), pods, workload(), NOW)
    assert (view["status"], view["reason"]) == ("succeeded", "")
    assert [p["at"] for p in view["preemptions"]] == [
        "2025-03-07T14:02:31Z",
        "2025-03-07T14:30:00Z",
    ]
    assert view["preemptionNote"] == "preempted 2 times by notebooks: lost 52 min of running"
    failed = job()
    failed["status"]["conditions"] = [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "oom"}
    ]
    assert job_view(failed, pods, workload(), NOW)["status"] == "failed"  # its own failure
    assert len(job_view(failed, pods, workload(), NOW)["preemptions"]) == 2


def test_preemption_never_makes_a_job_failed() -> None:
    for pods in ([preempted()], [preempted(), pending()], [preempted(), running()]):
        assert job_status(job(), workload(), pods, NOW)[0] in ("queued", "running")


def test_other_disruptions_are_named_as_what_they_are() -> None:
    cases = {
        "DeletionByTaintManager": "evicted by a taint on its node",
        "TerminationByKubelet": "stopped by its node (out of resources or shutting down)",
        "EvictionByEvictionAPI": "evicted from its node (drain or maintenance)",
        "DeletionByPodGC": "lost with its node",
        "SomethingNew": "stopped by the cluster (SomethingNew)",
    }
    for reason, words in cases.items():
        pods = [preempted(reason=reason), pending()]
        status, why = job_status(job(), workload(), pods, NOW)
        assert status == "queued" and why.startswith(words) and "at 14:02" in why
        assert "notebook" not in why
        view = job_view(job(), pods, workload(), NOW)
        assert view["preemptions"] == [] and view["preemptionNote"] == ""
        again = job_status(job(), workload(), [preempted(reason=reason), running()], NOW)[1]
        assert again.startswith("running again after ") and "preemption" not in again


def test_a_pod_that_finished_during_its_grace_period_lost_nothing() -> None:
    done = preempted()
    done["status"]["phase"] = "Succeeded"
    view = job_view(succeeded_job(), [done], workload(), NOW)
    assert view["preemptions"] == [] and view["status"] == "succeeded"


def test_an_indexed_job_says_which_indexes_wait() -> None:
    indexed = job(completions=4, parallelism=4, completionMode="Indexed")
    pods = [
        running("a", 0),
        running("b", 1),
        preempted("c", index=2),
        pending("d", 2),
        preempted("e", index=3, at="2025-03-07T14:05:00Z"),
        running("f", 3),
    ]
    assert job_status(indexed, workload(), pods, NOW) == (
        "running",
        "index 2 preempted by a notebook at 14:02, waiting to run again",
    )
    view = job_view(indexed, pods, workload(), NOW)
    assert [(p["index"], p["node"]) for p in view["preemptions"]] == [
        (2, "gpu-node-1"),
        (3, "gpu-node-1"),
    ]
    pods[3] = running("d", 2)
    assert job_status(indexed, workload(), pods, NOW) == (
        "running",
        "running again after a preemption at 14:05",
    )
    # every running pod taken: nothing runs, the job waits for GPUs
    only_preempted = [preempted(f"p{i}", index=i) for i in range(4)]
    assert job_status(indexed, workload(), only_preempted, NOW)[0] == "queued"


def test_the_list_is_bounded_to_the_most_recent() -> None:
    indexed = job(completions=200, parallelism=200, completionMode="Indexed")
    pods = [
        preempted(
            f"p{i}",
            index=i,
            at=f"2025-03-07T{10 + i // 60:02d}:{i % 60:02d}:00Z",
            started="2025-03-07T09:00:00Z",
        )
        for i in range(200)
    ]
    view = job_view(indexed, pods, workload(), NOW)
    assert len(view["preemptions"]) == MAX_PREEMPTIONS == 20
    assert [p["index"] for p in view["preemptions"]] == list(range(180, 200))
    assert view["preemptions"] == sorted(view["preemptions"], key=lambda p: p["at"])
    assert view["preemptionNote"].startswith("preempted 200 times by notebooks: lost ")
    assert len(json.dumps(view)) < 70_000  # the pods list is the job's own, not ours to cut


def test_lost_time_falls_back_to_the_containers_start() -> None:
    p = preempted()
    del p["status"]["startTime"]
    (entry,) = job_view(job(), [p], workload(), NOW)["preemptions"]
    assert entry["lostSeconds"] == 681  # 13:51:10 to 14:02:31
    del p["status"]["containerStatuses"]
    (entry,) = job_view(job(), [p], workload(), NOW)["preemptions"]
    assert entry["lostSeconds"] == 0
    assert job_view(job(), [p], workload(), NOW)["preemptionNote"] == (
        "preempted once by a notebook before it had run"
    )


def test_nothing_changes_for_jobs_never_preempted() -> None:
    assert job_status(job(), workload(), [pending()], NOW) == ("admitted", "pods starting")
    assert job_status(job(), workload(), [running()], NOW) == ("running", "")
    view = job_view(job(), [running()], workload(), NOW)
    assert view["preemptions"] == [] and view["preemptionNote"] == ""


# -- the page ------------------------------------------------------------------------------------


def render(jobs: list[JSON]) -> str:
    return _TEMPLATES.get_template("bunshin.html").render(
        hub_prefix="/hub/",
        service_prefix="/services/bunshin/",
        service_name="Bunshin jobs",
        user="dana",
        admin=False,
        xsrf="x",
        prefix="/services/bunshin/",
        jobs=jobs,
        finished=FINISHED,
        refresh=True,
        poll_seconds=5,
        error="",
        notice="",
        form={},
        accelerators=[],
        can_offload=False,
        offload_juicefs=False,
        server_running=True,
        logs=None,
    )


def test_the_page_says_why_the_job_waits_and_what_it_lost() -> None:
    html = render([job_view(job(), [preempted(), pending()], workload(), NOW)])
    assert 'data-status="queued"' in html
    assert (
        '<span class="bunshin-reason form-text d-block">preempted by a notebook at 14:02, '
        "waiting to run again</span>"
    ) in html
    assert (
        '<span class="bunshin-preempted form-text d-block">preempted once by a notebook: '
        "lost 12 min of running</span>"
    ) in html
    assert "bunshin-cancel" in html  # still active: it can be cancelled
    # the script keeps both current in place
    assert 'querySelector(".bunshin-preempted")' in html and "job.preemptionNote" in html


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
async def test_the_pages_script_shows_a_preemption_without_a_reload() -> None:
    from playwright.async_api import Route, async_playwright, expect

    before = job_view(job(), [pending()], workload(), NOW)
    after = job_view(job(), [preempted(), pending()], workload(), NOW)
    html = render([before])
    origin = "http://bunshin.test"

    async def serve(route: Route) -> None:
        if route.request.url.endswith("/api/v1/jobs"):
            await route.fulfill(json=[after])
        else:
            await route.fulfill(body=html, content_type="text/html")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            await page.route(f"{origin}/**", serve)
            await page.goto(f"{origin}/services/bunshin/")
            cell = page.locator(f"#job-{NAME} .bunshin-status")
            await expect(cell).to_have_attribute("data-status", "admitted")
            await expect(cell).to_have_attribute("data-status", "queued", timeout=20_000)
            await expect(cell.locator(".bunshin-reason")).to_have_text(after["reason"])
            await expect(cell.locator(".bunshin-preempted")).to_have_text(
                "preempted once by a notebook: lost 12 min of running"
            )
        finally:
            await browser.close()


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def api_answer(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    monkeypatch.setattr(cli, "call", lambda method, path, body=None: answers[path])
    return answers


def test_status_stays_running_for_snakemake_while_the_job_waits_again(
    api_answer: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    waiting = job_view(job(), [preempted(), pending()], workload(), NOW)
    api_answer[f"jobs/{NAME}"] = waiting
    assert cli.main(["status", NAME]) == 0
    assert capsys.readouterr().out == "running\n"
    assert cli.main(["status", "--explain", NAME]) == 0
    assert capsys.readouterr().out == (
        "running\nqueued: preempted by a notebook at 14:02, waiting to run again; "
        "preempted once by a notebook: lost 12 min of running\n"
    )
    api_answer[f"jobs/{NAME}"] = job_view(succeeded_job(), [preempted()], workload(), NOW)
    assert cli.main(["status", NAME]) == 0
    assert capsys.readouterr().out == "success\n"


def test_ls_shows_the_reason(
    api_answer: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    api_answer["jobs"] = [
        job_view(job(), [preempted(), pending()], workload(), NOW),
        job_view(succeeded_job(), [], workload(), NOW) | {"id": "bunshin-dana-ffffff"},
    ]
    assert cli.main(["ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == [NAME, "queued", "t4x1"]
    assert lines[1].strip() == (
        "preempted by a notebook at 14:02, waiting to run again; "
        "preempted once by a notebook: lost 12 min of running"
    )
    assert lines[2].split()[:2] == ["bunshin-dana-ffffff", "succeeded"] and len(lines) == 3


# -- the Kueue objects ---------------------------------------------------------------------------


def test_the_kueue_objects_put_notebooks_first() -> None:
    objects = kueue_objects(CONFIG)
    assert check_kueue(objects) == []
    (priority,) = [o for o in objects if o["kind"] == "PriorityClass"]
    # job pods: below notebooks (priority 0 without a class, or notebookPriorityClass above
    # it) and never preempting anything themselves
    assert priority["metadata"]["name"] == CONFIG.jobs.priority_class
    assert priority["value"] == -100 and priority["preemptionPolicy"] == "Never"
    assert priority["globalDefault"] is False  # notebooks never get it by default
    queues = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterQueue"}
    for name in CONFIG.projects:
        preemption = queues[f"project-{name}"]["spec"]["preemption"]
        assert preemption == {"withinClusterQueue": "LowerPriority", "reclaimWithinCohort": "Any"}
    # Kueue admits only jobs: no queue object selects the servers' pods, and nothing is
    # labelled for the notebooks' namespace
    kinds = {o["kind"] for o in objects}
    assert kinds == {
        "PriorityClass",
        "WorkloadPriorityClass",
        "ResourceFlavor",
        "ClusterQueue",
        "LocalQueue",
    }
    assert {o["metadata"]["namespace"] for o in objects if o["kind"] == "LocalQueue"} == {
        CONFIG.jobs.namespace
    }


def test_the_jobs_priority_class_is_the_one_the_job_pods_name() -> None:
    (priority,) = [o for o in kueue_objects(CONFIG) if o["kind"] == "PriorityClass"]
    source = json.loads((ROOT / "tests" / "golden" / "pod-cpu-only.json").read_text())
    source["metadata"] |= {"uid": "0b7c-uid", "namespace": "jupyterhub"}
    source["status"] = {"phase": "Running"}
    context = JobContext(UserContext("dana", frozenset({"cms"})), CONFIG, False, 0)
    plan = plan_job(parse_request({"command": ["x"]}), context, source, "")
    assert job_pod_spec(plan, CONFIG, NAME)["priorityClassName"] == priority["metadata"]["name"]
