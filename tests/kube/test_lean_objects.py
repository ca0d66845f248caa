"""What the hub's informers keep of pods and nodes (pure functions, no cluster)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfn_hub.config import PlatformConfig, load_platform_config
from aiinfn_hub.dev.emulator.cluster import initial_objects, load_cluster_file
from aiinfn_hub.inventory.availability import accelerator_availability, node_usage
from aiinfn_hub.kube.lean import lean_node, lean_pod
from aiinfn_hub.kubemodel.pod_resources import holds_resources, pod_priority, pod_requests
from aiinfn_hub.platform.placement import is_virtual_node, offered_to_notebooks, reserved_for

JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
GOLDEN_PODS = sorted((ROOT / "tests" / "golden").glob("pod-*.json"))


def _running(pod: JSON, node: str = "server-1") -> JSON:
    """A golden pod manifest as the API server and the kubelet make it."""
    pod = copy.deepcopy(pod)
    pod["metadata"] |= {
        "namespace": "jupyterhub",
        "uid": "6f1c1f9e-0000-4000-8000-000000000001",
        "resourceVersion": "12345",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": "j",
                "uid": "u-j",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "managedFields": [{"manager": "kubespawner", "fieldsV1": {"f:spec": {}}}],
    }
    pod["spec"] |= {"nodeName": node, "priority": 1000, "schedulerName": "default-scheduler"}
    pod["status"] = {
        "phase": "Running",
        "nominatedNodeName": node,
        "podIP": "10.1.2.3",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "notebook", "ready": True, "image": "x", "imageID": "y"}],
    }
    return pod


@pytest.mark.parametrize("path", GOLDEN_PODS, ids=lambda p: p.stem)
def test_a_pod_keeps_what_the_platform_reads_and_nothing_a_user_wrote(path: Path) -> None:
    whole = _running(json.loads(path.read_text()))
    lean = lean_pod(whole)
    assert pod_requests(lean["spec"]) == pod_requests(whole["spec"])
    assert holds_resources(lean) and pod_priority(lean) == 1000
    meta = lean["metadata"]
    assert (meta["name"], meta["namespace"], meta["uid"]) == (
        whole["metadata"]["name"],
        "jupyterhub",
        whole["metadata"]["uid"],
    )
    assert meta["labels"] == whole["metadata"]["labels"]
    assert meta["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u-j", "controller": True}
    ]
    assert lean["status"] == {"phase": "Running", "nominatedNodeName": "server-1"}
    assert set(lean["spec"]) <= {"containers", "initContainers", "nodeName", "priority"}
    for container in lean["spec"]["containers"] + lean["spec"].get("initContainers", []):
        assert set(container) <= {"name", "resources", "restartPolicy"}
    text = json.dumps(lean)
    for dropped in ("JUPYTERHUB_API_TOKEN", "jupyterhub-singleuser", "managedFields", "podIP"):
        assert dropped not in text
    assert "annotations" not in meta  # no pod annotation is read from this cache
    assert len(text) * 3 < len(json.dumps(whole))


def test_a_terminating_pod_stays_terminating_and_an_unbound_pod_unbound() -> None:
    pod = _running(json.loads(GOLDEN_PODS[0].read_text()))
    pod["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    assert not holds_resources(lean_pod(pod))
    del pod["metadata"]["deletionTimestamp"], pod["spec"]["nodeName"]
    assert not holds_resources(lean_pod(pod)) and "nodeName" not in lean_pod(pod)["spec"]


def test_repeated_strings_are_held_once() -> None:
    pods = [
        lean_pod(json.loads(json.dumps(_running(json.loads(GOLDEN_PODS[0].read_text())))))
        for _ in range(2)
    ]
    a, b = (p["spec"]["nodeName"] for p in pods)
    assert a == b and a is b
    labels = [p["metadata"]["labels"] for p in pods]
    assert all(x is y for x, y in zip(labels[0].values(), labels[1].values(), strict=True))


quantities = st.sampled_from(["0", "1", "2", "250m", "1.5", "1Gi", "100M"])
resource_lists = st.dictionaries(
    st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "xilinx.com/fpga-u50"]), quantities
)
containers = st.fixed_dictionaries(
    {"name": st.just("c")},
    optional={
        "resources": st.fixed_dictionaries(
            {}, optional={"requests": resource_lists, "limits": resource_lists}
        ),
        "restartPolicy": st.sampled_from(["Always", "Never"]),
        "env": st.just([{"name": "K", "value": "v"}]),
    },
)
pods = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {"name": st.just("p"), "namespace": st.just("n")},
            optional={"deletionTimestamp": st.just("2026-01-01T00:00:00Z")},
        ),
        "spec": st.fixed_dictionaries(
            {"containers": st.lists(containers, max_size=3)},
            optional={
                "initContainers": st.lists(containers, max_size=3),
                "nodeName": st.sampled_from(["", "server-1"]),
                "priority": st.sampled_from([-100, 0, 1000]),
                "overhead": resource_lists,
            },
        ),
        "status": st.fixed_dictionaries(
            {}, optional={"phase": st.sampled_from(["Pending", "Running", "Succeeded", "Failed"])}
        ),
    }
)


@settings(max_examples=300)
@given(pod=pods, threshold=st.sampled_from([None, -100, 0, 1000]))
def test_counting_a_lean_pod_gives_what_counting_the_whole_pod_gives(
    pod: JSON, threshold: int | None
) -> None:
    assert node_usage([lean_pod(pod)], threshold) == node_usage([pod], threshold)


@pytest.fixture
def config() -> PlatformConfig:
    return load_platform_config(ROOT / "examples" / "platform.yaml")


def test_a_node_keeps_what_placement_reads(config: PlatformConfig) -> None:
    nodes = [
        o
        for o in initial_objects(load_cluster_file(ROOT / "examples" / "cluster.yaml"))
        if o["kind"] == "Node"
    ]
    nodes[0]["spec"]["unschedulable"] = True
    nodes[1]["spec"]["taints"] = [{"key": "reserved", "value": "cms", "effect": "NoSchedule"}]
    nodes[2]["status"]["images"] = [{"names": ["big/image:1"], "sizeBytes": 1}]
    nodes[2]["metadata"]["annotations"] = {"node.alpha.kubernetes.io/ttl": "0"}
    lean = [lean_node(n) for n in nodes]
    offload = config.jobs.offload
    for whole, kept in zip(nodes, lean, strict=True):
        assert is_virtual_node(kept, offload) == is_virtual_node(whole, offload)
        assert reserved_for(kept) == reserved_for(whole)
        for projects in (None, {"cms"}, set()):
            assert offered_to_notebooks(kept, projects, offload) == offered_to_notebooks(
                whole, projects, offload
            )
        assert set(kept["status"]) == {"allocatable"}
        assert "annotations" not in kept["metadata"]
    used = node_usage([])
    for projects in (None, {"cms"}, {"ml-infn"}):
        assert accelerator_availability(config, lean, used, projects=projects) == (
            accelerator_availability(config, nodes, used, projects=projects)
        )
