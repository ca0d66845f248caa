"""Where pods go: node selectors, affinity and tolerations as functions of the catalogue.

One set of rules for notebook pods, Bunshin jobs, the inventory that counts free units and the
Kueue objects that queue jobs, so that what the form offers is where a pod can land:

- an accelerator model lives on nodes whose labels match its ``nodeSelector`` and that
  advertise its extended resource; its pods tolerate the model's ``tolerations``;
- a node reserved for a project carries the taint (or label) ``<reserved key>=<project>``;
  members' pods tolerate it, others never see the node;
- interLink virtual nodes (label ``virtual-node.interlink/type=virtual-kubelet`` or the older
  ``type=virtual-kubelet``, the configured taint, or the configured
  ``jobs.offload.nodeSelector``) take only offloaded jobs, never notebooks;
- an offloaded job runs on local nodes while they have room and on virtual nodes otherwise
  (``jobs.offload.localFirst``), or on virtual nodes only: its pods' required node affinity
  has the local term and the virtual term, ORed, and prefers the local one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..config import Accelerator
from ..config.jobs import Offload
from ..kubemodel.quantity import parse_quantity
from .vocabulary import HOSTNAME, INTERLINK_TYPE_LABEL, VIRTUAL_NODE_LABEL

JSON = dict[str, Any]
DEFAULT_RESERVED_KEY = "reserved"
# the taint value the Kueue flavour of virtual nodes declares (interLink sets "true")
VIRTUAL_NODE_TAINT_VALUE = "true"


# -- accelerator models -------------------------------------------------------------------------
def accelerator_node_selector(model: Accelerator | None) -> dict[str, str]:
    """Node labels a pod using ``model`` needs (none without a model)."""
    return dict(model.node_selector) if model is not None else {}


def accelerator_tolerations(model: Accelerator | None) -> list[JSON]:
    """The model's tolerations as a pod spec writes them (operator always explicit)."""
    if model is None:
        return []
    return [
        t.model_dump(by_alias=True, exclude_defaults=True) | {"operator": t.operator}
        for t in model.tolerations
    ]


def notebook_node_affinity(model: Accelerator | None, server: str | None) -> list[JSON]:
    """Required node-affinity terms of a notebook: the model's labels and the pinned server."""
    expressions = [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in sorted(accelerator_node_selector(model).items())
    ]
    if server:
        expressions.append({"key": HOSTNAME, "operator": "In", "values": [server]})
    return [{"matchExpressions": expressions}] if expressions else []


def units_on_node(node: JSON, model: Accelerator) -> int:
    """Units of ``model`` a node carries: 0 unless it matches the model's labels and resource."""
    labels = node.get("metadata", {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in model.node_selector.items()):
        return 0
    allocatable = node.get("status", {}).get("allocatable") or {}
    if model.resource not in allocatable:
        return 0
    try:
        return int(parse_quantity(allocatable[model.resource]))
    except ValueError:
        return 0


# -- nodes reserved for projects ----------------------------------------------------------------
def reservation_tolerations(projects: Iterable[str], reserved_key: str) -> list[JSON]:
    """Tolerations letting a member's pods onto nodes reserved for their projects."""
    return [
        {"key": reserved_key, "operator": "Equal", "value": name, "effect": "NoSchedule"}
        for name in projects
    ]


def reserved_for(node: JSON, reserved_key: str = DEFAULT_RESERVED_KEY) -> str | None:
    """The project a node is reserved for (taint first, then label), or None."""
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("key") == reserved_key:
            return str(taint.get("value", ""))
    labels = node.get("metadata", {}).get("labels") or {}
    value = labels.get(reserved_key)
    return str(value) if value is not None else None


# -- interLink virtual nodes ----------------------------------------------------------------------
def is_virtual_node(node: JSON, offload: Offload) -> bool:
    """A virtual kubelet (interLink) node: jobs may be offloaded there, notebooks never."""
    labels = node.get("metadata", {}).get("labels") or {}
    for key, value in (VIRTUAL_NODE_LABEL, INTERLINK_TYPE_LABEL):
        if labels.get(key) == value:
            return True
    if offload.node_selector and all(labels.get(k) == v for k, v in offload.node_selector.items()):
        return True
    taints = node.get("spec", {}).get("taints") or []
    return any(t.get("key") == offload.taint_key for t in taints)


def offload_node_selector(offload: Offload) -> dict[str, str]:
    """Node labels of the virtual nodes: the configured ones, else interLink's type label."""
    return dict(offload.node_selector) or dict([INTERLINK_TYPE_LABEL])


def _term(labels: dict[str, str]) -> JSON:
    return {
        "matchExpressions": [
            {"key": key, "operator": "In", "values": [value]}
            for key, value in sorted(labels.items())
        ]
    }


def offloaded_job_placement(model: Accelerator | None, offload: Offload) -> JSON:
    """``nodeSelector``/``affinity``/``tolerations`` of an offloaded job's pods.

    ``localFirst``: required affinity ORs the model's nodes (any local node for CPU-only work)
    with the virtual nodes and prefers the former, so kube-scheduler (and Kueue, which reads
    the same terms against its flavours' labels) falls back to a virtual node only when the
    local ones are full or a notebook took the GPU back. A virtual node is asked for the
    resource only: a remote site's GPU is the site's model. Otherwise the virtual nodes only.
    """
    virtual = offload_node_selector(offload)
    tolerations = [*accelerator_tolerations(model), offload_toleration(offload)]
    if not offload.local_first:
        return {"nodeSelector": virtual, "tolerations": tolerations}
    not_virtual = {
        "matchExpressions": [
            {"key": key, "operator": "NotIn", "values": [value]}
            for key, value in sorted(virtual.items())
        ]
    }
    local = accelerator_node_selector(model)
    node_affinity: JSON = {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": not_virtual}
        ]
    }
    if local:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [_term(local), _term(virtual)]
        }
    return {"affinity": {"nodeAffinity": node_affinity}, "tolerations": tolerations}


def offload_toleration(offload: Offload) -> JSON:
    """The toleration that lets an offloaded job's pods onto virtual nodes."""
    return {"key": offload.taint_key, "operator": "Exists", "effect": "NoSchedule"}


def virtual_node_taint(offload: Offload) -> JSON:
    """The taint virtual nodes carry, as a Kueue ResourceFlavor declares it."""
    return {"key": offload.taint_key, "value": VIRTUAL_NODE_TAINT_VALUE, "effect": "NoSchedule"}


# -- what the spawn form may offer ----------------------------------------------------------------
def offered_to_notebooks(
    node: JSON,
    projects: set[str] | None,
    offload: Offload,
    reserved_key: str = DEFAULT_RESERVED_KEY,
) -> bool:
    """Whether the spawn form may offer this node (``projects=None``: an admin's view)."""
    if node.get("spec", {}).get("unschedulable") or is_virtual_node(node, offload):
        return False
    project = reserved_for(node, reserved_key)
    return project is None or projects is None or project in projects
