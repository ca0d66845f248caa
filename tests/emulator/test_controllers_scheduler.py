"""The scheduler on a store: placement, FailedScheduling, retries, preemption, scale."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ControllerCluster, running_cluster

from aiinfn_hub.dev.emulator.cluster import load_cluster_file, node_object
from aiinfn_hub.dev.emulator.resources import NODES, PODS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.yaml"
GPU_PRODUCT = "nvidia.com/gpu.product"
JSON = dict[str, Any]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path) as c:
        yield c


@pytest.fixture
async def paper(cluster: ControllerCluster) -> ControllerCluster:
    """The AI_INFN paper's four accelerator servers (examples/cluster.yaml)."""
    spec = load_cluster_file(EXAMPLE)
    for i, node in enumerate(spec.nodes):
        cluster.store.create(NODES, node_object(node, i, spec.kubernetes_version))
    cluster.add_priority_class("notebook", 1000)
    cluster.add_priority_class("batch", 100, "Never")
    cluster.add_priority_class("opportunistic", 10)
    return cluster


async def _node_of(cluster: ControllerCluster, name: str) -> str:
    pod = await cluster.wait_for(
        lambda: (p := cluster.pod(name)) and p["spec"].get("nodeName") and p, what=f"{name} bound"
    )
    return str(pod["spec"]["nodeName"])


async def _failed_scheduling(cluster: ControllerCluster, name: str) -> JSON:
    events = await cluster.wait_for(
        lambda: cluster.events(name, "FailedScheduling"), what=f"FailedScheduling of {name}"
    )
    assert len(events) == 1
    return dict(events[0])


@pytest.mark.parametrize(
    ("limits", "selector", "node"),
    [
        ({"nvidia.com/gpu": "1"}, {GPU_PRODUCT: "Tesla-T4"}, "server-1"),
        ({"nvidia.com/gpu": "2"}, {GPU_PRODUCT: "Quadro-RTX-5000"}, "server-2"),
        ({"nvidia.com/gpu": "1"}, {GPU_PRODUCT: "NVIDIA-A100-SXM4-80GB"}, "server-3"),
        ({"nvidia.com/mig-1g.10gb": "1"}, {}, "server-3"),
        ({"nvidia.com/mig-3g.40gb": "1"}, {}, "server-3"),
        ({"amd.com/xilinx_u250_gen3x16_xdma_shell_4_1-0": "1"}, {}, "server-4"),
        ({"amd.com/xilinx_v70_gen5x8_qdma_base_2-0": "1"}, {}, "server-4"),
        ({"nvidia.com/gpu": "4"}, {}, "server-1"),  # only server-1 has four GPUs
    ],
)
async def test_accelerators_land_on_the_servers_that_have_them(
    paper: ControllerCluster, limits: dict[str, str], selector: dict[str, str], node: str
) -> None:
    paper.create_pod("p", limits=limits, nodeSelector=selector)
    assert await _node_of(paper, "p") == node
    pod = paper.pod("p")
    assert pod is not None
    scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["status"] == "True"
    [event] = paper.events("p", "Scheduled")
    assert event["message"] == f"Successfully assigned default/p to {node}"
    assert event["source"] == {"component": "default-scheduler"}
    assert event["reportingComponent"] == "default-scheduler"


async def test_affinity_required_terms_and_preferred_weights(paper: ControllerCluster) -> None:
    in_a30_or_rtx = {
        "key": GPU_PRODUCT,
        "operator": "In",
        "values": ["NVIDIA-A30", "Quadro-RTX-5000"],
    }
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [in_a30_or_rtx]}]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "preference": {
                        "matchExpressions": [
                            {"key": "xilinx.com/fpga.present", "operator": "DoesNotExist"}
                        ]
                    },
                }
            ],
        }
    }
    paper.create_pod("rtx", affinity=affinity)
    assert await _node_of(paper, "rtx") == "server-2"
    by_name = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": ["server-4"]}
                        ]
                    }
                ]
            }
        }
    }
    paper.create_pod("named", affinity=by_name)
    assert await _node_of(paper, "named") == "server-4"
    many_gpus = {"key": "nvidia.com/gpu.count", "operator": "Gt", "values": ["2"]}
    paper.create_pod(
        "gt",
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [many_gpus]}]
                }
            }
        },
        limits={"nvidia.com/gpu": "1"},
        nodeSelector={"nvidia.com/mig.capable": "true"},
    )
    assert await _node_of(paper, "gt") == "server-3"


async def test_least_allocated_spreads_and_ties_go_to_the_first_name(
    cluster: ControllerCluster,
) -> None:
    for name in ("b", "a", "c"):
        cluster.add_node(name)
    cluster.create_pod("first", requests={"cpu": "2"})
    assert await _node_of(cluster, "first") == "a"
    cluster.create_pod("second", requests={"cpu": "2"})
    assert await _node_of(cluster, "second") == "b"
    cluster.add_node("soft", taints=[{"key": "spot", "effect": "PreferNoSchedule"}])
    cluster.create_pod("third", requests={"cpu": "1"})
    assert await _node_of(cluster, "third") == "c"  # the tainted empty node is avoided


