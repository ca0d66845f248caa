"""Contract tests: priority preemption as kube-scheduler v1.33 does it, and how the Job
controller reacts to a preempted pod.

What each test holds the emulator to, in Kubernetes' sources (v1.33):

- pkg/scheduler/framework/plugins/defaultpreemption/default_preemption.go
  ``SelectVictimsOnNode``: every pod of lower priority on the node (terminating ones included)
  is a potential victim; all are removed, and if the pod then fits they are reprieved from the
  most important down (``util.MoreImportantPod``: higher priority, then earlier
  ``status.startTime``); those that no longer fit are the victims. No lower-priority pod:
  "No preemption victims found for incoming pod"; still no fit: the filter's own reasons.
  ``PodEligibleToPreemptOthers``: ``preemptionPolicy: Never`` never preempts; a pod whose
  nominated node still has a lower-priority pod terminating by preemption waits.
- pkg/scheduler/framework/preemption/preemption.go ``pickOneNodeForPreemption``: fewest PDB
  violations (not modelled), lowest highest-victim priority, smallest sum of victim
  priorities each offset by MaxInt32+1, fewest victims, latest start of the highest-priority
  victims, then the first node. ``PreemptPod``: the ``DisruptionTarget`` condition (reason
  ``PreemptionByScheduler``, message "<schedulerName>: preempting to accommodate a higher
  priority pod"), a graceful delete, and the Event ``Preempted`` "Preempted by pod <uid> on
  node <node>" (action ``Preempting``, the preemptor as related object);
  ``getLowerPriorityNominatedPods``: lower-priority pods nominated there lose the nomination.
- pkg/controller/job/job_controller.go ``isPodFailed``/``onlyReplaceFailedPods`` and
  pod_failure_policy.go ``matchPodFailurePolicy``: an ``Ignore`` rule keeps a failed pod out of
  ``status.failed``; with a ``podFailurePolicy`` (``podReplacementPolicy: Failed``) a
  terminating pod is replaced only once Failed, otherwise (``TerminatingOrFailed``) it counts
  as failed and is replaced as soon as it is being deleted; ``FailJob`` fails the Job with
  reason ``PodFailurePolicy``.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ControllerCluster, running_cluster

from aiinfn_hub.dev.emulator.controllers import job_pods, scheduling
from aiinfn_hub.dev.emulator.resources import JOBS, NODES, PODS
from aiinfn_hub.dev.emulator.store import WatchEvent

JSON = dict[str, Any]
GPU = "nvidia.com/gpu"
OUTCOME = "emulator.aiinfn.dev/outcome"
PREEMPTING = "default-scheduler: preempting to accommodate a higher priority pod"
# Bunshin's rule (aiinfn_hub/bunshin/job.py): evictions are not failures
IGNORE_DISRUPTIONS = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]
}
# a process that ignores SIGTERM, so a deleted pod stays terminating for its grace period
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time\nsignal.signal(signal.SIGTERM, lambda *a: None)\ntime.sleep(60)",
]
SLEEPER = [sys.executable, "-c", "import time\ntime.sleep(60)"]


# -- the pure rules --------------------------------------------------------------------------
@dataclass
class Pod:
    name: str
    priority: int
    gpus: int = 1
    started: str | None = "2025-01-01T00:00:00Z"
    order: int = 0
    requests: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.requests = {GPU: self.gpus, "pods": 1}

    @property
    def start(self) -> tuple[int, str, int]:
        return (0, self.started, self.order) if self.started else (1, "", self.order)


def _used(pods: list[Pod]) -> dict[str, int]:
    used: dict[str, int] = {}
    for pod in pods:
        for name, amount in pod.requests.items():
            used[name] = used.get(name, 0) + amount
    return used


NODE = {GPU: 4, "pods": 110}
WANTS_ONE = {GPU: 1, "pods": 1}


def test_victims_are_the_lowest_priority_then_the_most_recently_started() -> None:
    pods = [
        Pod("old-batch", -100, started="2025-01-01T00:00:01Z"),
        Pod("new-batch", -100, started="2025-01-01T00:00:09Z"),
        Pod("spot", -200, started="2025-01-01T00:00:05Z"),
        Pod("mid", 10, started="2025-01-01T00:00:03Z"),
    ]
    victims, _ = scheduling.select_victims(WANTS_ONE, NODE, _used(pods), pods)
    assert [v.name for v in victims] == ["spot"]
    two = {GPU: 2, "pods": 1}
    victims, _ = scheduling.select_victims(two, NODE, _used(pods), pods)
    # reprieved from the most important down: mid, old-batch; then new-batch and spot go
    assert [v.name for v in victims] == ["new-batch", "spot"]
    # same second: the one seen starting last; no start time yet counts as "now"
    same = [
        Pod("a", -100, order=1),
        Pod("b", -100, order=2),
        Pod("unstarted", -100, started=None, order=0),
        Pod("c", -100, order=3),
    ]
    victims, _ = scheduling.select_victims(WANTS_ONE, NODE, _used(same), same)
    assert [v.name for v in victims] == ["unstarted"]
    victims, _ = scheduling.select_victims(WANTS_ONE, NODE, _used(same), same[:2] + same[3:])
    assert [v.name for v in victims] == ["c"]


def test_no_victims_and_still_short() -> None:
    notebooks = [Pod(f"nb{i}", 1000) for i in range(4)]
    lower = [p for p in notebooks if p.priority < 1000]
    assert scheduling.select_victims(WANTS_ONE, NODE, _used(notebooks), lower) == (
        [],
        (scheduling.NO_VICTIMS,),
    )
    mixed = [Pod("nb", 1000, gpus=3), Pod("batch", -100)]
    lower = [p for p in mixed if p.priority < 1000]
    assert scheduling.select_victims({GPU: 2, "pods": 1}, NODE, _used(mixed), lower) == (
        [],
        ("Insufficient nvidia.com/gpu",),
    )


def test_node_choice_follows_pick_one_node_for_preemption() -> None:
    def pick(*candidates: tuple[str, list[Pod]]) -> str:
        return candidates[scheduling.pick_preemption_node(candidates)][0]

    # the lowest priority of the most important victim
    assert pick(("a", [Pod("x", 10)]), ("b", [Pod("y", -100), Pod("z", -100)])) == "b"
    # the smallest sum of priorities, each offset by 2^31: one -100 victim beats two
    assert pick(("a", [Pod("x", -100), Pod("y", -100)]), ("b", [Pod("z", -100, gpus=2)])) == "b"
    assert pick(("a", [Pod("x", -100), Pod("y", -200)]), ("b", [Pod("z", -100)])) == "b"
    # the latest start among the highest-priority victims
    early = Pod("x", -100, started="2025-01-01T00:00:01Z")
    late = Pod("y", -100, started="2025-01-01T00:00:07Z")
    assert pick(("a", [early]), ("b", [late])) == "b"
    # then the first candidate (node-name order here)
    assert pick(("a", [Pod("x", -100)]), ("b", [Pod("y", -100)])) == "a"


def test_pod_failure_policy_matching() -> None:
    pod: JSON = {
        "metadata": {"name": "p", "namespace": "ns"},
        "status": {
            "phase": "Failed",
            "conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
            ],
            "containerStatuses": [
                {"name": "main", "state": {"terminated": {"exitCode": 137}}},
            ],
        },
    }
    assert job_pods.match_pod_failure_policy(IGNORE_DISRUPTIONS, pod) == (None, False, "Ignore")
    assert job_pods.match_pod_failure_policy(None, pod) == (None, True, None)
    fail_on_kill = {
        "rules": [
            {"action": "Count", "onExitCodes": {"operator": "In", "values": [1]}},
            {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
        ]
    }
    assert job_pods.match_pod_failure_policy(fail_on_kill, pod) == (
        "Container main for pod ns/p failed with exit code 137 matching FailJob rule at index 1",
        True,
        "FailJob",
    )
    on_condition = {"rules": [{"action": "FailJob", "onPodConditions": [{"type": "Ready"}]}]}
    assert job_pods.match_pod_failure_policy(on_condition, pod) == (None, True, None)
    pod["status"]["conditions"].append({"type": "Ready", "status": "True"})
    assert job_pods.match_pod_failure_policy(on_condition, pod)[0] == (
        "Pod ns/p has condition Ready matching FailJob rule at index 0"
    )


# -- the scheduler on a store -----------------------------------------------------------------
@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path) as c:
        c.add_priority_class("notebook", 1000)
        c.add_priority_class("bunshin-batch", -100, "Never")
        c.add_priority_class("spot", 10)
        yield c


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path, run_processes=True) as c:
        c.add_priority_class("notebook", 1000)
        c.add_priority_class("mid", 500)
        c.add_priority_class("bunshin-batch", -100, "Never")
        yield c


async def _bound(cluster: ControllerCluster, name: str) -> str:
    pod = await cluster.wait_for(
        lambda: (p := cluster.pod(name)) and p["spec"].get("nodeName") and p, what=f"{name} bound"
    )
    return str(pod["spec"]["nodeName"])


def _gpu_pod(cluster: ControllerCluster, name: str, klass: str, gpus: int = 1, **kw: Any) -> None:
    cluster.create_pod(name, limits={GPU: str(gpus)}, priorityClassName=klass, **kw)


async def test_the_most_recently_started_batch_pod_is_the_victim(
    cluster: ControllerCluster,
) -> None:
    cluster.add_node("gpu", {GPU: "3"})
    for name in ("first", "second", "third"):
        _gpu_pod(cluster, name, "bunshin-batch")
        await cluster.running(name)
    uids = {n: cluster.pod(n)["metadata"]["uid"] for n in ("first", "second", "third")}  # type: ignore[index]
    _gpu_pod(cluster, "nb", "notebook")
    assert await _bound(cluster, "nb") == "gpu"
    assert cluster.pod("third") is None
    assert cluster.pod("first") is not None and cluster.pod("second") is not None
    [event] = cluster.events("third", "Preempted")
    notebook = cluster.pod("nb")
    assert notebook is not None
    assert event["message"] == f"Preempted by pod {notebook['metadata']['uid']} on node gpu"
    assert event["involvedObject"]["uid"] == uids["third"]
    assert event["type"] == "Normal" and event["action"] == "Preempting"
    assert event["related"]["uid"] == notebook["metadata"]["uid"]
    assert event["related"]["kind"] == "Pod" and event["related"]["name"] == "nb"
    assert event["reportingComponent"] == "default-scheduler"
    assert notebook["status"]["nominatedNodeName"] == "gpu"  # kept after binding (v1.33)
    assert not cluster.events("first", "Preempted") and not cluster.events("second", "Preempted")


async def test_node_choice_prefers_fewer_negative_priority_victims(
    cluster: ControllerCluster,
) -> None:
    # "a" would free two GPUs by evicting two -100 pods, "b" by evicting one
    cluster.add_node("a", {GPU: "2"}, labels={"pool": "x"})
    cluster.add_node("b", {GPU: "2"}, labels={"pool": "x"})
    pin = {"nodeSelector": {"kubernetes.io/hostname": "a"}}
    _gpu_pod(cluster, "small-1", "bunshin-batch", **pin)
    _gpu_pod(cluster, "small-2", "bunshin-batch", **pin)
    _gpu_pod(cluster, "big", "bunshin-batch", 2, nodeSelector={"kubernetes.io/hostname": "b"})
    for name in ("small-1", "small-2", "big"):
        await cluster.running(name)
    _gpu_pod(cluster, "nb", "notebook", 2, nodeSelector={"pool": "x"})
    assert await _bound(cluster, "nb") == "b"
    assert cluster.pod("big") is None
    assert cluster.pod("small-1") is not None and cluster.pod("small-2") is not None


async def test_node_choice_prefers_the_lowest_highest_victim_priority(
    cluster: ControllerCluster,
) -> None:
    cluster.add_node("a", {GPU: "1"})
    cluster.add_node("b", {GPU: "1"})
    _gpu_pod(cluster, "spot", "spot", nodeSelector={"kubernetes.io/hostname": "a"})
    _gpu_pod(cluster, "batch", "bunshin-batch", nodeSelector={"kubernetes.io/hostname": "b"})
    await cluster.running("spot")
    await cluster.running("batch")
    _gpu_pod(cluster, "nb", "notebook")
    assert await _bound(cluster, "nb") == "b"
    assert cluster.pod("spot") is not None and cluster.pod("batch") is None


async def test_notebooks_never_preempt_notebooks_and_a_short_node_is_reported(
    cluster: ControllerCluster,
) -> None:
    cluster.add_node("gpu", {GPU: "2"})
    _gpu_pod(cluster, "nb1", "notebook")
    _gpu_pod(cluster, "batch", "bunshin-batch")
    await cluster.running("nb1")
    await cluster.running("batch")
    _gpu_pod(cluster, "nb2", "notebook", 2)
    events = await cluster.wait_for(lambda: cluster.events("nb2", "FailedScheduling"))
    # evicting the batch pod would not be enough: kube-scheduler reports the filter's reason
    assert events[0]["message"] == (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are "
        "available: 1 Insufficient nvidia.com/gpu."
    )
    nb2 = cluster.pod("nb2")
    assert nb2 is not None and "nominatedNodeName" not in nb2["status"]
    assert cluster.pod("batch") is not None and not cluster.events("batch", "Preempted")
    cluster.delete(PODS, "batch", grace_period=0)
    _gpu_pod(cluster, "nb3", "notebook")
    await cluster.running("nb3")
    # with only notebooks left there is nothing to evict
    await cluster.wait_for(
        lambda: any(
            e["message"]
            == (
                "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes "
                "are available: 1 No preemption victims found for incoming pod."
            )
            for e in cluster.events("nb2", "FailedScheduling")
        ),
        what="nb2 tried again",
    )
    nb2 = cluster.pod("nb2")
    assert nb2 is not None and nb2["status"]["phase"] == "Pending"
    assert not cluster.events("nb1", "Preempted") and not cluster.events("nb3", "Preempted")


async def test_terminating_victims_nominations_and_the_wait_for_them(
    processes: ControllerCluster,
) -> None:
    cluster = processes
    cluster.add_node("n1", {"cpu": "2"})
    cluster.create_pod(
        "victim",
        requests={"cpu": "2"},
        command=STUBBORN,
        terminationGracePeriodSeconds=3,
    )
    await cluster.running("victim")
    cluster.create_pod("mid", requests={"cpu": "2"}, priorityClassName="mid", command=SLEEPER)
    await cluster.wait_for(
        lambda: (cluster.pod("mid") or {}).get("status", {}).get("nominatedNodeName") == "n1",
        what="mid nominated",
    )
    victim = cluster.pod("victim")
    assert victim is not None and "deletionTimestamp" in victim["metadata"]
    [target] = [c for c in victim["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert (target["status"], target["reason"], target["message"]) == (
        "True",
        "PreemptionByScheduler",
        PREEMPTING,
    )
    # a retry while the victim terminates: not eligible to preempt again, nomination kept
    node = copy.deepcopy(cluster.store.get(NODES, None, "n1"))
    assert node is not None
    node["metadata"]["labels"]["touched"] = "yes"
    cluster.store.update(NODES, node)
    await cluster.wait_for(
        lambda: any(
            e["message"].endswith(
                "preemption: not eligible due to a terminating pod on the nominated node."
            )
            for e in cluster.events("mid", "FailedScheduling")
        ),
        what="mid waits for the terminating victim",
    )
    assert (cluster.pod("mid") or {})["status"].get("nominatedNodeName") == "n1"
    # a higher-priority pod: the terminating victim is its victim too; mid loses its nomination
    cluster.create_pod("vip", requests={"cpu": "2"}, priorityClassName="notebook", command=SLEEPER)
    await cluster.wait_for(
        lambda: (cluster.pod("vip") or {}).get("status", {}).get("nominatedNodeName") == "n1",
        what="vip nominated",
    )
    assert "nominatedNodeName" not in (cluster.pod("mid") or {})["status"]
    vip_uid = (cluster.pod("vip") or {})["metadata"]["uid"]
    messages = [e["message"] for e in cluster.events("victim", "Preempted")]
    assert f"Preempted by pod {vip_uid} on node n1" in messages and len(messages) == 2
    assert await _bound(cluster, "vip") == "n1"
    await cluster.wait_for(lambda: cluster.pod("victim") is None, what="victim removed")
    mid = cluster.pod("mid")
    assert mid is not None and not mid["spec"].get("nodeName")


# -- the Job controller -----------------------------------------------------------------------
def _job(name: str, *, process: bool = False, **spec: Any) -> JSON:
    container: JSON = {"name": "main", "image": "x:1", "resources": {"limits": {GPU: "1"}}}
    annotations = {}
    if process:
        container["command"] = STUBBORN
    else:
        annotations[OUTCOME] = "run"
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            **spec,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "priorityClassName": "bunshin-batch",
                    "terminationGracePeriodSeconds": 2,
                    "containers": [container],
                },
            },
        },
    }


def _job_pods(cluster: ControllerCluster, job: str) -> list[JSON]:
    return [
        p
        for p in cluster.store.list(PODS, "default")
        if (p["metadata"].get("labels") or {}).get("job-name") == job
    ]


def _job_status(cluster: ControllerCluster, name: str) -> JSON:
    job = cluster.store.get(JOBS, "default", name)
    assert job is not None
    return dict(job.get("status") or {})


class PodLog:
    """Every pod change, in the order the store made them."""

    def __init__(self, cluster: ControllerCluster) -> None:
        self.changes: list[tuple[str, str, str, bool]] = []
        cluster.store.add_listener(self._observe)

    def _observe(self, event: WatchEvent) -> None:
        if event.rt.key == PODS.key:
            pod = event.obj
            self.changes.append(
                (
                    event.type,
                    pod["metadata"]["name"],
                    pod.get("status", {}).get("phase", ""),
                    "deletionTimestamp" in pod["metadata"],
                )
            )

    def first(self, kind: str, name: str, phase: str | None = None) -> int:
        return next(
            i
            for i, (k, n, p, _) in enumerate(self.changes)
            if k == kind and n == name and phase in (None, p)
        )


async def test_a_preempted_job_pod_is_ignored_and_replaced_once_it_has_failed(
    processes: ControllerCluster,
) -> None:
    cluster = processes
    cluster.add_node("gpu", {GPU: "2"})
    log = PodLog(cluster)
    cluster.create(
        JOBS,
        _job(
            "work", process=True, parallelism=2, completions=2, podFailurePolicy=IGNORE_DISRUPTIONS
        ),
    )
    await cluster.wait_for(
        lambda: _job_status(cluster, "work").get("ready") == 2, what="two job pods ready"
    )
    assert cluster.store.get(JOBS, "default", "work")["spec"]["podReplacementPolicy"] == "Failed"  # type: ignore[index]
    before = {p["metadata"]["name"] for p in _job_pods(cluster, "work")}
    cluster.create_pod("nb", limits={GPU: "1"}, priorityClassName="notebook", command=SLEEPER)
    victim = await cluster.wait_for(
        lambda: next(
            (p for p in _job_pods(cluster, "work") if "deletionTimestamp" in p["metadata"]), None
        ),
        what="a job pod preempted",
    )
    name = victim["metadata"]["name"]
    # while it terminates (it ignores SIGTERM for its 2 s grace period) it is not replaced
    status = await cluster.wait_for(
        lambda: (s := _job_status(cluster, "work")).get("terminating") == 1 and s,
        what="status.terminating",
    )
    assert status.get("active") == 1 and "failed" not in status
    assert {p["metadata"]["name"] for p in _job_pods(cluster, "work")} == before
    replacement = await cluster.wait_for(
        lambda: next(
            (p for p in _job_pods(cluster, "work") if p["metadata"]["name"] not in before), None
        ),
        timeout=15,
        what="the replacement pod",
    )
    assert log.first("MODIFIED", name, "Failed") < log.first(
        "ADDED", replacement["metadata"]["name"]
    )
    await cluster.wait_for(lambda: cluster.pod(name) is None, what="the counted victim removed")
    assert await _bound(cluster, "nb") == "gpu"
    status = _job_status(cluster, "work")
    assert "failed" not in status and status["active"] == 2
    pending = cluster.pod(replacement["metadata"]["name"])
    assert pending is not None and pending["status"]["phase"] == "Pending"
    assert not pending["spec"].get("nodeName")


async def test_without_a_failure_policy_a_preempted_pod_fails_and_is_replaced_at_once(
    processes: ControllerCluster,
) -> None:
    cluster = processes
    cluster.add_node("gpu", {GPU: "1"})
    cluster.create(JOBS, _job("plain", process=True, backoffLimit=3))
    await cluster.wait_for(lambda: _job_status(cluster, "plain").get("ready") == 1)
    assert (
        cluster.store.get(JOBS, "default", "plain")["spec"]["podReplacementPolicy"]
        == "TerminatingOrFailed"
    )  # type: ignore[index]
    cluster.create_pod("nb", limits={GPU: "1"}, priorityClassName="notebook", command=SLEEPER)
    # TerminatingOrFailed: counted as failed and replaced while the victim still terminates
    pods = await cluster.wait_for(
        lambda: len(p := _job_pods(cluster, "plain")) == 2 and p, what="replacement"
    )
    victim = next(p for p in pods if "deletionTimestamp" in p["metadata"])
    assert victim["status"]["phase"] == "Running"
    await cluster.wait_for(lambda: _job_status(cluster, "plain").get("failed") == 1)


async def test_fail_job_rule(cluster: ControllerCluster) -> None:
    cluster.add_node("n1")
    job = _job(
        "strict",
        podFailurePolicy={
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
        },
    )
    template = job["spec"]["template"]
    template["spec"]["containers"][0]["resources"] = {}
    template["metadata"]["annotations"] = {
        OUTCOME: "fail",
        "emulator.aiinfn.dev/exit-code": "42",
    }
    cluster.create(JOBS, job)
    failed = await cluster.wait_for(
        lambda: next(
            (
                c
                for c in _job_status(cluster, "strict").get("conditions") or []
                if c["type"] == "Failed" and c["status"] == "True"
            ),
            None,
        ),
        what="Failed",
    )
    assert failed["reason"] == "PodFailurePolicy"
    assert failed["message"].startswith("Container main for pod default/strict-")
    assert failed["message"].endswith(" failed with exit code 42 matching FailJob rule at index 0")
    assert _job_status(cluster, "strict")["failed"] == 1
