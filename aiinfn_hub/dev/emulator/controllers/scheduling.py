"""Pure scheduling rules: resource requests, node filters and scores, as kube-scheduler has them.

Nothing here touches the store, so the scheduler's decisions can be tested as a matrix.
``pod_requests`` gives exact quantities (CPU in cores); the filters and scores work on integer
*amounts* (``to_amounts``: CPU in millicores, memory and storage in bytes, everything else in
units), which keeps the scheduler's per-node bookkeeping cheap.

The filters run in kube-scheduler's default plugin order (NodeUnschedulable, TaintToleration,
NodeAffinity, NodeResourcesFit) and a node reports the reasons of the first filter it fails,
which is what makes the ``FailedScheduling`` histogram read like the real one.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol, TypeVar

from ....kubemodel.pod_resources import pod_requests as pod_requests
from ....kubemodel.quantity import parse_quantity

JSON = dict[str, Any]
Resources = dict[str, int]

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
# what the scorer assumes a container without requests uses (kube-scheduler's non-zero defaults)
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_TOO_MANY_PODS = "Too many pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
_HARD_EFFECTS = ("NoSchedule", "NoExecute")


def to_amount(resource: str, quantity: str | int | float | Fraction) -> int:
    """A quantity as the integer the scheduler compares: millicores for CPU, else units/bytes."""
    value = quantity if isinstance(quantity, Fraction) else parse_quantity(quantity)
    if resource == CPU:
        value *= 1000
    return math.ceil(value)


def to_amounts(quantities: Mapping[str, Any] | None) -> Resources:
    """A ``ResourceList`` or a ``pod_requests`` result as integer amounts; zeros dropped."""
    out: Resources = {}
    for name, quantity in (quantities or {}).items():
        amount = to_amount(name, quantity)
        if amount:
            out[name] = amount
    return out


def scoring_requests(requests: Mapping[str, int]) -> tuple[int, int]:
    """CPU and memory as the least-allocated scorer counts them (non-zero defaults)."""
    return (requests.get(CPU) or DEFAULT_MILLI_CPU, requests.get(MEMORY) or DEFAULT_MEMORY)


def node_allocatable(node: JSON) -> Resources:
    """What pods may use on a node: ``status.allocatable``, else ``status.capacity``."""
    status = node.get("status") or {}
    return to_amounts(status.get("allocatable") or status.get("capacity"))


def node_ready(node: JSON) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def node_taints(node: JSON) -> list[JSON]:
    """The node's taints, plus the ones the node lifecycle controller puts on a node not Ready."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    if not node_ready(node) and not any(t.get("key") == NOT_READY_TAINT for t in taints):
        taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    return taints


# -- taints and tolerations ------------------------------------------------------------------
def toleration_matches(toleration: JSON, taint: JSON) -> bool:
    """Whether one toleration matches one taint (key, operator, value and effect)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if not key:
        # an empty key with Exists tolerates every taint
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return bool((toleration.get("value") or "") == (taint.get("value") or ""))


def tolerates(tolerations: Sequence[JSON], taint: JSON) -> bool:
    """Whether any of a pod's tolerations matches ``taint``."""
    return any(toleration_matches(t, taint) for t in tolerations)


def first_untolerated_taint(
    taints: Iterable[JSON], tolerations: list[JSON], effects: tuple[str, ...]
) -> JSON | None:
    """The first taint with one of ``effects`` that no toleration matches."""
    for taint in taints:
        if taint.get("effect") in effects and not tolerates(tolerations, taint):
            return taint
    return None


def untolerated_taint_reason(taint: JSON) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"


# -- node affinity and selectors ---------------------------------------------------------------
def match_expression(expr: JSON, labels: Mapping[str, str]) -> bool:
    """One ``NodeSelectorRequirement`` against a node's labels."""
    key = expr.get("key", "")
    operator = expr.get("operator", "")
    values = [str(v) for v in expr.get("values") or []]
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            actual, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return actual > bound if operator == "Gt" else actual < bound
    return False


def match_field(expr: JSON, node_name: str) -> bool:
    """``matchFields``: only ``metadata.name`` exists, with In or NotIn."""
    if expr.get("key") != "metadata.name":
        return False
    values = expr.get("values") or []
    if expr.get("operator") == "In":
        return node_name in values
    if expr.get("operator") == "NotIn":
        return node_name not in values
    return False