async def test_failed_scheduling_message_event_and_condition(paper: ControllerCluster) -> None:
    node = copy.deepcopy(paper.store.get(NODES, None, "server-2"))
    assert node is not None
    node["spec"]["taints"] = [{"key": "reserved", "value": "cms", "effect": "NoSchedule"}]
    paper.store.update(NODES, node)
    paper.create_pod(
        "greedy",
        limits={"nvidia.com/gpu": "3"},
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "nvidia.com/gpu.present", "operator": "Exists"},
                                {"key": "xilinx.com/fpga.present", "operator": "DoesNotExist"},
                            ]
                        }
                    ]
                }
            }
        },
        priorityClassName="notebook",
    )
    await _node_of(paper, "greedy")  # server-1 (4 GPUs) or server-3 (3 GPUs)
    paper.create_pod("more", limits={"nvidia.com/gpu": "3"}, priorityClassName="notebook")
    await _node_of(paper, "more")
    paper.create_pod("late", limits={"nvidia.com/gpu": "3"}, priorityClassName="notebook")
    event = await _failed_scheduling(paper, "late")
    # server-4 has 2 GPUs: asking 3 exceeds the node, which no eviction can fix
    expected = (
        "0/4 nodes are available: 1 node(s) had untolerated taint {reserved: cms}, "
        "3 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available: "
        "2 No preemption victims found for incoming pod, 2 Preemption is not helpful for "
        "scheduling."
    )
    assert event["message"] == expected
    assert event["type"] == "Warning" and event["count"] == 1
    assert event["involvedObject"]["kind"] == "Pod"
    pod = paper.pod("late")
    assert pod is not None and pod["status"]["phase"] == "Pending"
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert condition == {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": expected,
        "lastProbeTime": None,
        "lastTransitionTime": condition["lastTransitionTime"],
    }
    # a retry (here: a node changed) updates the count of the same event
    node = copy.deepcopy(paper.store.get(NODES, None, "server-4"))
    assert node is not None
    node["metadata"]["labels"]["touched"] = "yes"
    paper.store.update(NODES, node)
    await paper.wait_for(lambda: paper.events("late", "FailedScheduling")[0]["count"] == 2)
    assert len(paper.events("late", "FailedScheduling")) == 1


async def test_no_nodes_and_foreign_schedulers(cluster: ControllerCluster) -> None:
    cluster.create_pod("alone")
    event = await _failed_scheduling(cluster, "alone")
    assert event["message"] == "no nodes available to schedule pods"
    cluster.add_node("n1")
    assert await _node_of(cluster, "alone") == "n1"  # a new node triggers a retry
    cluster.create_pod("other", schedulerName="volcano")
    cluster.create_pod("marker")
    await _node_of(cluster, "marker")
    other = cluster.pod("other")
    assert other is not None and "nodeName" not in other["spec"]
    assert not cluster.events("other")


async def test_freed_resources_are_reused(paper: ControllerCluster) -> None:
    for i in range(3):
        paper.create_pod(f"mig{i}", limits={"nvidia.com/mig-1g.10gb": "1"}, restartPolicy="Never")
        assert await _node_of(paper, f"mig{i}") == "server-3"
    paper.create_pod("mig3", limits={"nvidia.com/mig-1g.10gb": "1"})
    event = await _failed_scheduling(paper, "mig3")
    assert event["message"].startswith(
        "0/4 nodes are available: 4 Insufficient nvidia.com/mig-1g.10gb."
    )
    # a pod that finished frees its resources without being deleted
    paper.controllers.set_pod_outcome("default", "mig1", "succeed")
    assert await _node_of(paper, "mig3") == "server-3"
    paper.create_pod("mig4", limits={"nvidia.com/mig-1g.10gb": "1"})
    await _failed_scheduling(paper, "mig4")
    paper.delete(PODS, "mig0", grace_period=0)
    assert await _node_of(paper, "mig4") == "server-3"


async def test_cordoned_and_not_ready_nodes(cluster: ControllerCluster) -> None:
    cluster.add_node("cordoned", unschedulable=True)
    cluster.add_node("sick", ready=False)
    cluster.create_pod("p")
    event = await _failed_scheduling(cluster, "p")
    assert event["message"] == (
        "0/2 nodes are available: 1 node(s) had untolerated taint "
        "{node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable. preemption: 0/2 nodes "
        "are available: 2 Preemption is not helpful for scheduling."
    )
    tolerant = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]
    cluster.create_pod("daemon", tolerations=tolerant)
    assert await _node_of(cluster, "daemon") == "cordoned"


