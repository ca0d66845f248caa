"""What a pod holds on its node, computed as Kubernetes does.

A pod's effective request is, per resource, the larger of the sum over its app containers and
the largest init container, plus ``overhead``. Extended resources (GPUs, MIG slices, FPGAs) are
requested through limits, so for them a limit counts where the request is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from .quantity import parse_quantity

JSON = dict[str, Any]
Resources = dict[str, Fraction]


_NOT_EXTENDED = ("cpu", "memory", "ephemeral-storage")


def quantities(values: Mapping[str, Any] | None) -> Resources:
    """A ResourceList (``{"cpu": "500m"}``) as exact numbers."""
    return {name: parse_quantity(q) for name, q in (values or {}).items()}


def container_requests(container: JSON) -> Resources:
    """Requests of one container; extended resources, given only as limits, request the limit."""
    resources = container.get("resources") or {}
    requests = quantities(resources.get("requests"))
    for name, amount in quantities(resources.get("limits")).items():
        if name not in _NOT_EXTENDED and name not in requests:
            requests[name] = amount
    return requests


def _add(into: Resources, more: Mapping[str, Fraction]) -> None:
    for name, amount in more.items():
        into[name] = into.get(name, Fraction(0)) + amount


def _take_max(into: Resources, other: Mapping[str, Fraction]) -> None:
    for name, amount in other.items():
        if amount > into.get(name, Fraction(0)):
            into[name] = amount


def pod_requests(spec: JSON) -> Resources:
    """The pod's effective request (CPU in cores), including one unit of ``pods``.

    Like Kubernetes: the sum over app containers and restartable (sidecar) init containers,
    or the largest ordinary init container plus the sidecars started before it if that is
    more, plus ``spec.overhead``.
    """
    total: Resources = {}
    for container in spec.get("containers") or []:
        _add(total, container_requests(container))
    init_peak: Resources = {}
    sidecars: Resources = {}
    for container in spec.get("initContainers") or []:
        requests = container_requests(container)
        if container.get("restartPolicy") == "Always":
            _add(total, requests)
            _add(sidecars, requests)
            candidate = dict(sidecars)
        else:
            candidate = dict(requests)
            _add(candidate, sidecars)
        _take_max(init_peak, candidate)
    _take_max(total, init_peak)
    _add(total, quantities(spec.get("overhead")))
    total["pods"] = Fraction(1)
    return total


def holds_resources(pod: JSON) -> bool:
    """Bound, not finished and not being deleted: the pod's requests are taken on its node."""
    return (
        bool(pod.get("spec", {}).get("nodeName"))
        and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        and "deletionTimestamp" not in pod.get("metadata", {})
    )


def _container_resources(container: JSON) -> JSON:
    kept = {"name": container.get("name"), "resources": container.get("resources") or {}}
    if "restartPolicy" in container:
        kept["restartPolicy"] = container["restartPolicy"]
    return kept


def resource_view(pod: JSON) -> JSON:
    """Only what :func:`pod_requests`, :func:`holds_resources` and :func:`pod_priority` read.

    The hub caches every pod of the cluster: whole pods would keep other users' environment
    values, commands and annotations in the hub's memory (and cost several times the memory).
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    kept_meta = {k: meta[k] for k in ("name", "namespace", "uid", "deletionTimestamp") if k in meta}
    kept_spec: JSON = {
        "containers": [_container_resources(c) for c in spec.get("containers") or []],
        "initContainers": [_container_resources(c) for c in spec.get("initContainers") or []],
    }
    for key in ("nodeName", "overhead", "priority"):
        if key in spec:
            kept_spec[key] = spec[key]
    phase = (pod.get("status") or {}).get("phase")
    return {"metadata": kept_meta, "spec": kept_spec, "status": {"phase": phase} if phase else {}}


def pod_priority(pod: JSON) -> int:
    """The priority the API server resolved from the pod's PriorityClass (0 without one)."""
    try:
        return int(pod.get("spec", {}).get("priority") or 0)
    except (TypeError, ValueError):
        return 0