def match_term(term: JSON, node: JSON) -> bool:
    """A ``NodeSelectorTerm``: all its expressions hold; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    name = node["metadata"]["name"]
    return all(match_expression(e, labels) for e in expressions) and all(
        match_field(f, name) for f in fields
    )


def matches_node_selection(spec: JSON, node: JSON) -> bool:
    """``nodeSelector`` and required node affinity (terms are ORed) both hold."""
    labels = node["metadata"].get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms is None:
        return True
    return any(match_term(term, node) for term in terms)


def preferred_affinity_score(spec: JSON, node: JSON) -> int:
    """Sum of the weights of the preferred node-affinity terms the node matches."""
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    ) or []
    return sum(
        int(p.get("weight", 0)) for p in preferred if match_term(p.get("preference") or {}, node)
    )


# -- resources -------------------------------------------------------------------------------
def insufficient_resources(
    requests: Mapping[str, int], allocatable: Mapping[str, int], used: Mapping[str, int]
) -> list[str]:
    """The NodeResourcesFit reasons, in kube-scheduler's order (pods, cpu, memory, ...)."""
    short = [
        name
        for name, amount in requests.items()
        if amount and used.get(name, 0) + amount > allocatable.get(name, 0)
    ]
    order = {PODS: 0, CPU: 1, MEMORY: 2, EPHEMERAL_STORAGE: 3}
    short.sort(key=lambda name: (order.get(name, 4), name))
    return [REASON_TOO_MANY_PODS if name == PODS else f"Insufficient {name}" for name in short]


def exceeds_node(requests: Mapping[str, int], allocatable: Mapping[str, int]) -> bool:
    """The pod needs more than the whole node has: evicting pods there cannot help."""
    return any(amount > allocatable.get(name, 0) for name, amount in requests.items())


def least_allocated_score(
    requests: Mapping[str, int], allocatable: Mapping[str, int], used: Mapping[str, int]
) -> int:
    """0-100: how much CPU and memory stays free after placing the pod (the default scorer)."""
    pod_cpu, pod_memory = scoring_requests(requests)
    return _least_allocated(pod_cpu, pod_memory, allocatable, used)


def _free_share(capacity: int, after: int) -> int:
    return 0 if capacity == 0 or after > capacity else (capacity - after) * 100 // capacity


def _least_allocated(
    pod_cpu: int, pod_memory: int, allocatable: Mapping[str, int], used: Mapping[str, int]
) -> int:
    cpu = _free_share(allocatable.get(CPU, 0), used.get(CPU, 0) + pod_cpu)
    memory = _free_share(allocatable.get(MEMORY, 0), used.get(MEMORY, 0) + pod_memory)
    return (cpu + memory) // 2


# -- the whole filter ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeVerdict:
    """Why a node cannot take a pod; ``resolvable`` when evicting pods there could help."""

    reasons: tuple[str, ...]
    resolvable: bool

    @property
    def fits(self) -> bool:
        return not self.reasons


FITS = NodeVerdict((), True)


