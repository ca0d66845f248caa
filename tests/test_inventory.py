"""Accelerator counting over node and pod objects (pure, no cluster)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from aiinfn_hub.config import PlatformConfig, load_platform_config
from aiinfn_hub.dev.emulator.cluster import initial_objects, load_cluster_file
from aiinfn_hub.inventory.availability import (
    ModelAvailability,
    accelerator_availability,
    node_usage,
)
from aiinfn_hub.platform.placement import is_virtual_node

NOTHING_HELD = node_usage([])  # an empty cluster's usage
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def config() -> PlatformConfig:
    return load_platform_config(EXAMPLES / "platform.yaml")


@pytest.fixture
def nodes() -> list[dict[str, Any]]:
    objs = initial_objects(load_cluster_file(EXAMPLES / "cluster.yaml"))
    return [o for o in objs if o["kind"] == "Node"]


def _pod(
    node: str | None,
    limits: dict[str, str],
    *,
    phase: str = "Running",
    namespace: str = "jupyterhub",
    deleting: bool = False,
    init: bool = False,
    priority: int | None = None,
) -> dict[str, Any]:
    container = {"name": "c", "resources": {"limits": limits}}
    spec: dict[str, Any] = {"containers": [container]}
    if init:
        spec = {"containers": [{"name": "c"}], "initContainers": [container]}
    if node:
        spec["nodeName"] = node
    if priority is not None:
        spec["priority"] = priority
    meta: dict[str, Any] = {"name": "p", "namespace": namespace}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def _by_name(models: list[ModelAvailability]) -> dict[str, ModelAvailability]:
    return {m.name: m for m in models}


def test_empty_cluster_totals_per_model_and_server(
    config: PlatformConfig, nodes: list[dict[str, Any]]
) -> None:
    models = _by_name(accelerator_availability(config, nodes, NOTHING_HELD))
    assert (models["t4"].total, models["t4"].free) == (4, 4)
    assert [(s.node, s.total) for s in models["a100"].servers] == [("server-3", 3)]
    assert (models["a100-1g-10gb"].total, models["a100-3g-40gb"].total) == (3, 1)
    assert models["rtx5000"].servers[0].node == "server-2"
    assert {m.name for m in models.values() if m.kind == "fpga"} == {"u50", "u250", "v70"}
    assert models["u250"].total == 1
    # ordered by preference weight, as the form lists them
    assert list(models)[:2] == ["a100", "a100-3g-40gb"]
    assert models["a30"].to_json()["servers"] == [
        {"node": "server-4", "total": 2, "free": 2, "batch": 0}
    ]


def test_only_pods_that_hold_resources_count(
    config: PlatformConfig, nodes: list[dict[str, Any]]
) -> None:
    pods = [
        _pod("server-1", {"nvidia.com/gpu": "2"}),  # running notebook
        _pod("server-1", {"nvidia.com/gpu": "1"}, namespace="batch", phase="Pending"),  # bound
        _pod("server-1", {"nvidia.com/gpu": "1"}, phase="Succeeded"),
        _pod("server-1", {"nvidia.com/gpu": "1"}, phase="Failed"),
        _pod("server-1", {"nvidia.com/gpu": "1"}, deleting=True),
        _pod(None, {"nvidia.com/gpu": "4"}, phase="Pending"),  # unbound: holds nothing yet
        _pod("server-3", {"nvidia.com/mig-1g.10gb": "1"}, init=True),  # init container rule
    ]
    models = _by_name(accelerator_availability(config, nodes, node_usage(pods)))
    assert (models["t4"].free, models["t4"].total) == (1, 4)
    assert models["a100-1g-10gb"].free == 2
    assert models["a100"].free == 3  # MIG slices do not take whole GPUs


def test_units_held_by_batch_jobs_are_told_apart_from_notebooks(
    config: PlatformConfig, nodes: list[dict[str, Any]]
) -> None:
    """server-3's three A100s: one notebook (priority 1000), two batch pods (-100)."""
    gpu = {"nvidia.com/gpu": "1"}
    pods = [
        _pod("server-3", gpu, priority=1000),
        _pod("server-3", gpu, priority=-100, namespace="bunshin"),
        _pod("server-3", gpu, priority=-100, namespace="bunshin"),
    ]
    a100 = _by_name(accelerator_availability(config, nodes, node_usage(pods, 1000)))["a100"]
    assert (a100.free, a100.batch, a100.for_notebooks) == (0, 2, 2)
    assert [(s.node, s.free, s.batch) for s in a100.servers] == [("server-3", 0, 2)]
    assert a100.to_json()["batch"] == 2
    # a pod of the notebooks' own priority is never counted as batch: no notebook preempts
    # another notebook, and without the notebooks' priority nothing is
    same = [_pod("server-3", gpu, priority=1000) for _ in range(3)]
    assert (
        _by_name(accelerator_availability(config, nodes, node_usage(same, 1000)))[
            "a100"
        ].for_notebooks
        == 0
    )
    unknown = _by_name(accelerator_availability(config, nodes, node_usage(pods, None)))["a100"]
    assert (unknown.free, unknown.batch) == (0, 0)
    # more held than the node has (allocatable shrank): never more units than it has
    crowded = [*pods, _pod("server-3", {"nvidia.com/gpu": "2"}, priority=1000)]
    a100 = _by_name(accelerator_availability(config, nodes, node_usage(crowded, 1000)))["a100"]
    assert (a100.free, a100.batch) == (0, 0)


