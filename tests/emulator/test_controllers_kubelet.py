"""The kubelet with simulated containers: status shape, events, outcomes, restarts, deletion."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ControllerCluster, running_cluster
from kubernetes_asyncio.client import ApiClient

from aiinfn_hub.dev.emulator.cluster import LOCAL_SITE_ANNOTATION
from aiinfn_hub.dev.emulator.deletion import remove_if_finalized
from aiinfn_hub.dev.emulator.resources import NODES, PODS

JSON = dict[str, Any]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path) as c:
        c.add_node("server-1", {"nvidia.com/gpu": "4"}, address="127.1.0.7")
        yield c


def _statuses(pod: JSON) -> list[JSON]:
    return list(pod["status"]["containerStatuses"])


async def test_running_pod_status_is_complete_and_fits_the_typed_model(
    cluster: ControllerCluster,
) -> None:
    pod = cluster.create_pod("nb", limits={"nvidia.com/gpu": "1"})
    pod = copy.deepcopy(pod)
    began = time.monotonic()
    pod = await cluster.running("nb")
    assert time.monotonic() - began < 0.5
    status = pod["status"]
    assert status["podIP"].startswith("127.") and not status["podIP"].startswith(
        ("127.0.", "127.1.")
    )
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == "127.1.0.7" and status["hostIPs"] == [{"ip": "127.1.0.7"}]
    # QoS counts only cpu and memory: a GPU-only limit leaves the pod BestEffort.
    assert status["startTime"].endswith("Z") and status["qosClass"] == "BestEffort"
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("PodReadyToStartContainers", "True"),
        ("Initialized", "True"),
        ("Ready", "True"),
        ("ContainersReady", "True"),
        ("PodScheduled", "True"),
    ]
    assert all(c["lastTransitionTime"] for c in status["conditions"])
    [container] = _statuses(pod)
    assert container["name"] == "main" and container["ready"] and container["started"]
    assert container["image"] == "docker.io/library/python:3.11"
    assert container["imageID"].startswith("docker.io/library/python@sha256:")
    assert container["containerID"].startswith("containerd://")
    assert container["restartCount"] == 0 and container["state"]["running"]["startedAt"]
    async with ApiClient() as api:
        typed = api._ApiClient__deserialize(pod, "V1Pod")
    assert typed.status.container_statuses[0].ready is True
    assert cluster.store.logs[
        ("default", "nb", "main")
    ].startswith(  # type: ignore[union-attr]
        status["startTime"][:4]
    )


async def test_kubelet_events_have_the_real_wording(cluster: ControllerCluster) -> None:
    cluster.create_pod("nb")
    await cluster.running("nb")
    events = [e for e in cluster.events("nb") if e["source"]["component"] == "kubelet"]
    assert [(e["reason"], e["message"]) for e in events] == [
        ("Pulling", 'Pulling image "python:3.11"'),
        (
            "Pulled",
            'Successfully pulled image "python:3.11" in 0s (0s including waiting). '
            "Image size: 0 bytes.",
        ),
        ("Created", "Created container: main"),
        ("Started", "Started container main"),
    ]
    for event in events:
        assert event["involvedObject"]["fieldPath"] == "spec.containers{main}"
        assert event["source"] == {"component": "kubelet", "host": "server-1"}
        assert event["reportingInstance"] == "server-1"
    # the image is on the node now: an IfNotPresent pull is skipped
    cluster.create_pod("second")
    await cluster.running("second")
    pulled = cluster.events("second", "Pulled")
    assert pulled[0]["message"] == 'Container image "python:3.11" already present on machine'
    assert not cluster.events("second", "Pulling")


async def test_init_containers_complete_before_the_app_starts(cluster: ControllerCluster) -> None:
    pod = {
        "initContainers": [
            {"name": "fetch", "image": "busybox:1.36"},
            {"name": "prepare", "image": "busybox:1.36"},
        ]
    }
    cluster.create_pod("init", **pod)
    running = await cluster.running("init")
    inits = running["status"]["initContainerStatuses"]
    assert [s["name"] for s in inits] == ["fetch", "prepare"]
    for state in inits:
        assert state["state"]["terminated"]["reason"] == "Completed"
        # the kubelet's prober reports an init container that exited 0 as ready
        assert state["state"]["terminated"]["exitCode"] == 0 and state["ready"]
    started = [e["involvedObject"]["fieldPath"] for e in cluster.events("init", "Started")]
    assert started == [
        "spec.initContainers{fetch}",
        "spec.initContainers{prepare}",
        "spec.containers{main}",
    ]
    async with ApiClient() as api:
        typed = api._ApiClient__deserialize(running, "V1Pod")
    assert typed.status.init_container_statuses[1].state.terminated.exit_code == 0


@pytest.mark.parametrize(
    ("annotations", "phase", "exit_code", "reason"),
    [
        ({"emulator.aiinfn.dev/outcome": "succeed"}, "Succeeded", 0, "Completed"),
        ({"emulator.aiinfn.dev/outcome": "fail"}, "Failed", 1, "Error"),
        (
            {"emulator.aiinfn.dev/outcome": "fail", "emulator.aiinfn.dev/exit-code": "42"},
            "Failed",
            42,
            "Error",
        ),
        (
            {"emulator.aiinfn.dev/outcome": "succeed", "emulator.aiinfn.dev/outcome-after": "0.2"},
            "Succeeded",
            0,
            "Completed",
        ),
    ],
)
async def test_outcome_annotations(
    cluster: ControllerCluster, annotations: dict[str, str], phase: str, exit_code: int, reason: str
) -> None:
    began = time.monotonic()
    cluster.create_pod("job", annotations=annotations, restartPolicy="Never")
    pod = await cluster.phase("job", phase)
    after = float(annotations.get("emulator.aiinfn.dev/outcome-after", "0"))
    assert time.monotonic() - began >= after
    [state] = _statuses(pod)
    terminated = state["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (exit_code, reason)
    assert not state["ready"] and not state["started"]
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    assert "exited with code" in str(cluster.store.logs[("default", "job", "main")])


async def test_set_pod_outcome_and_restart_policies(cluster: ControllerCluster) -> None:
    cluster.create_pod("always")
    cluster.create_pod("onfailure", restartPolicy="OnFailure")
    cluster.create_pod("never", restartPolicy="Never")
    for name in ("always", "onfailure", "never"):
        await cluster.running(name)
    # OnFailure restarts a failed container, with a CrashLoopBackOff in between
    cluster.controllers.set_pod_outcome("default", "onfailure", "fail", exit_code=2)
    pod = await cluster.wait_for(
        lambda: (p := cluster.pod("onfailure")) and _statuses(p)[0]["restartCount"] >= 2 and p
    )
    assert pod["status"]["phase"] == "Running"
    last = _statuses(pod)[0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (2, "Error")
    assert cluster.events("onfailure", "BackOff")[0]["type"] == "Warning"
    # ... but not a successful one
    cluster.controllers.set_pod_outcome("default", "onfailure", "succeed")
    await cluster.phase("onfailure", "Succeeded")
    # Always restarts even after success
    cluster.controllers.set_pod_outcome("default", "always", "succeed", after=0.05)
    await cluster.wait_for(
        lambda: (p := cluster.pod("always")) and _statuses(p)[0]["restartCount"] >= 1
    )
    cluster.controllers.set_pod_outcome("default", "always", "run")
    pod = await cluster.running("always")
    # Never: the pod fails for good
    cluster.controllers.set_pod_outcome("default", "never", "fail")
    pod = await cluster.phase("never", "Failed")
    assert _statuses(pod)[0]["restartCount"] == 0


async def test_outcome_set_before_the_pod_exists(cluster: ControllerCluster) -> None:
    cluster.controllers.set_pod_outcome("default", "early", "succeed")
    cluster.create_pod("early", restartPolicy="Never")
    await cluster.phase("early", "Succeeded")


async def test_graceful_deletion_kills_marks_and_removes(cluster: ControllerCluster) -> None:
    cluster.create_pod("nb")
    await cluster.running("nb")
    assert len(cluster.controllers.kubelet.addresses) == 1
    cluster.delete(PODS, "nb")
    await cluster.gone(PODS, "nb")
    killing = cluster.events("nb", "Killing")
    assert killing[0]["message"] == "Stopping container main"
    assert ("default", "nb", "main") not in cluster.store.logs
    assert len(cluster.controllers.kubelet.addresses) == 0  # the IP went back to the pool


async def test_finalizers_keep_a_stopped_pod_until_removed(cluster: ControllerCluster) -> None:
    pod = cluster.create_pod("held")
    await cluster.running("held")
    held = copy.deepcopy(cluster.pod("held"))
    assert held is not None
    held["metadata"]["finalizers"] = ["example.com/hold"]
    cluster.store.update(PODS, held)
    cluster.delete(PODS, "held")
    stopped = await cluster.phase("held", "Failed")
    assert stopped["metadata"]["deletionTimestamp"]
    terminated = _statuses(stopped)[0]["state"]["terminated"]
    assert terminated["exitCode"] == 143  # SIGTERM
    assert cluster.store.logs.get(("default", "held", "main"))  # logs stay with the object
    released = copy.deepcopy(stopped)
    del released["metadata"]["finalizers"]
    remove_if_finalized(cluster.store, PODS, cluster.store.update(PODS, released))
    assert cluster.pod("held") is None
    assert pod["metadata"]["uid"] != ""


async def test_ips_are_unique_among_live_pods(cluster: ControllerCluster) -> None:
    for i in range(20):
        cluster.create_pod(f"p{i}")
    ips = []
    for i in range(20):
        ips.append((await cluster.running(f"p{i}"))["status"]["podIP"])
    assert len(set(ips)) == 20


async def test_pods_on_missing_and_virtual_nodes(tmp_path: Path) -> None:
    async with running_cluster(tmp_path, run_processes=True) as cluster:
        cluster.add_node(
            "vk",
            labels={"type": "virtual-kubelet", "kubernetes.io/role": "agent"},
            taints=[{"key": "virtual-node.interlink/no-schedule", "effect": "NoSchedule"}],
        )
        toleration = {"key": "virtual-node.interlink/no-schedule", "operator": "Exists"}
        # a command that cannot run here: a remote node never runs it locally
        cluster.create_pod("remote", command=["/nonexistent/binary"], tolerations=[toleration])
        pod = await cluster.running("remote")
        assert pod["spec"]["nodeName"] == "vk"
        assert not cluster.controllers.kubelet.local_pids()
        # bound to a node that never registered: left Pending; a delete removes it at once
        cluster.create_pod("ghost", nodeName="missing-node")
        cluster.create_pod("marker", tolerations=[toleration])
        await cluster.running("marker")
        ghost = cluster.pod("ghost")
        assert ghost is not None and ghost["status"]["phase"] == "Pending"
        cluster.delete(PODS, "ghost")
        await cluster.gone(PODS, "ghost")
        # the node registers later: its pods start then
        cluster.create_pod("waiting", nodeName="late-node", command=["sleep", "30"])
        node = copy.deepcopy(cluster.store.get(NODES, None, "vk"))
        assert node is not None
        node["metadata"] = {"name": "late-node", "labels": {"type": "virtual-kubelet"}}
        cluster.store.create(NODES, node)
        await cluster.running("waiting")
        assert cluster.controllers.kubelet.local_pids() == {}
        # a virtual node whose site is this machine runs its pods as local processes
        node = copy.deepcopy(cluster.store.get(NODES, None, "vk"))
        assert node is not None
        node["metadata"] = {
            "name": "vk-here",
            "labels": {"type": "virtual-kubelet"},
            "annotations": {LOCAL_SITE_ANNOTATION: "true"},
        }
        cluster.store.create(NODES, node)
        cluster.create_pod("offloaded", nodeName="vk-here", command=["sleep", "30"])
        await cluster.running("offloaded")
        assert list(cluster.controllers.kubelet.local_pids()) == [("default", "offloaded")]


async def test_stop_is_quick_when_nothing_runs(tmp_path: Path) -> None:
    async with running_cluster(tmp_path) as cluster:
        cluster.add_node("n1")
        cluster.create_pod("nb")
        await cluster.running("nb")
        began = time.monotonic()
        await cluster.controllers.stop()
        assert time.monotonic() - began < 0.5
