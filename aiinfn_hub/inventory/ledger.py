"""What pods hold on each node, kept up to date one pod at a time (pure, no I/O).

:func:`~aiinfn_hub.inventory.availability.node_usage` recounts every pod; with thousands of pods
and a cluster that changes all day, that recount is most of a form's cost. The ledger holds the
same sums, changed by the difference of one pod per watch event: a pod's contribution (node,
priority, requests, or nothing) is computed when it arrives and when it changes — it is bound,
finishes, starts terminating, is deleted — and only its old contribution is taken off and its
new one added.

The split between units any pod holds and units preemptible pods hold depends on the
notebooks' priority, which the caller gives with each question. So the ledger keeps, per node,
one sum per priority value (a cluster has a handful: notebooks, system pods, batch jobs) and
their running totals in priority order, redone for the one node an event touches; any
threshold is then one lookup per node. Amounts are exact (``Fraction``), so taking off what was
added leaves exactly what a recount gives.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ..kubemodel.pod_resources import Resources, holds_resources, pod_priority, pod_requests
from .availability import Usage

JSON = dict[str, Any]
ZERO = Fraction(0)


class Contribution:
    """What one pod holds: its node, its priority and its effective requests."""

    __slots__ = ("node", "priority", "requests")

    def __init__(self, node: str, priority: int, requests: Resources) -> None:
        self.node = node
        self.priority = priority
        self.requests = requests

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Contribution) and (self.node, self.priority, self.requests) == (
            other.node,
            other.priority,
            other.requests,
        )

    __hash__ = None  # type: ignore[assignment]


def pod_contribution(pod: JSON | None) -> Contribution | None:
    """What ``pod`` holds on its node as :func:`node_usage` counts it (None: nothing)."""
    if pod is None or not holds_resources(pod):
        return None
    spec = pod["spec"]
    return Contribution(str(spec["nodeName"]), pod_priority(pod), pod_requests(spec))


class _Sum:
    """The requests of the pods of one priority on one node, and how many they are."""

    __slots__ = ("pods", "requests")

    def __init__(self) -> None:
        self.pods = 0
        self.requests: Resources = {}


class _Node:
    """One node's sums per priority, and their running totals in priority order.

    ``below[i]`` is what the pods of priority lower than ``priorities[i]`` hold (``below[-1]``:
    all of them). The totals are new dicts at every change, never changed afterwards, so a
    :class:`Usage` snapshot shares them instead of copying.
    """

    __slots__ = ("below", "priorities", "sums")

    def __init__(self) -> None:
        self.sums: dict[int, _Sum] = {}
        self.priorities: list[int] = []
        self.below: list[Resources] = [{}]

    def refresh(self) -> None:
        self.priorities = sorted(self.sums)
        running: Resources = {}
        below = [running]
        for priority in self.priorities:
            running = dict(running)
            _add(running, self.sums[priority].requests)
            below.append(running)
        self.below = below


def _add(into: Resources, more: Resources) -> None:
    for name, amount in more.items():
        into[name] = into.get(name, ZERO) + amount


def _take(into: Resources, less: Resources) -> None:
    for name, amount in less.items():
        value = into.get(name, ZERO) - amount
        if value:
            into[name] = value
        else:  # what remains is what a recount finds: no zero left by a departed pod
            into.pop(name, None)


class UsageLedger:
    """Requests held per node and priority, from the pods it is told about by key.

    ``rebuild`` starts again from a whole set of pods (a relist); ``update`` applies one pod's
    new state (None when it is gone); ``usage`` answers like ``node_usage`` for any threshold,
    at the cost of a lookup per node.
    """

    def __init__(self) -> None:
        self._pods: dict[str, Contribution] = {}
        self._nodes: dict[str, _Node] = {}

    def __len__(self) -> int:
        """How many pods hold resources."""
        return len(self._pods)

    def rebuild(self, pods: Mapping[str, JSON]) -> None:
        """Forget everything and count ``pods`` (cache key -> pod)."""
        self._pods, self._nodes = {}, {}
        for key, pod in pods.items():
            part = pod_contribution(pod)
            if part is not None:
                self._pods[key] = part
                self._count(part, +1)
        for node in self._nodes.values():
            node.refresh()

    def update(self, key: str, pod: JSON | None) -> bool:
        """The pod under ``key`` is now ``pod`` (None: deleted). True when the sums changed."""
        new = pod_contribution(pod)
        old = self._pods.get(key)
        if old == new:
            return False
        if old is not None:
            del self._pods[key]
            self._refresh(self._count(old, -1))
        if new is not None:
            self._pods[key] = new
            self._refresh(self._count(new, +1))
        return True

    def _count(self, part: Contribution, sign: int) -> str:
        node = self._nodes.get(part.node)
        if node is None:
            node = self._nodes[part.node] = _Node()
        bucket = node.sums.get(part.priority)
        if bucket is None:
            bucket = node.sums[part.priority] = _Sum()
        bucket.pods += sign
        if bucket.pods == 0:  # the last pod of this priority left: drop its sums, exactly
            del node.sums[part.priority]
        elif sign > 0:
            _add(bucket.requests, part.requests)
        else:
            _take(bucket.requests, part.requests)
        return part.node

    def _refresh(self, name: str) -> None:
        node = self._nodes[name]
        if node.sums:
            node.refresh()
        else:
            del self._nodes[name]

    def usage(self, notebook_priority: int | None = None) -> Usage:
        """A snapshot, as ``node_usage(pods, notebook_priority)`` would count it (its dicts
        are shared with later snapshots: read them, never change them)."""
        held = {name: node.below[-1] for name, node in self._nodes.items()}
        preemptible: dict[str, Resources] = {}
        if notebook_priority is not None:
            for name, node in self._nodes.items():
                lower = bisect_left(node.priorities, notebook_priority)
                if lower:
                    preemptible[name] = node.below[lower]
        return Usage(held, preemptible)