async def test_higher_priority_preempts_the_fewest_lowest_priority_pods(
    paper: ControllerCluster,
) -> None:
    selector = {GPU_PRODUCT: "Quadro-RTX-5000"}
    paper.create_pod(
        "batch", limits={"nvidia.com/gpu": "1"}, nodeSelector=selector, priorityClassName="batch"
    )
    paper.create_pod(
        "spot",
        limits={"nvidia.com/gpu": "1"},
        nodeSelector=selector,
        priorityClassName="opportunistic",
    )
    await _node_of(paper, "batch")
    await _node_of(paper, "spot")
    spot_uid = paper.pod("spot")["metadata"]["uid"]  # type: ignore[index]
    paper.create_pod(
        "notebook",
        limits={"nvidia.com/gpu": "1"},
        nodeSelector=selector,
        priorityClassName="notebook",
    )
    assert await _node_of(paper, "notebook") == "server-2"
    assert paper.pod("spot") is None  # the lowest priority pod was the victim
    assert paper.pod("batch") is not None
    notebook = paper.pod("notebook")
    assert notebook is not None
    [preempted] = paper.events("spot", "Preempted")
    assert (
        preempted["message"] == f"Preempted by pod {notebook['metadata']['uid']} on node server-2"
    )
    assert preempted["involvedObject"]["uid"] == spot_uid
    [failed] = paper.events("notebook", "FailedScheduling")
    assert failed["message"] == (
        "0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 3 node(s) didn't match Pod's "
        "node affinity/selector."
    )
    # v1.33's binding leaves the nomination (ClearingNominatedNodeNameAfterBinding is v1.34+)
    assert notebook["status"]["nominatedNodeName"] == "server-2"


async def test_victims_get_disruption_target_and_the_preemptor_a_nominated_node(
    tmp_path: Path,
) -> None:
    async with running_cluster(tmp_path, run_processes=True) as cluster:
        cluster.add_node("n1", {"cpu": "2"})
        cluster.add_priority_class("high", 1000)
        script = (
            "import signal, time\nsignal.signal(signal.SIGTERM, lambda *a: None)\ntime.sleep(30)"
        )
        cluster.create_pod(
            "victim",
            requests={"cpu": "2"},
            command=[sys.executable, "-c", script],
            terminationGracePeriodSeconds=1,
        )
        await cluster.running("victim")
        cluster.create_pod("vip", requests={"cpu": "2"}, priorityClassName="high")

        def nominated() -> JSON | None:
            pod = cluster.pod("vip")
            return pod if pod and pod["status"].get("nominatedNodeName") == "n1" else None

        await cluster.wait_for(nominated, what="nomination")
        victim = cluster.pod("victim")
        assert victim is not None and "deletionTimestamp" in victim["metadata"]
        target = next(c for c in victim["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert (target["status"], target["reason"]) == ("True", "PreemptionByScheduler")
        assert (
            target["message"]
            == "default-scheduler: preempting to accommodate a higher priority pod"
        )
        # the victim ignores SIGTERM: the preemptor waits for the SIGKILL after 1 s
        assert await _node_of(cluster, "vip") == "n1"
        assert cluster.pod("victim") is None


async def test_preemption_policy_never_and_equal_priority_never_preempt(
    paper: ControllerCluster,
) -> None:
    selector = {GPU_PRODUCT: "NVIDIA-A30"}
    for i in range(2):
        paper.create_pod(f"nb{i}", limits={"nvidia.com/gpu": "1"}, nodeSelector=selector)
        await _node_of(paper, f"nb{i}")
    paper.create_pod(
        "batch", limits={"nvidia.com/gpu": "1"}, nodeSelector=selector, priorityClassName="batch"
    )
    event = await _failed_scheduling(paper, "batch")
    assert event["message"].endswith(" preemption: not eligible due to preemptionPolicy=Never.")
    paper.create_pod("peer", limits={"nvidia.com/gpu": "1"}, nodeSelector=selector)
    event = await _failed_scheduling(paper, "peer")
    assert event["message"].endswith(
        "preemption: 0/4 nodes are available: 1 No preemption victims found for incoming pod, "
        "3 Preemption is not helpful for scheduling."
    )
    assert paper.pod("nb0") is not None and paper.pod("nb1") is not None


async def test_scheduling_scales_with_nodes_not_pods(cluster: ControllerCluster) -> None:
    for i in range(300):
        cluster.add_node(f"node-{i:03d}", {"cpu": "16", "nvidia.com/gpu": "4"})
    began = time.monotonic()
    for i in range(1200):
        cluster.create_pod(
            f"p{i}", requests={"cpu": "1"}, limits={"nvidia.com/gpu": "1"} if i % 2 else None
        )
    bound = 0

    def all_bound() -> bool:
        nonlocal bound
        bound = sum(1 for p in cluster.store.iter(PODS) if p["spec"].get("nodeName"))
        return bound == 1200

    await cluster.wait_for(all_bound, timeout=20, what="1200 pods bound")
    assert time.monotonic() - began < 15
    per_node = [0] * 300
    for pod in cluster.store.iter(PODS):
        per_node[int(pod["spec"]["nodeName"].split("-")[1])] += 1
    assert max(per_node) <= 16  # nothing overcommitted; least-allocated spreads them
