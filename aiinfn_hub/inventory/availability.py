"""Accelerator availability: total and free units of each catalogue model, per server.

Pure counting over node and pod objects (plain JSON dicts, as an informer cache holds them), so
it is tested directly and costs no API call. What counts:

- a server carries a model when its labels match the model's ``nodeSelector`` and its
  allocatable has the model's extended resource; MIG slices and FPGAs are models like GPUs;
- units are taken by pods bound to the server that hold resources (not Succeeded, Failed or
  terminating), in every namespace (batch jobs hold GPUs too), counted as Kubernetes does;
- the notebook form leaves out cordoned nodes and virtual nodes (interLink), and shows a node
  reserved for a project (a taint or label ``<reserved key>=<project>``) only to its members
  (the rules of :mod:`aiinfn_hub.platform.placement`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..config import PlatformConfig
from ..kubemodel.pod_resources import Resources, holds_resources, pod_requests
from ..platform.placement import DEFAULT_RESERVED_KEY, offered_to_notebooks, units_on_node

JSON = dict[str, Any]


@dataclass(frozen=True)
class ServerAvailability:
    """Units of one model on one server."""

    node: str
    total: int
    free: int


@dataclass(frozen=True)
class ModelAvailability:
    """Units of one catalogue model across the servers a user may use."""

    name: str
    description: str
    kind: str
    memory_gib: float
    total: int
    free: int
    servers: tuple[ServerAvailability, ...]

    def to_json(self) -> JSON:
        """The shape served at ``/hub/api/aiinfn/accelerators``."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "memoryGiB": self.memory_gib,
            "total": self.total,
            "free": self.free,
            "servers": [{"node": s.node, "total": s.total, "free": s.free} for s in self.servers],
        }


def usage_by_node(pods: Iterable[JSON]) -> dict[str, Resources]:
    """Requests held on each node by pods that hold resources, across all namespaces."""
    used: dict[str, Resources] = {}
    for pod in pods:
        if not holds_resources(pod):
            continue
        node = used.setdefault(pod["spec"]["nodeName"], {})
        for name, value in pod_requests(pod.get("spec", {})).items():
            node[name] = node.get(name, Fraction(0)) + value
    return used


def accelerator_availability(
    config: PlatformConfig,
    nodes: Iterable[JSON],
    used: dict[str, Resources],
    *,
    projects: set[str] | None = None,
    reserved_key: str = DEFAULT_RESERVED_KEY,
) -> list[ModelAvailability]:
    """Free/total units of every catalogue model on the nodes ``projects`` may use.

    ``used`` comes from :func:`usage_by_node`; it is passed in so a cache can compute it once
    per change of the pod set instead of once per request.
    """
    visible = sorted(
        (n for n in nodes if offered_to_notebooks(n, projects, config.jobs.offload, reserved_key)),
        key=lambda n: str(n["metadata"]["name"]),
    )
    models = sorted(config.accelerators, key=lambda a: (-a.preference_weight, a.name))
    out: list[ModelAvailability] = []
    for model in models:
        servers = []
        for node in visible:
            total = units_on_node(node, model)
            if total <= 0:
                continue
            name = node["metadata"]["name"]
            taken = used.get(name, {}).get(model.resource, Fraction(0))
            servers.append(ServerAvailability(name, total, max(total - int(taken), 0)))
        out.append(
            ModelAvailability(
                name=model.name,
                description=model.description,
                kind=model.kind,
                memory_gib=model.memory_gib,
                total=sum(s.total for s in servers),
                free=sum(s.free for s in servers),
                servers=tuple(servers),
            )
        )
    return out