@dataclass(frozen=True)
class NodeFacts:
    """What the filters and scores read from a Node, extracted once per change of the node."""

    node: JSON
    name: str
    unschedulable: bool
    hard_taints: tuple[JSON, ...]
    soft_taints: tuple[JSON, ...]
    allocatable: Resources

    @classmethod
    def of(cls, node: JSON) -> NodeFacts:
        taints = node_taints(node)
        return cls(
            node=node,
            name=node["metadata"]["name"],
            unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
            hard_taints=tuple(t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute")),
            soft_taints=tuple(t for t in taints if t.get("effect") == "PreferNoSchedule"),
            allocatable=node_allocatable(node),
        )


@dataclass(frozen=True)
class PodFacts:
    """What the filters and scores read from a pod, extracted once per scheduling attempt."""

    spec: JSON
    requests: Resources
    tolerations: tuple[JSON, ...]
    tolerates_unschedulable: bool
    constrained: bool
    preferring: bool
    scoring_cpu: int
    scoring_memory: int

    @classmethod
    def of(cls, spec: JSON, requests: Resources) -> PodFacts:
        tolerations = tuple(spec.get("tolerations") or ())
        node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        return cls(
            spec=spec,
            requests=requests,
            tolerations=tolerations,
            tolerates_unschedulable=tolerates(
                tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
            ),
            constrained=bool(spec.get("nodeSelector"))
            or "requiredDuringSchedulingIgnoredDuringExecution" in node_affinity,
            preferring=bool(node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")),
            scoring_cpu=scoring_requests(requests)[0],
            scoring_memory=scoring_requests(requests)[1],
        )


def check_node(pod: PodFacts, node: NodeFacts, used: Mapping[str, int]) -> NodeVerdict:
    """Run the filters on one node; ``used`` is what the pods already there request."""
    if node.unschedulable and not pod.tolerates_unschedulable:
        return NodeVerdict((REASON_UNSCHEDULABLE,), False)
    if node.hard_taints:
        taint = first_untolerated_taint(node.hard_taints, list(pod.tolerations), _HARD_EFFECTS)
        if taint is not None:
            return NodeVerdict((untolerated_taint_reason(taint),), False)
    if pod.constrained and not matches_node_selection(pod.spec, node.node):
        return NodeVerdict((REASON_AFFINITY,), False)
    allocatable = node.allocatable
    for name, amount in pod.requests.items():
        if used.get(name, 0) + amount > allocatable.get(name, 0):
            short = insufficient_resources(pod.requests, allocatable, used)
            return NodeVerdict(tuple(short), not exceeds_node(pod.requests, allocatable))
    return FITS


def score_node(pod: PodFacts, node: NodeFacts, used: Mapping[str, int]) -> tuple[int, int, int]:
    """Higher is better: fewer untolerated PreferNoSchedule taints, preferred affinity, free room.

    Compared as a tuple (then by node name for a deterministic choice) rather than as
    kube-scheduler's weighted sum, so the outcome is easy to predict in tests.
    """
    soft = sum(1 for t in node.soft_taints if not tolerates(pod.tolerations, t))
    preferred = preferred_affinity_score(pod.spec, node.node) if pod.preferring else 0
    free = _least_allocated(pod.scoring_cpu, pod.scoring_memory, node.allocatable, used)
    return (-soft, preferred, free)


def filter_node(
    spec: JSON,
    requests: Mapping[str, int],
    node: JSON,
    allocatable: Mapping[str, int],
    used: Mapping[str, int],
) -> NodeVerdict:
    """``check_node`` on plain objects (``allocatable`` overrides the node's own)."""
    facts = dataclasses.replace(NodeFacts.of(node), allocatable=dict(allocatable))
    return check_node(PodFacts.of(spec, dict(requests)), facts, used)


def filter_reasons(
    spec: JSON, node: JSON, used: Mapping[str, Any], requests: Mapping[str, Any]
) -> list[str]:
    """Why ``node`` cannot take the pod (empty when it fits); quantities in natural units."""
    verdict = filter_node(
        spec, to_amounts(requests), node, node_allocatable(node), to_amounts(used)
    )
    return list(verdict.reasons)


def node_score(
    spec: JSON,
    requests: Mapping[str, int],
    node: JSON,
    allocatable: Mapping[str, int],
    used: Mapping[str, int],
) -> tuple[int, int, int]:
    """``score_node`` on plain objects (``allocatable`` overrides the node's own)."""
    facts = dataclasses.replace(NodeFacts.of(node), allocatable=dict(allocatable))
    return score_node(PodFacts.of(spec, dict(requests)), facts, used)


def unschedulable_message(
    total_nodes: int, reasons: Counter[str], preemption: str | None = None
) -> str:
    """The FitError text: ``0/N nodes are available: <count reason, ...>. <preemption>``."""
    message = f"0/{total_nodes} nodes are available"
    histogram = sorted(f"{count} {reason}" for reason, count in reasons.items())
    message += ": " + ", ".join(histogram) + "." if histogram else "."
    if preemption:
        message += f" {preemption}"
    return message


def preemption_message(
    total_nodes: int, not_helpful: int, no_victims: int, still_short: Counter[str] | None = None
) -> str:
    """The PostFilter text when no node can be freed by evicting lower-priority pods.

    ``still_short`` holds the filter reasons of the nodes where the pod would not fit even with
    every lower-priority pod gone (kube-scheduler reports that filter status, e.g.
    ``Insufficient nvidia.com/gpu``, rather than "No preemption victims found").
    """
    counts: Counter[str] = Counter(still_short or {})
    if not_helpful:
        counts[PREEMPTION_NOT_HELPFUL] += not_helpful
    if no_victims:
        counts[NO_VICTIMS] += no_victims
    return "preemption: " + unschedulable_message(total_nodes, counts)


# -- preemption (kube-scheduler's DefaultPreemption plugin) -----------------------------------
# kube-scheduler adds MaxInt32 + 1 to every victim's priority before summing them, so that a
# node with fewer negative-priority victims beats one with more of them
_PRIORITY_OFFSET = 2**31


class PreemptionCandidate(Protocol):
    """A pod already on a node, as preemption sees it."""

    @property
    def priority(self) -> int: ...

    @property
    def requests(self) -> Mapping[str, int]: ...

    @property
    def start(self) -> tuple[int, str, int]:
        """Sortable start time: ``(0, status.startTime, order seen)``; ``(1, "", order)`` for
        a pod with no start time yet (kube-scheduler takes "now" for it: the latest)."""
        ...


P = TypeVar("P", bound=PreemptionCandidate)


def importance(pod: PreemptionCandidate) -> tuple[int, tuple[int, str, int]]:
    """Sort key, most important first: higher priority, then earlier start (MoreImportantPod)."""
    return (-pod.priority, pod.start)


def select_victims(
    requests: Mapping[str, int],
    allocatable: Mapping[str, int],
    used: Mapping[str, int],
    lower: Sequence[P],
) -> tuple[list[P], tuple[str, ...]]:
    """SelectVictimsOnNode: the minimal set of ``lower`` (lower-priority) pods to evict.

    ``used`` counts every pod on the node (terminating ones too) plus the pods nominated there
    with a priority at least the preemptor's. All ``lower`` pods are removed; if the pod then
    fits, they are given back one by one from the most important down, and those that no
    longer fit become the victims (so the lowest priority, then the most recently started,
    go first). Returns the victims, most important first, or no victims and the reasons why.
    """
    if not lower:
        return [], (NO_VICTIMS,)
    free = dict(used)
    for pod in lower:
        for name, amount in pod.requests.items():
            free[name] = free.get(name, 0) - amount
    short = insufficient_resources(requests, allocatable, free)
    if short:
        return [], tuple(short)
    victims: list[P] = []
    for pod in sorted(lower, key=importance):
        trial = dict(free)
        for name, amount in pod.requests.items():
            trial[name] = trial.get(name, 0) + amount
        if insufficient_resources(requests, allocatable, trial):
            victims.append(pod)
        else:
            free = trial
    return victims, ()


def pick_preemption_node(candidates: Sequence[tuple[str, Sequence[P]]]) -> int:
    """pickOneNodeForPreemption: the index of the candidate node to preempt on.

    In kube-scheduler's order: (PodDisruptionBudgets are not modelled) the lowest priority of
    the most important victim, the smallest sum of victim priorities (each offset by 2^31), the
    fewest victims, the latest start among the highest-priority victims; then the first
    candidate (the emulator passes them in node-name order, where kube-scheduler starts at a
    random node).
    """

    def highest(victims: Sequence[P]) -> int:
        return max(v.priority for v in victims)

    def latest_start(victims: Sequence[P]) -> tuple[int, str, int]:
        top = highest(victims)
        return min(v.start for v in victims if v.priority == top)

    scores: list[Callable[[Sequence[P]], Any]] = [
        lambda vs: -highest(vs),
        lambda vs: -sum(v.priority + _PRIORITY_OFFSET for v in vs),
        lambda vs: -len(vs),
        latest_start,
    ]
    remaining = list(range(len(candidates)))
    for score in scores:
        values = {i: score(candidates[i][1]) for i in remaining}
        best = max(values.values())
        remaining = [i for i in remaining if values[i] == best]
        if len(remaining) == 1:
            break
    return remaining[0]
