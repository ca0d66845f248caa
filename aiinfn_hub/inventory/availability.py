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

from ..config import Accelerator, PlatformConfig
from ..kubemodel.pod_resources import Resources, holds_resources, pod_priority, pod_requests
from ..platform.placement import DEFAULT_RESERVED_KEY, offered_to_notebooks, units_on_node

JSON = dict[str, Any]
_NOTHING: Resources = {}


@dataclass(frozen=True)
class ServerAvailability:
    """Units of one model on one server: ``free`` now, and ``batch`` more held by pods of lower
    priority than notebooks (batch jobs), which a notebook takes by preempting them."""

    node: str
    total: int
    free: int
    batch: int = 0

    @property
    def for_notebooks(self) -> int:
        """Units a notebook can have here: the free ones and those batch jobs hold."""
        return self.free + self.batch


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
    batch: int = 0

    @property
    def for_notebooks(self) -> int:
        return self.free + self.batch

    def to_json(self) -> JSON:
        """The shape served at ``/hub/api/aiinfn/accelerators``."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "memoryGiB": self.memory_gib,
            "total": self.total,
            "free": self.free,
            "batch": self.batch,
            "servers": [
                {"node": s.node, "total": s.total, "free": s.free, "batch": s.batch}
                for s in self.servers
            ],
        }


@dataclass(frozen=True)
class Usage:
    """Requests held per node: by every pod (``held``), and by the pods a notebook may preempt
    (``preemptible``: priority below the notebooks', a part of ``held``). Read-only: a
    :class:`~aiinfn_hub.inventory.ledger.UsageLedger` shares the dicts between snapshots."""

    held: dict[str, Resources]
    preemptible: dict[str, Resources]


def _add(usage: dict[str, Resources], node: str, requests: Resources) -> None:
    held = usage.setdefault(node, {})
    for name, value in requests.items():
        held[name] = held.get(name, Fraction(0)) + value


def node_usage(pods: Iterable[JSON], notebook_priority: int | None = None) -> Usage:
    """What pods hold on each node, across all namespaces; with ``notebook_priority``, pods of
    a lower priority count as preemptible too (kube-scheduler evicts them for a notebook)."""
    held: dict[str, Resources] = {}
    preemptible: dict[str, Resources] = {}
    for pod in pods:
        if not holds_resources(pod):
            continue
        requests = pod_requests(pod.get("spec", {}))
        node = pod["spec"]["nodeName"]
        _add(held, node, requests)
        if notebook_priority is not None and pod_priority(pod) < notebook_priority:
            _add(preemptible, node, requests)
    return Usage(held, preemptible)


@dataclass(frozen=True)
class ModelServers:
    """The servers that carry one catalogue model, and how many units each has: what the
    nodes say, apart from what pods hold (so it is computed once per change of the nodes)."""

    model: Accelerator
    servers: tuple[tuple[str, int], ...]


def offered_servers(
    config: PlatformConfig,
    nodes: Iterable[JSON],
    *,
    projects: set[str] | None = None,
    reserved_key: str = DEFAULT_RESERVED_KEY,
) -> list[ModelServers]:
    """Every catalogue model (by preference) with the servers ``projects`` may use that carry
    it, in name order, and their units."""
    visible = sorted(
        (n for n in nodes if offered_to_notebooks(n, projects, config.jobs.offload, reserved_key)),
        key=lambda n: str(n["metadata"]["name"]),
    )
    models = sorted(config.accelerators, key=lambda a: (-a.preference_weight, a.name))
    out = []
    for model in models:
        servers = []
        for node in visible:
            total = units_on_node(node, model)
            if total > 0:
                servers.append((str(node["metadata"]["name"]), total))
        out.append(ModelServers(model, tuple(servers)))
    return out


def count_availability(offer: Iterable[ModelServers], used: Usage) -> list[ModelAvailability]:
    """Free/total units of each model of ``offer`` given what pods hold (``used``)."""
    out: list[ModelAvailability] = []
    for entry in offer:
        model = entry.model
        servers = tuple(_server(node, total, model.resource, used) for node, total in entry.servers)
        out.append(
            ModelAvailability(
                name=model.name,
                description=model.description,
                kind=model.kind,
                memory_gib=model.memory_gib,
                total=sum(s.total for s in servers),
                free=sum(s.free for s in servers),
                servers=servers,
                batch=sum(s.batch for s in servers),
            )
        )
    return out


def accelerator_availability(
    config: PlatformConfig,
    nodes: Iterable[JSON],
    used: Usage,
    *,
    projects: set[str] | None = None,
    reserved_key: str = DEFAULT_RESERVED_KEY,
) -> list[ModelAvailability]:
    """Free/total units of every catalogue model on the nodes ``projects`` may use, and the
    units batch work holds there (as far as ``used`` tells them apart).

    ``used`` comes from :func:`node_usage` (or a :class:`~.ledger.UsageLedger`); it is passed
    in so a cache can compute it once per change of the pod set instead of once per request.
    """
    offer = offered_servers(config, nodes, projects=projects, reserved_key=reserved_key)
    return count_availability(offer, used)


def _server(node: str, total: int, resource: str, usage: Usage) -> ServerAvailability:
    """Free units, and the units beyond them that only preemptible pods hold."""
    taken = int(usage.held.get(node, _NOTHING).get(resource, 0))
    by_batch = int(usage.preemptible.get(node, _NOTHING).get(resource, 0))
    free = min(max(total - taken, 0), total)
    for_notebooks = min(max(total - (taken - by_batch), 0), total)
    return ServerAvailability(node, total, free, max(for_notebooks - free, 0))
