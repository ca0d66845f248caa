"""End to end through the emulator's API: notebooks take GPUs back from Bunshin batch jobs.

A node with three GPUs is filled by an Indexed Job that the Kueue stand-in admitted
(unsuspended), whose pods have the ``bunshin-batch`` PriorityClass (-100, preemptionPolicy
Never) and Bunshin's ``podFailurePolicy`` (``Ignore`` on ``DisruptionTarget``). A notebook
(``notebook``, 1000) asking for one GPU preempts exactly one job pod, the most recently
started; the victim carries kube-scheduler's condition and Event; the Job's replacement pod
waits in Pending while the notebook runs, then runs once the notebook is gone, and the Job
completes with ``status.failed`` still 0 and the Workload still admitted. A notebook never
preempts another notebook. The contract behind it is in test_contract_preemption.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_client import RawClient, wait_until

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, NodeSpec
from aiinfn_hub.dev.emulator.resources import PODS
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.emulator.store import now_rfc3339
from aiinfn_hub.dev.kueue_standin import KueueStandIn

JSON = dict[str, Any]
NS = "/api/v1/namespaces/default"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
PRIORITY_CLASSES = "/apis/scheduling.k8s.io/v1/priorityclasses"
WORKLOADS = "/apis/kueue.x-k8s.io/v1beta2/namespaces/default/workloads"
GPU = "nvidia.com/gpu"
NODE = "gpu-node"
INDEX = "batch.kubernetes.io/job-completion-index"
OUTCOME = "emulator.aiinfn.dev/outcome"
WAIT = 60.0


def _cluster(gpus: int) -> ClusterSpec:
    node = NodeSpec(
        name=NODE,
        labels={"nvidia.com/gpu.present": "true"},
        capacity={"cpu": "32", "memory": "128Gi", GPU: str(gpus)},
    )
    return ClusterSpec(nodes=[node])


@pytest.fixture
def emulators() -> Iterator[list[Emulator]]:
    started: list[Emulator] = []
    yield started
    for emulator in started:
        emulator.stop()


def _start(emulators: list[Emulator], tmp_path: Path, gpus: int) -> tuple[Emulator, RawClient]:
    emulator = Emulator(_cluster(gpus), state_dir=tmp_path / "emulator").start()
    emulators.append(emulator)
    raw = RawClient(emulator.access)
    for name, value, policy in (
        ("bunshin-batch", -100, "Never"),
        ("notebook", 1000, "PreemptLowerPriority"),
    ):
        status, body, _ = raw.post(
            PRIORITY_CLASSES,
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
                "preemptionPolicy": policy,
            },
        )
        assert status == 201, body
    return emulator, raw


def _notebook(name: str) -> JSON:
    return {
        "metadata": {"name": name, "annotations": {OUTCOME: "run"}},
        "spec": {
            "priorityClassName": "notebook",
            "containers": [
                {"name": "notebook", "image": "jupyter:1", "resources": {"limits": {GPU: "1"}}}
            ],
        },
    }


def _bunshin_job(name: str) -> JSON:
    """The shape of aiinfn_hub/bunshin/job.py's Job, reduced to what the cluster acts on."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": "cms"}},
        "spec": {
            "suspend": True,
            "completions": 4,
            "parallelism": 3,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    }
                ]
            },
            "template": {
                "metadata": {"annotations": {OUTCOME: "run"}},
                "spec": {
                    "restartPolicy": "Never",
                    "priorityClassName": "bunshin-batch",
                    "containers": [
                        {"name": "main", "image": "clone:1", "resources": {"limits": {GPU: "1"}}}
                    ],
                },
            },
        },
    }


def _pods(raw: RawClient, selector: str = "") -> list[JSON]:
    status, body, _ = raw.get(f"{NS}/pods?labelSelector={selector}")
    assert status == 200, body
    return list(body["items"])


def _pod(raw: RawClient, name: str) -> JSON | None:
    status, body, _ = raw.get(f"{NS}/pods/{name}")
    return dict(body) if status == 200 else None


def _job(raw: RawClient, name: str) -> JSON:
    status, body, _ = raw.get(f"{JOBS}/{name}")
    assert status == 200, body
    return dict(body)


def _running_job_pods(raw: RawClient, job: str) -> dict[int, JSON]:
    return {
        int(p["metadata"]["annotations"][INDEX]): p
        for p in _pods(raw, f"job-name%3D{job}")
        if p["status"]["phase"] == "Running" and "deletionTimestamp" not in p["metadata"]
    }


