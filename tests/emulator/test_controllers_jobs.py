"""The Job controller on a store, with simulated pods whose outcome the test decides."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ControllerCluster, running_cluster

from aiinfn_hub.dev.emulator.resources import JOBS, PODS

JSON = dict[str, Any]
OUTCOME = "emulator.aiinfn.dev/outcome"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path) as c:
        c.add_node("n1", {"cpu": "64"})
        yield c


def _job(name: str, outcome: str = "succeed", restart: str = "Never", **spec: Any) -> JSON:
    annotations = {OUTCOME: outcome, "emulator.aiinfn.dev/outcome-after": "0.05"}
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            **spec,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "x:1"}]},
            },
        },
    }


def _get(cluster: ControllerCluster, name: str) -> JSON:
    job = cluster.store.get(JOBS, "default", name)
    assert job is not None
    return job


def _condition(job: JSON | None, kind: str) -> JSON | None:
    for condition in (job or {}).get("status", {}).get("conditions") or []:
        if condition["type"] == kind and condition["status"] == "True":
            return dict(condition)
    return None


async def _until_condition(cluster: ControllerCluster, name: str, kind: str) -> JSON:
    await cluster.wait_for(
        lambda: _condition(cluster.store.get(JOBS, "default", name), kind), what=f"{name} {kind}"
    )
    return _get(cluster, name)


def _pods(cluster: ControllerCluster, job: str) -> list[JSON]:
    return [
        p
        for p in cluster.store.list(PODS, "default")
        if (p["metadata"].get("labels") or {}).get("job-name") == job
    ]


def _reasons(cluster: ControllerCluster, name: str) -> list[str]:
    events = [e for e in cluster.events(name) if e["involvedObject"]["kind"] == "Job"]
    return [e["reason"] for e in events]


async def test_completions_with_parallelism(cluster: ControllerCluster) -> None:
    job = cluster.create(JOBS, _job("work", completions=3, parallelism=2))
    uid = job["metadata"]["uid"]
    await cluster.wait_for(lambda: len(_pods(cluster, "work")) >= 2, what="two pods")
    first = _pods(cluster, "work")[0]
    meta = first["metadata"]
    assert meta["name"].startswith("work-") and len(meta["name"]) == len("work-") + 5
    assert meta["labels"]["batch.kubernetes.io/controller-uid"] == uid
    assert meta["labels"]["controller-uid"] == uid
    assert meta["labels"]["job-name"] == meta["labels"]["batch.kubernetes.io/job-name"] == "work"
    assert meta["ownerReferences"][0]["uid"] == uid
    assert meta["ownerReferences"][0]["controller"] is True
    assert first["status"]["phase"] in ("Pending", "Running", "Succeeded")  # admission ran
    done = await _until_condition(cluster, "work", "Complete")
    status = done["status"]
    assert status["succeeded"] == 3 and "active" not in status and "failed" not in status
    assert status["ready"] == 0 and status["terminating"] == 0
    assert status["uncountedTerminatedPods"] == {}
    assert status["startTime"] <= status["completionTime"]
    assert [c["type"] for c in status["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    complete = _condition(done, "Complete")
    assert complete is not None
    assert complete["reason"] == "CompletionsReached"
    assert complete["message"] == "Reached expected number of succeeded pods"
    reasons = _reasons(cluster, "work")
    assert reasons.count("SuccessfulCreate") == 3 and reasons[-1] == "Completed"
    created = [e["message"] for e in cluster.events("work", "SuccessfulCreate")]
    assert all(m.startswith("Created pod: work-") for m in created)
    # every pod was counted once and released from the tracking finalizer
    pods = _pods(cluster, "work")
    assert len(pods) == 3
    assert all(not p["metadata"].get("finalizers") for p in pods)


async def test_status_counts_active_and_ready_pods(cluster: ControllerCluster) -> None:
    cluster.create(JOBS, _job("busy", outcome="run", parallelism=3, completions=5))
    job = await cluster.wait_for(
        lambda: (j := _get(cluster, "busy"))["status"].get("ready") == 3 and j, what="3 ready"
    )
    assert job["status"]["active"] == 3 and job["status"]["startTime"]


async def test_indexed_jobs(cluster: ControllerCluster) -> None:
    cluster.create(
        JOBS, _job("idx", outcome="run", completions=3, parallelism=2, completionMode="Indexed")
    )
    await cluster.wait_for(lambda: len(_pods(cluster, "idx")) == 2, what="two pods")
    pods = _pods(cluster, "idx")
    indexes = sorted(
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods
    )
    assert indexes == ["0", "1"]
    for pod in pods:
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert pod["metadata"]["name"].startswith(f"idx-{index}-")
        assert pod["spec"]["hostname"] == f"idx-{index}"
        assert pod["spec"]["containers"][0]["env"][-1]["name"] == "JOB_COMPLETION_INDEX"
    zero = next(
        p["metadata"]["name"]
        for p in pods
        if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0"
    )
    cluster.controllers.set_pod_outcome("default", zero, "succeed")
    await cluster.wait_for(lambda: _get(cluster, "idx")["status"].get("completedIndexes") == "0")
    await cluster.wait_for(
        lambda: (
            "2"
            in {
                p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                for p in _pods(cluster, "idx")
            }
        ),
        what="index 2 started",
    )
    for pod in _pods(cluster, "idx"):
        cluster.controllers.set_pod_outcome("default", pod["metadata"]["name"], "succeed")
    done = await _until_condition(cluster, "idx", "Complete")
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3


async def test_backoff_limit(cluster: ControllerCluster) -> None:
    cluster.create(JOBS, _job("flaky", outcome="fail", backoffLimit=1))
    job = await _until_condition(cluster, "flaky", "Failed")
    failed = _condition(job, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert _condition(job, "FailureTarget") is not None
    assert job["status"]["failed"] == 2 and "completionTime" not in job["status"]
    [event] = cluster.events("flaky", "BackoffLimitExceeded")
    assert event["type"] == "Warning"


async def test_backoff_limit_counts_restarts_with_on_failure(cluster: ControllerCluster) -> None:
    cluster.create(JOBS, _job("crashy", outcome="fail", restart="OnFailure", backoffLimit=2))
    job = await _until_condition(cluster, "crashy", "Failed")
    assert _condition(job, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    await cluster.wait_for(lambda: not _pods(cluster, "crashy"), what="the pod deleted")


async def test_suspend_and_resume(cluster: ControllerCluster) -> None:
    cluster.create(JOBS, _job("queued", outcome="run", suspend=True, parallelism=2, completions=2))
    job = await _until_condition(cluster, "queued", "Suspended")
    assert _condition(job, "Suspended")["reason"] == "JobSuspended"  # type: ignore[index]
    assert "startTime" not in job["status"] and not _pods(cluster, "queued")
    resumed = copy.deepcopy(job)
    resumed["spec"]["suspend"] = False
    cluster.store.update(JOBS, resumed)
    job = await cluster.wait_for(
        lambda: (j := _get(cluster, "queued"))["status"].get("ready") == 2 and j, what="resumed"
    )
    assert job["status"]["startTime"]
    suspended = next(c for c in job["status"]["conditions"] if c["type"] == "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("False", "JobResumed")
    again = copy.deepcopy(job)
    again["spec"]["suspend"] = True
    cluster.store.update(JOBS, again)
    await cluster.wait_for(lambda: not _pods(cluster, "queued"), what="active pods removed")
    job = _get(cluster, "queued")
    assert _condition(job, "Suspended") is not None
    assert "failed" not in job["status"]  # pods removed by suspension are not failures
    assert _reasons(cluster, "queued").count("SuccessfulDelete") == 2
    assert {"Suspended", "Resumed"} <= set(_reasons(cluster, "queued"))


async def test_active_deadline(cluster: ControllerCluster) -> None:
    began = time.monotonic()
    cluster.create(JOBS, _job("slow", outcome="run", activeDeadlineSeconds=1))
    job = await _until_condition(cluster, "slow", "Failed")
    assert 1 <= time.monotonic() - began < 2.5
    failed = _condition(job, "Failed")
    assert failed is not None and failed["reason"] == "DeadlineExceeded"
    assert failed["message"] == "Job was active longer than specified deadline"
    await cluster.wait_for(lambda: not _pods(cluster, "slow"), what="the pod deleted")


async def test_ttl_after_finished(cluster: ControllerCluster) -> None:
    cluster.create(JOBS, _job("short", ttlSecondsAfterFinished=0))
    await _until_condition(cluster, "short", "Complete")
    await cluster.gone(JOBS, "short")
    await cluster.wait_for(lambda: not _pods(cluster, "short"), what="pods collected")


async def test_work_queue_job_and_scale_down(cluster: ControllerCluster) -> None:
    cluster.create(JOBS, _job("queue", outcome="run", parallelism=3))
    await cluster.wait_for(lambda: len(_pods(cluster, "queue")) == 3)
    job = copy.deepcopy(_get(cluster, "queue"))
    job["spec"]["parallelism"] = 1
    cluster.store.update(JOBS, job)
    await cluster.wait_for(lambda: len(_pods(cluster, "queue")) == 1, what="scaled down")
    # without completions, one success completes the Job once the rest are done
    [pod] = _pods(cluster, "queue")
    cluster.controllers.set_pod_outcome("default", pod["metadata"]["name"], "succeed")
    job = await _until_condition(cluster, "queue", "Complete")
    assert job["status"]["succeeded"] == 1


async def test_pods_are_created_through_admission(cluster: ControllerCluster) -> None:
    job = _job("prio", outcome="run")
    job["spec"]["template"]["spec"]["priorityClassName"] = "missing"
    cluster.create(JOBS, job)
    event = await cluster.wait_for(lambda: cluster.events("prio", "FailedCreate"))
    assert event[0]["message"] == (
        'Error creating: pods "prio-" is forbidden: no PriorityClass with name missing was found'
    )
