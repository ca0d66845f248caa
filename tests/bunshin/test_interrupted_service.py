"""The Bunshin service killed at each step of a submission and of a cancel (issue 18): a
process of its own (``doomed_service.py``) is held at the step by the emulator's latency and
SIGKILLed there, so none of its clean-up runs. Afterwards: no Job is ever queued without its
sandbox, jobs submitted before are listed as they were, and the janitor a restarted service
runs removes what the interrupted submission left and carries out the interrupted cancel."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from emulated_server import JOBS, SERVERS, MemoryHub, dana_running, platform, start_emulator

from aiinfn_hub.bunshin.janitor import SubmissionJanitor
from aiinfn_hub.bunshin.job import QUEUE_LABEL, SUBMISSION_GRACE_SECONDS
from aiinfn_hub.bunshin.service import JobService
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.kube.rest import KubeRest
from aiinfn_hub.services.caller import Caller

pytestmark = pytest.mark.slow

DANA = Caller("dana", frozenset({"cms"}), frozenset({"custom:bunshin:submit"}))
SCRIPT = Path(__file__).with_name("doomed_service.py")
WAIT = 60.0  # an upper bound: every wait ends as soon as its condition holds
HOLD = 3.0  # seconds the emulator holds the step's request (the kill comes meanwhile)
LATER = timedelta(seconds=SUBMISSION_GRACE_SECONDS + 5)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with start_emulator(tmp_path / "emulator") as running:
        yield running


@pytest.fixture
async def cluster(emulator: Emulator) -> AsyncIterator[tuple[KubeRest, str]]:
    async with dana_running(emulator) as (kube, pod):
        yield kube, pod["metadata"]["uid"]


async def until(predicate: Any, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        result = predicate()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _objects(emulator: Emulator, kind: str) -> list[dict[str, Any]]:
    return emulator.objects(kind, JOBS)


def _jobs(emulator: Emulator) -> list[dict[str, Any]]:
    return _objects(emulator, "Job")


def _sandboxes(emulator: Emulator) -> list[dict[str, Any]]:
    return [
        c for c in _objects(emulator, "ConfigMap") if c["metadata"]["name"].endswith("-sandbox")
    ]


def _never_queued_without_sandbox(emulator: Emulator) -> None:
    sandboxes = {c["metadata"]["name"] for c in _sandboxes(emulator)}
    for job in _jobs(emulator):
        if QUEUE_LABEL in job["metadata"]["labels"]:
            assert f"{job['metadata']['name']}-sandbox" in sandboxes, job["metadata"]


def _doomed(emulator: Emulator, uid: str, *action: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(emulator.write_kubeconfig()), uid, *action],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=SCRIPT.parent,
    )


def _kill(process: subprocess.Popen[str]) -> None:
    assert process.poll() is None, process.communicate()[0]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _restarted(kube: KubeRest, uid: str) -> tuple[JobService, SubmissionJanitor]:
    service = JobService(platform(), MemoryHub(uid), kube, SERVERS, {SERVERS: "servers"})
    return service, SubmissionJanitor(service.cluster, JOBS)


@pytest.mark.parametrize(
    ("held", "reached"),
    [
        # killed after the Job, while its sandbox is being written
        (("create", "configmaps"), lambda em: _jobs(em)),
        # killed after the sandbox, while the Job is being queued
        (("patch", "jobs"), lambda em: _sandboxes(em)),
    ],
    ids=["before-the-sandbox", "before-the-release"],
)
async def test_a_submission_killed_half_way_leaves_nothing_that_runs_or_stays(
    emulator: Emulator,
    cluster: tuple[KubeRest, str],
    held: tuple[str, str],
    reached: Any,
) -> None:
    kube, uid = cluster
    service, janitor = _restarted(kube, uid)
    earlier = await service.submit(
        DANA, {"command": ["python", "prepare.py"], "sandbox": {"prepare.py": "print(0)"}}
    )

    emulator.faults.add_latency(*held, HOLD)
    doomed = _doomed(emulator, uid, "submit")
    await until(
        lambda: (
            [j for j in _jobs(emulator) if j["metadata"]["name"] != earlier["id"]]
            and reached(emulator)
        ),
        "the submission to reach the step",
    )
    _kill(doomed)
    emulator.faults.add_latency(*held, 0)

    (left,) = [j for j in _jobs(emulator) if j["metadata"]["name"] != earlier["id"]]
    assert QUEUE_LABEL not in left["metadata"]["labels"], "a half-made job was queued"
    assert left["spec"]["suspend"] is True
    _never_queued_without_sandbox(emulator)

    # the restarted service: the earlier job is listed as it was; the janitor leaves a
    # submission that may still be in progress alone, and removes it once it cannot be
    listed = {j["id"]: j["status"] for j in await service.list_jobs(DANA)}
    assert listed[earlier["id"]] == "queued"
    assert (await janitor.sweep()).removed == []
    assert (await janitor.sweep(datetime.now(UTC) + LATER)).removed == [left["metadata"]["name"]]
    # the sandbox goes with its Job (also one whose create the emulator finished after the kill)
    await until(
        lambda: (
            [j["metadata"]["name"] for j in _jobs(emulator)] == [earlier["id"]]
            and [c["metadata"]["name"] for c in _sandboxes(emulator)]
            == [f"{earlier['id']}-sandbox"]
        ),
        "only the earlier job and its sandbox to remain",
    )
    assert [j["id"] for j in await service.list_jobs(DANA)] == [earlier["id"]]


async def test_a_cancel_killed_half_way_is_carried_out_by_the_restarted_service(
    emulator: Emulator, cluster: tuple[KubeRest, str]
) -> None:
    kube, uid = cluster
    service, janitor = _restarted(kube, uid)
    job = await service.submit(DANA, {"command": ["sleep", "600"]})
    stored = await kube.get(f"/apis/batch/v1/namespaces/{JOBS}/jobs/{job['id']}")
    # Kueue's Workload for the job, as Kueue writes it
    workload = await kube.post(
        f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{JOBS}/workloads",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "Workload",
            "metadata": {
                "name": f"job-{job['id']}",
                "labels": {"kueue.x-k8s.io/job-uid": stored["metadata"]["uid"]},
            },
            "spec": {
                "active": True,
                "queueName": stored["metadata"]["labels"][QUEUE_LABEL],
                "podSets": [
                    {
                        "name": "main",
                        "count": 1,
                        "template": stored["spec"]["template"],
                    }
                ],
            },
        },
    )

    emulator.faults.add_latency("patch", "workloads", HOLD)
    doomed = _doomed(emulator, uid, "cancel", job["id"])
    await until(
        lambda: (
            "aiinfn.infn.it/cancelled" in (_jobs(emulator)[0]["metadata"].get("annotations") or {})
        ),
        "the cancel to mark the job",
    )
    _kill(doomed)
    emulator.faults.add_latency("patch", "workloads", 0)

    # the job says cancelled; until the janitor comes, its Workload may still be active
    (shown,) = await service.list_jobs(DANA)
    assert shown["status"] == "cancelled"
    swept = await janitor.sweep()
    name = workload["metadata"]["name"]
    stored_workload = emulator.objects("Workload", JOBS)[0]
    assert stored_workload["spec"]["active"] is False
    # deactivated by the janitor, or by the killed process's request the emulator finished
    assert swept.deactivated in ([name], [])
    assert (await janitor.sweep()).deactivated == []  # nothing left to do