def _condition(obj: JSON, kind: str) -> JSON | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition["type"] == kind:
            return dict(condition)
    return None


def _events(raw: RawClient, name: str, reason: str) -> list[JSON]:
    _, body, _ = raw.get(f"{NS}/events?fieldSelector=involvedObject.name%3D{name}")
    return [e for e in body["items"] if e["reason"] == reason]


class PodWatch:
    """A watch on the namespace's pods read on a thread: every version of every pod, in order
    (a preempted job pod goes away as soon as the Job controller has counted it)."""

    def __init__(self, emulator: Emulator, raw: RawClient) -> None:
        self._emulator = emulator
        _, listing, _ = raw.get(f"{NS}/pods")
        version = listing["metadata"]["resourceVersion"]
        request = urllib.request.Request(
            f"{raw.base_url}{NS}/pods?watch=true&resourceVersion={version}&timeoutSeconds=300",
            headers=raw.auth_headers,
        )
        self._response = urllib.request.urlopen(request, timeout=300, context=raw.context)
        self.events: list[JSON] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self._response:
                if line.strip():
                    self.events.append(json.loads(line))

    def versions(self, name: str) -> list[tuple[str, JSON]]:
        return [
            (e["type"], e["object"])
            for e in list(self.events)
            if e["object"]["metadata"]["name"] == name
        ]

    def close(self) -> None:
        """The server ends the stream (closing it from this side could block on the reader)."""
        self._emulator.call(lambda: self._emulator.store.close_watchers(PODS))
        self._thread.join(WAIT)
        self._response.close()


