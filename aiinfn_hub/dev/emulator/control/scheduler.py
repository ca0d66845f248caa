"""The scheduler: binds Pending pods to nodes, reports why not, preempts lower priorities."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import Counter
from fractions import Fraction
from typing import Any

from ..deletion import delete_object
from ..resources import NODES, PODS
from ..store import Store, WatchEvent, now_rfc3339
from .events import EventRecorder
from .scheduling import (
    Resources,
    failure_message,
    filter_reasons,
    pod_requests,
    resource_reasons,
    score,
)

log = logging.getLogger(__name__)
JSON = dict[str, Any]
SCHEDULER_NAME = "default-scheduler"
RETRY_SECONDS = 5.0


def holds_resources(pod: JSON) -> bool:
    """Bound pods hold their requests until they finish or are removed."""
    return bool(pod.get("spec", {}).get("nodeName")) and pod.get("status", {}).get("phase") not in (
        "Succeeded",
        "Failed",
    )


def _key(pod: JSON) -> tuple[str, str]:
    return (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])


class Scheduler:
    """Event-driven: pending pods wait in a queue; any change that may free room wakes it."""

    def __init__(self, store: Store, events: EventRecorder) -> None:
        self.store = store
        self.events = events
        self._usage: dict[tuple[str, str], tuple[str, Resources, int]] = {}
        self._node_used: dict[str, Resources] = {}
        self._pending: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        for pod in self.store.iter(PODS):
            self._account(pod)
            if self._wants_scheduling(pod):
                self._pending.add(_key(pod))
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def used(self, node: str) -> Resources:
        return self._node_used.get(node, {})

    # -- bookkeeping -----------------------------------------------------------------------
    def on_event(self, event: WatchEvent) -> None:
        if event.rt.key == NODES.key:
            self._wake.set()
            return
        if event.rt.key != PODS.key:
            return
        key = _key(event.obj)
        if event.type == "DELETED":
            self._release(key)
            self._pending.discard(key)
            self._wake.set()
            return
        before = key in self._usage
        self._account(event.obj)
        if before and key not in self._usage:
            self._wake.set()  # a pod finished: room for others
        if self._wants_scheduling(event.obj):
            if key not in self._pending:
                self._pending.add(key)
                self._wake.set()
        else:
            self._pending.discard(key)

    @staticmethod
    def _wants_scheduling(pod: JSON) -> bool:
        spec = pod.get("spec", {})
        return (
            not spec.get("nodeName")
            and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and "deletionTimestamp" not in pod["metadata"]
            and pod.get("status", {}).get("phase", "Pending") == "Pending"
        )

    def _account(self, pod: JSON) -> None:
        key = _key(pod)
        if not holds_resources(pod):
            self._release(key)
            return
        node = pod["spec"]["nodeName"]
        generation = int(pod["metadata"].get("generation", 0))
        current = self._usage.get(key)
        if current is not None and current[0] == node:
            return
        self._release(key)
        requests = pod_requests(pod["spec"])
        self._usage[key] = (node, requests, generation)
        used = self._node_used.setdefault(node, {})
        for name, value in requests.items():
            used[name] = used.get(name, Fraction(0)) + value

    def _release(self, key: tuple[str, str]) -> None:
        current = self._usage.pop(key, None)
        if current is None:
            return
        used = self._node_used.get(current[0], {})
        for name, value in current[1].items():
            used[name] = used.get(name, Fraction(0)) - value

    # -- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS)
            except TimeoutError:
                if not self._pending:
                    continue
            self._wake.clear()
            try:
                self._schedule_pending()
            except Exception:  # keep scheduling whatever one pod did
                log.exception("scheduler cycle failed")
            await asyncio.sleep(0)

    def _schedule_pending(self) -> None:
        pods = [self.store.get(PODS, ns, name) for ns, name in self._pending]
        live = [p for p in pods if p is not None and self._wants_scheduling(p)]
        self._pending = {_key(p) for p in live}
        live.sort(
            key=lambda p: (
                -int(p["spec"].get("priority", 0)),
                p["metadata"].get("creationTimestamp", ""),
                _key(p),
            )
        )
        nodes = self.store.list(NODES)
        for pod in live:
            self._schedule_one(pod, nodes)

    def _schedule_one(self, pod: JSON, nodes: list[JSON]) -> None:
        spec = pod["spec"]
        requests = pod_requests(spec)
        reasons: Counter[str] = Counter()
        best: tuple[float, str] | None = None
        nominated = pod.get("status", {}).get("nominatedNodeName")
        for node in nodes:
            name = node["metadata"]["name"]
            why = filter_reasons(spec, node, self.used(name), requests)
            if why:
                reasons.update(why)
                continue
            value = score(spec, node, self.used(name), requests) + (1e6 if name == nominated else 0)
            if best is None or (value, _neg(name)) > (best[0], _neg(best[1])):
                best = (value, name)
        if best is not None:
            self._bind(pod, best[1], requests)
            return
        if nominated and self._victims_terminating(nominated):
            return  # wait for the preempted pods to go
        preemption = self._preempt(pod, nodes, requests)
        self._unschedulable(pod, failure_message(len(nodes), reasons, preemption))

    def _bind(self, pod: JSON, node: str, requests: Resources) -> None:
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node
        status = new.setdefault("status", {})
        status.pop("nominatedNodeName", None)
        _set_condition(status, {"type": "PodScheduled", "status": "True"})
        self.store.update(PODS, new)
        self._pending.discard(_key(pod))
        ns, name = _key(pod)
        self.events.record(
            new,
            PODS,
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {node}",
            component=SCHEDULER_NAME,
        )

    def _unschedulable(self, pod: JSON, message: str) -> None:
        current = self.store.get(PODS, *_key(pod)) or pod
        new = copy.deepcopy(current)
        status = new.setdefault("status", {})
        _set_condition(
            status,
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            },
        )
        self.store.update(PODS, new)
        self.events.record(
            new, PODS, "FailedScheduling", message, type_="Warning", component=SCHEDULER_NAME
        )

    # -- preemption ------------------------------------------------------------------------
    def _victims_terminating(self, node: str) -> bool:
        return any(
            "deletionTimestamp" in p["metadata"]
            for p in self.store.iter(PODS)
            if p.get("spec", {}).get("nodeName") == node and holds_resources(p)
        )

    def _preempt(self, pod: JSON, nodes: list[JSON], requests: Resources) -> str:
        spec = pod["spec"]
        total = len(nodes)
        if spec.get("preemptionPolicy") == "Never":
            return (
                f"0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
            )
        priority = int(spec.get("priority", 0))
        by_node: dict[str, list[JSON]] = {}
        for other in self.store.iter(PODS):
            node = other.get("spec", {}).get("nodeName")
            if node and holds_resources(other) and "deletionTimestamp" not in other["metadata"]:
                by_node.setdefault(node, []).append(other)
        candidates: list[tuple[int, int, str, list[JSON]]] = []
        not_helpful = 0
        for node in nodes:
            name = node["metadata"]["name"]
            # only resource shortage can be fixed by evicting pods
            reasons = filter_reasons(spec, node, {}, requests)
            if reasons:
                not_helpful += 1
                continue
            lower = sorted(
                (p for p in by_node.get(name, []) if int(p["spec"].get("priority", 0)) < priority),
                key=lambda p: int(p["spec"].get("priority", 0)),
            )
            used = dict(self.used(name))
            victims: list[JSON] = []
            for victim in lower:
                if not resource_reasons(node, used, requests):
                    break
                victims.append(victim)
                for res, value in pod_requests(victim["spec"]).items():
                    used[res] = used.get(res, Fraction(0)) - value
            if resource_reasons(node, used, requests):
                not_helpful += 1
                continue
            top = max((int(v["spec"].get("priority", 0)) for v in victims), default=0)
            candidates.append((len(victims), top, name, victims))
        if not candidates:
            return (
                f"0/{total} nodes are available: {not_helpful} Preemption is not helpful for "
                "scheduling."
            )
        candidates.sort(key=lambda c: (c[1], c[0], c[2]))
        _, _, node_name, victims = candidates[0]
        for victim in victims:
            self._evict(victim, pod, node_name)
        current = self.store.get(PODS, *_key(pod)) or pod
        new = copy.deepcopy(current)
        new.setdefault("status", {})["nominatedNodeName"] = node_name
        self.store.update(PODS, new)
        return f"0/{total} nodes are available: {len(victims)} pod(s) preempted on {node_name}."

    def _evict(self, victim: JSON, preemptor: JSON, node: str) -> None:
        new = copy.deepcopy(victim)
        _set_condition(
            new.setdefault("status", {}),
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": f"{SCHEDULER_NAME}: preempting to accommodate a higher priority pod",
            },
        )
        updated = self.store.update(PODS, new)
        self.events.record(
            updated,
            PODS,
            "Preempted",
            f"Preempted by pod {preemptor['metadata']['uid']} on node {node}",
            component=SCHEDULER_NAME,
        )
        ns, name = _key(victim)
        delete_object(self.store, PODS, ns, name)


def _neg(name: str) -> tuple[int, ...]:
    """Tie-break on the node name, alphabetically first wins."""
    return tuple(-ord(c) for c in name)


def _set_condition(status: JSON, condition: JSON) -> None:
    conditions = status.setdefault("conditions", [])
    for existing in conditions:
        if existing["type"] == condition["type"]:
            if existing.get("status") != condition["status"]:
                existing["lastTransitionTime"] = now_rfc3339()
            existing.update(condition)
            return
    conditions.append({"lastProbeTime": None, "lastTransitionTime": now_rfc3339(), **condition})