def test_free_never_goes_negative(config: PlatformConfig, nodes: list[dict[str, Any]]) -> None:
    pods = [_pod("server-2", {"nvidia.com/gpu": "5"})]
    models = _by_name(accelerator_availability(config, nodes, node_usage(pods)))
    assert models["rtx5000"].free == 0 and models["rtx5000"].total == 2


def test_cordoned_and_virtual_nodes_are_not_offered(
    config: PlatformConfig, nodes: list[dict[str, Any]]
) -> None:
    nodes[0]["spec"]["unschedulable"] = True  # server-1
    virtual = {
        "metadata": {
            "name": "vk-leonardo",
            "labels": {"type": "virtual-kubelet", "nvidia.com/gpu.product": "Tesla-T4"},
        },
        "spec": {
            "taints": [
                {
                    "key": "virtual-node.interlink/no-schedule",
                    "value": "true",
                    "effect": "NoSchedule",
                }
            ]
        },
        "status": {"allocatable": {"nvidia.com/gpu": "100"}},
    }
    assert is_virtual_node(virtual, config.jobs.offload)
    models = _by_name(accelerator_availability(config, [*nodes, virtual], NOTHING_HELD))
    assert models["t4"].total == 0 and models["t4"].servers == ()


def test_virtual_nodes_are_those_the_configuration_names(
    config: PlatformConfig, nodes: list[dict[str, Any]]
) -> None:
    """A site whose virtual nodes carry another taint, or only a label, configures it once."""
    offload = config.jobs.offload.model_copy(
        update={"taint_key": "example.org/remote", "node_selector": {"site": "leonardo"}}
    )
    site = config.model_copy(update={"jobs": config.jobs.model_copy(update={"offload": offload})})
    tainted, labelled = copy.deepcopy(nodes[0]), copy.deepcopy(nodes[2])
    tainted["metadata"]["name"], labelled["metadata"]["name"] = "vk-a", "vk-b"
    tainted["spec"]["taints"] = [{"key": "example.org/remote", "effect": "NoSchedule"}]
    labelled["metadata"]["labels"]["site"] = "leonardo"
    assert is_virtual_node(tainted, offload) and is_virtual_node(labelled, offload)
    assert not is_virtual_node(tainted, config.jobs.offload)  # the default taint key differs
    both = _by_name(accelerator_availability(site, [*nodes, tainted, labelled], NOTHING_HELD))
    alone = _by_name(accelerator_availability(site, nodes, NOTHING_HELD))
    assert {m: both[m].total for m in both} == {m: alone[m].total for m in alone}


def test_reserved_nodes_are_shown_only_to_their_project(
    config: PlatformConfig, nodes: list[dict[str, Any]]
) -> None:
    nodes[1]["spec"]["taints"] = [{"key": "reserved", "value": "cms", "effect": "NoSchedule"}]
    nodes[3]["metadata"]["labels"]["reserved"] = "qml"
    outsider = _by_name(accelerator_availability(config, nodes, NOTHING_HELD, projects={"ml-infn"}))
    assert outsider["rtx5000"].total == 0 and outsider["a30"].total == 0
    member = _by_name(accelerator_availability(config, nodes, NOTHING_HELD, projects={"cms"}))
    assert member["rtx5000"].total == 2 and member["a30"].total == 0
    admin = _by_name(accelerator_availability(config, nodes, NOTHING_HELD, projects=None))
    assert admin["rtx5000"].total == 2 and admin["a30"].total == 2
    other_key = _by_name(
        accelerator_availability(
            config, nodes, NOTHING_HELD, projects=set(), reserved_key="dedicated"
        )
    )
    assert other_key["rtx5000"].total == 2
