"""Pure scheduling rules, as kube-scheduler's filter and score plugins apply them.

Resource math (a pod's effective request) lives in ``aiinfn_hub.kube.pod_resources``, shared
with the hub's accelerator inventory so both count the same way.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import Any

from ....kube.pod_resources import Resources, container_requests, pod_requests
from ....kube.quantity import parse_quantity

JSON = dict[str, Any]
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
MATCH_SELECTOR = "node(s) didn't match Pod's node affinity/selector"
UNSCHEDULABLE = "node(s) were unschedulable"
NOT_READY = "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
TOO_MANY_PODS = "Too many pods"


def allocatable(node: JSON) -> Resources:
    return {
        k: parse_quantity(v) for k, v in (node.get("status", {}).get("allocatable") or {}).items()
    }


def tolerates(tolerations: list[JSON], taint: JSON) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        op = tol.get("operator", "Equal")
        if op == "Exists":
            if not tol.get("key") or tol.get("key") == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression_matches(expr: JSON, labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            mine, theirs = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return mine > theirs if op == "Gt" else mine < theirs
    return False


def term_matches(term: JSON, node: JSON) -> bool:
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    exprs = term.get("matchExpressions") or []
    field_exprs = term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False
    return all(_expression_matches(e, labels) for e in exprs) and all(
        _expression_matches(e, fields) for e in field_exprs
    )


def selector_matches(spec: JSON, node: JSON) -> bool:
    """nodeSelector and required node affinity."""
    labels = node["metadata"].get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required:
        terms = required.get("nodeSelectorTerms") or []
        if not any(term_matches(t, node) for t in terms):
            return False
    return True


def node_ready(node: JSON) -> bool:
    for cond in node.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def filter_reasons(spec: JSON, node: JSON, used: Resources, requests: Resources) -> list[str]:
    """Why the pod cannot go on ``node`` (empty: it fits)."""
    tolerations = spec.get("tolerations") or []
    if node.get("spec", {}).get("unschedulable") and not tolerates(
        tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
    ):
        return [UNSCHEDULABLE]
    if not node_ready(node) and not tolerates(
        tolerations, {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
    ):
        return [NOT_READY]
    if not selector_matches(spec, node):
        return [MATCH_SELECTOR]
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("key") == UNSCHEDULABLE_TAINT:
            continue
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return [
                f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
            ]
    return resource_reasons(node, used, requests)


def resource_reasons(node: JSON, used: Resources, requests: Resources) -> list[str]:
    alloc = allocatable(node)
    reasons = []
    for name, amount in sorted(requests.items()):
        if amount <= 0:
            continue
        free = alloc.get(name, Fraction(0)) - used.get(name, Fraction(0))
        if amount > free:
            reasons.append(TOO_MANY_PODS if name == "pods" else f"Insufficient {name}")
    return reasons


def score(spec: JSON, node: JSON, used: Resources, requests: Resources) -> float:
    """Higher is better: preferred affinity weights, then least-allocated CPU and memory."""
    total = 0.0
    preferred = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution"
        )
    ) or []
    for item in preferred:
        if term_matches(item.get("preference") or {}, node):
            total += 1000 * float(item.get("weight", 0))
    tolerations = spec.get("tolerations") or []
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") == "PreferNoSchedule" and not tolerates(tolerations, taint):
            total -= 100
    alloc = allocatable(node)
    free_parts = []
    for name in ("cpu", "memory"):
        cap = alloc.get(name, Fraction(0))
        if cap > 0:
            after = used.get(name, Fraction(0)) + requests.get(name, Fraction(0))
            free_parts.append(float((cap - after) / cap))
    if free_parts:
        total += 100 * sum(free_parts) / len(free_parts)
    return total


def failure_message(total_nodes: int, reasons: Counter[str], preemption: str) -> str:
    """``0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 3 node(s) ...``."""
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return f"0/{total_nodes} nodes are available: {parts}. preemption: {preemption}"


__all__ = ["Resources", "container_requests", "pod_requests"]