def test_a_notebook_takes_a_gpu_back_from_a_bunshin_job(
    emulators: list[Emulator], tmp_path: Path
) -> None:
    emulator, raw = _start(emulators, tmp_path, gpus=3)
    status, body, _ = raw.post(JOBS, _bunshin_job("clone"))
    assert status == 201, body
    standin = KueueStandIn(emulator.access)
    assert standin.admit_pending() == ["clone"]
    first = wait_until(
        lambda: len(p := _running_job_pods(raw, "clone")) == 3 and p, WAIT, "3 job pods running"
    )
    for pod in first.values():
        # admission resolved the PriorityClass
        assert pod["spec"]["priority"] == -100 and pod["spec"]["preemptionPolicy"] == "Never"
    # index 0 succeeds; index 3 then starts, in a later second than the others
    started = max(p["status"]["startTime"] for p in first.values())
    wait_until(lambda: now_rfc3339() > started, WAIT, "the clock past their start")
    emulator.call(
        lambda: emulator.controllers.set_pod_outcome(
            "default", first[0]["metadata"]["name"], "succeed"
        )
    )
    running = wait_until(
        lambda: set(p := _running_job_pods(raw, "clone")) == {1, 2, 3} and p,
        WAIT,
        "index 3 running",
    )
    assert _job(raw, "clone")["status"]["completedIndexes"] == "0"
    latest = running[3]["metadata"]["name"]
    assert running[3]["status"]["startTime"] > max(
        running[i]["status"]["startTime"] for i in (1, 2)
    )

    watch = PodWatch(emulator, raw)
    try:
        status, body, _ = raw.post(f"{NS}/pods", _notebook("nb"))
        assert status == 201, body
        notebook = wait_until(
            lambda: (p := _pod(raw, "nb")) and p["status"]["phase"] == "Running" and p,
            WAIT,
            "the notebook running",
        )
        assert notebook["spec"]["nodeName"] == NODE
        assert notebook["status"]["nominatedNodeName"] == NODE
        nb_uid = notebook["metadata"]["uid"]

        # exactly one victim: the most recently started job pod
        wait_until(lambda: any(t == "DELETED" for t, _ in watch.versions(latest)), WAIT)
        marked = [o for _, o in watch.versions(latest) if _condition(o, "DisruptionTarget")]
        assert marked and "deletionTimestamp" in marked[-1]["metadata"]
        target = _condition(marked[0], "DisruptionTarget")
        assert target is not None
        assert (target["status"], target["reason"], target["message"]) == (
            "True",
            "PreemptionByScheduler",
            "default-scheduler: preempting to accommodate a higher priority pod",
        )
        phases = [o["status"]["phase"] for _, o in watch.versions(latest)]
        assert phases[-1] == "Failed"
        (preempted,) = _events(raw, latest, "Preempted")
        assert preempted["message"] == f"Preempted by pod {nb_uid} on node {NODE}"
        assert preempted["type"] == "Normal"
        assert preempted["source"]["component"] == "default-scheduler"
        for index in (1, 2):
            name = running[index]["metadata"]["name"]
            assert not _events(raw, name, "Preempted")
            current = _pod(raw, name)
            assert current is not None and current["status"]["phase"] == "Running"
            assert _condition(current, "DisruptionTarget") is None

        # the Job re-runs index 3 only, once the victim has failed; its pod waits for a GPU
        def replacement() -> JSON | None:
            for pod in _pods(raw, f"job-name%3Dclone,{INDEX}%3D3"):
                if pod["metadata"]["name"] != latest:
                    return pod
            return None

        pending = wait_until(
            lambda: (p := replacement()) and _condition(p, "PodScheduled") and p,
            WAIT,
            "the replacement pod tried",
        )
        failed_at = next(
            i
            for i, e in enumerate(watch.events)
            if e["object"]["metadata"]["name"] == latest
            and e["object"]["status"]["phase"] == "Failed"
        )
        added_at = next(
            i
            for i, e in enumerate(watch.events)
            if e["type"] == "ADDED"
            and e["object"]["metadata"]["name"] == pending["metadata"]["name"]
        )
        assert failed_at < added_at
    finally:
        watch.close()
    assert pending["status"]["phase"] == "Pending" and not pending["spec"].get("nodeName")
    scheduled = _condition(pending, "PodScheduled")
    assert scheduled is not None and scheduled["reason"] == "Unschedulable"
    assert scheduled["message"] == (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: not eligible "
        "due to preemptionPolicy=Never."
    )
    job = _job(raw, "clone")
    assert job["status"]["completedIndexes"] == "0"
    assert "failed" not in job["status"] and job["status"]["active"] == 3

    # Kueue did not notice: still admitted once, not suspended, nothing to admit again
    assert standin.admit_pending() == []
    _, workloads, _ = raw.get(WORKLOADS)
    (workload,) = workloads["items"]
    admitted = _condition(workload, "Admitted")
    assert admitted is not None and admitted["status"] == "True"
    assert _job(raw, "clone")["spec"]["suspend"] is False

    # the notebook goes: the replacement runs, and the Job completes without a failure
    status, body, _ = raw.request("DELETE", f"{NS}/pods/nb")
    assert status == 200, body
    wait_until(lambda: set(_running_job_pods(raw, "clone")) == {1, 2, 3}, WAIT, "index 3 again")
    for pod in _running_job_pods(raw, "clone").values():
        name = pod["metadata"]["name"]
        emulator.call(
            lambda name=name: emulator.controllers.set_pod_outcome("default", name, "succeed")
        )
    done = wait_until(
        lambda: (
            (j := _job(raw, "clone"))
            and (c := _condition(j, "Complete"))
            and c["status"] == "True"
            and j
        ),
        WAIT,
        "the Job complete",
    )
    assert done["status"]["succeeded"] == 4 and done["status"]["completedIndexes"] == "0-3"
    assert "failed" not in done["status"]
    assert standin.admit_pending() == []


def test_a_notebook_never_preempts_another_notebook(
    emulators: list[Emulator], tmp_path: Path
) -> None:
    _, raw = _start(emulators, tmp_path, gpus=1)
    status, body, _ = raw.post(f"{NS}/pods", _notebook("first"))
    assert status == 201, body
    wait_until(lambda: (p := _pod(raw, "first")) and p["status"]["phase"] == "Running", WAIT)
    status, body, _ = raw.post(f"{NS}/pods", _notebook("second"))
    assert status == 201, body
    expected = (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
        "available: 1 No preemption victims found for incoming pod."
    )
    (event,) = wait_until(lambda: _events(raw, "second", "FailedScheduling"), WAIT)
    assert event["message"] == expected and event["type"] == "Warning"
    second = _pod(raw, "second")
    assert second is not None and second["status"]["phase"] == "Pending"
    assert "nominatedNodeName" not in second["status"]
    scheduled = _condition(second, "PodScheduled")
    assert scheduled is not None
    assert (scheduled["status"], scheduled["reason"], scheduled["message"]) == (
        "False",
        "Unschedulable",
        expected,
    )
    first = _pod(raw, "first")
    assert first is not None and first["status"]["phase"] == "Running"
    assert "deletionTimestamp" not in first["metadata"]
    assert not _events(raw, "first", "Preempted")
