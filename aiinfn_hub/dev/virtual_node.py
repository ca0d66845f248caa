"""A stand-in for an interLink virtual node in the emulated cluster.

A Virtual Kubelet node registers like any node but runs its pods at another site; here that
site is this machine (``localSite``): the emulator runs its pods like the others'. What matters
is what the platform relies on: the taint that keeps everything but offloaded jobs away
(``jobs.offload.taintKey``), the labels offloaded pods may select (``jobs.offload.nodeSelector``)
and a site-sized capacity with the accelerator units the configuration says the remote sites
offer (``jobs.offload.accelerators``).
"""

from __future__ import annotations

from ..config import PlatformConfig
from ..platform.vocabulary import INTERLINK_TYPE_LABEL
from .emulator.cluster import ClusterSpec, NodeSpec, Taint

NAME = "vk-interlink"
TYPE_LABEL = INTERLINK_TYPE_LABEL[0]


def interlink_node(config: PlatformConfig, name: str = NAME) -> NodeSpec:
    """The virtual node as the platform configuration expects it."""
    offload = config.jobs.offload
    return NodeSpec(
        name=name,
        labels={TYPE_LABEL: INTERLINK_TYPE_LABEL[1], "kubernetes.io/role": "agent"}
        | dict(offload.node_selector),
        taints=[Taint(key=offload.taint_key, value="true", effect="NoSchedule")],
        capacity={"cpu": "256", "memory": "1Ti", "pods": "1000"}
        | {resource: str(count) for resource, count in offload.accelerators.items()},
        local_site=True,  # its pods really run (here), with their JuiceFS sidecar
    )


def with_interlink_node(cluster: ClusterSpec, config: PlatformConfig) -> ClusterSpec:
    """``cluster`` plus the virtual node (once)."""
    node = interlink_node(config)
    nodes = [n for n in cluster.nodes if n.name != node.name] + [node]
    return cluster.model_copy(update={"nodes": nodes})
