"""What a pod holds on its node, computed as Kubernetes does.

A pod's effective request is, per resource, the larger of the sum over its app containers and
the largest init container, plus ``overhead``. Extended resources (GPUs, MIG slices, FPGAs) are
requested through limits (requests default to limits), so limits count where requests are absent.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from .quantity import parse_quantity

JSON = dict[str, Any]
Resources = dict[str, Fraction]


def container_requests(container: JSON) -> Resources:
    """Requests of one container; a limit stands in for a missing request."""
    resources = container.get("resources") or {}
    out: Resources = {}
    for source in (resources.get("limits") or {}, resources.get("requests") or {}):
        for name, value in source.items():
            out[name] = parse_quantity(value)
    return out


def pod_requests(spec: JSON) -> Resources:
    """The pod's effective requests, ``pods: 1`` included."""
    total: Resources = {}
    for container in spec.get("containers") or []:
        for name, value in container_requests(container).items():
            total[name] = total.get(name, Fraction(0)) + value
    for container in spec.get("initContainers") or []:
        for name, value in container_requests(container).items():
            total[name] = max(total.get(name, Fraction(0)), value)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, Fraction(0)) + parse_quantity(value)
    total["pods"] = Fraction(1)
    return total


def holds_resources(pod: JSON) -> bool:
    """Bound, not finished and not being deleted: the pod's requests are taken on its node."""
    return (
        bool(pod.get("spec", {}).get("nodeName"))
        and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        and "deletionTimestamp" not in pod.get("metadata", {})
    )
