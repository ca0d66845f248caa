"""The scheduler: binds Pending pods of ``default-scheduler`` to nodes, preempting when allowed.

It keeps, per node, the sum of the requests of the pods bound there that still hold resources
(not Succeeded or Failed; pods being deleted still hold theirs), updated from the store's change
events, so placing one pod costs one pass over the nodes and not over all pods. Like
kube-scheduler it stops searching a large cluster once it has found enough feasible nodes
(``percentageOfNodesToScore``), starting each search where the previous one stopped.

Pods that fit nowhere are retried when something frees room or changes a node, and otherwise
after a backoff (1 s doubling to 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field

from ..deletion import delete_object
from ..errors import ApiError
from ..resources import NODES, PODS
from ..store import JSON, Store, WatchEvent, now_rfc3339
from . import scheduling
from .events import EventRecorder
from .scheduling import NodeFacts, NodeVerdict, PodFacts, Resources

log = logging.getLogger(__name__)
PodKey = tuple[str, str]
SCHEDULER_NAME = "default-scheduler"
_INITIAL_BACKOFF = 1.0
_MAX_BACKOFF = 60.0
_NO_NODES = "no nodes available to schedule pods"


@dataclass
class BoundPod:
    """A pod holding resources on a node, as preemption needs to see it."""

    key: PodKey
    uid: str
    priority: int
    requests: Resources
    deleting: bool
    order: int


@dataclass
class NodeUsage:
    """What the pods bound to one node request, kept up to date from pod events."""

    used: Resources = field(default_factory=dict)
    pods: dict[PodKey, BoundPod] = field(default_factory=dict)

    def add(self, pod: BoundPod) -> None:
        self.pods[pod.key] = pod
        for name, amount in pod.requests.items():
            self.used[name] = self.used.get(name, 0) + amount

    def remove(self, key: PodKey) -> None:
        pod = self.pods.pop(key, None)
        if pod is not None:
            for name, amount in pod.requests.items():
                self.used[name] = self.used.get(name, 0) - amount


@dataclass
class Nomination:
    node: str
    priority: int
    requests: Resources


def num_feasible_nodes_to_find(total: int) -> int:
    """kube-scheduler's adaptive sample size: all nodes up to 100, then a shrinking share."""
    if total < 100:
        return total
    percentage = max(50 - total // 125, 5)
    return max(total * percentage // 100, 100)


def pod_key(pod: JSON) -> PodKey:
    return (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])


def _holds_resources(pod: JSON) -> bool:
    return bool(pod.get("spec", {}).get("nodeName")) and pod.get("status", {}).get("phase") not in (
        "Succeeded",
        "Failed",
    )


def _wants_scheduling(pod: JSON) -> bool:
    spec = pod.get("spec", {})
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
        and "deletionTimestamp" not in pod["metadata"]
        and pod.get("status", {}).get("phase", "Pending") == "Pending"
    )


def _set_condition(status: JSON, condition: JSON) -> None:
    """Replace a pod condition, keeping lastTransitionTime when its status does not change."""
    conditions = status.setdefault("conditions", [])
    for i, existing in enumerate(conditions):
        if existing.get("type") == condition["type"]:
            if existing.get("status") == condition["status"]:
                condition["lastTransitionTime"] = existing.get("lastTransitionTime")
            conditions[i] = condition
            return
    conditions.append(condition)


class Scheduler:
    """Places pods; ``observe`` is fed every store change and only updates caches and queues."""

    def __init__(self, store: Store, events: EventRecorder) -> None:
        self._store = store
        self._events = events
        self._nodes: dict[str, NodeFacts] = {}
        self._node_names: list[str] = []
        # position of each node in name order: equal scores go to the first name
        self._rank: dict[str, int] = {}
        self._usage: dict[str, NodeUsage] = {}
        self._placement: dict[PodKey, str] = {}
        self._requests: dict[str, Resources] = {}
        self._nominated: dict[PodKey, Nomination] = {}
        self._nominated_on: dict[str, set[PodKey]] = {}
        self._active: set[PodKey] = set()
        self._order: dict[PodKey, int] = {}
        self._unschedulable: dict[PodKey, asyncio.TimerHandle | None] = {}
        self._attempts: dict[PodKey, int] = {}
        self._counter = itertools.count()
        self._next_start = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Load what the store holds already and start the scheduling loop."""
        self._wakeup = asyncio.Event()
        for node in self._store.iter(NODES):
            self._node_changed(node)
        for pod in self._store.iter(PODS):
            self._pod_changed(None, pod)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        for handle in self._unschedulable.values():
            if handle is not None:
                handle.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- change events (synchronous: caches and queues only) --------------------------------
    def observe(self, event: WatchEvent) -> None:
        if event.rt.key == PODS.key:
            if event.type == "DELETED":
                self._pod_deleted(event.obj)
            else:
                self._pod_changed(event.old, event.obj)
        elif event.rt.key == NODES.key:
            if event.type == "DELETED":
                self._node_deleted(event.obj["metadata"]["name"])
            else:
                self._node_changed(event.obj)

    def _node_changed(self, node: JSON) -> None:
        name = node["metadata"]["name"]
        is_new = name not in self._nodes
        self._nodes[name] = NodeFacts.of(node)
        self._usage.setdefault(name, NodeUsage())
        if is_new:
            self._sort_nodes()
        self._wake_unschedulable()

    def _node_deleted(self, name: str) -> None:
        self._nodes.pop(name, None)
        self._sort_nodes()

    def _sort_nodes(self) -> None:
        self._node_names = sorted(self._nodes)
        self._rank = {name: i for i, name in enumerate(self._node_names)}

    def _pod_changed(self, old: JSON | None, pod: JSON) -> None:
        key = pod_key(pod)
        self._account(key, pod)
        spec = pod.get("spec", {})
        nominated = pod.get("status", {}).get("nominatedNodeName")
        if nominated and not spec.get("nodeName"):
            self._nominate(
                key, Nomination(nominated, int(spec.get("priority") or 0), self._pod_requests(pod))
            )
        else:
            self._nominate(key, None)
        if not _wants_scheduling(pod):
            self._forget(key)
            return
        # our own status writes (conditions, nomination) must not retrigger an attempt
        if old is not None and old.get("spec") == spec and _same_meta(old, pod):
            return
        self._enqueue(key)

    def _pod_deleted(self, pod: JSON) -> None:
        key = pod_key(pod)
        released = key in self._placement
        self._release(key)
        self._nominate(key, None)
        self._requests.pop(pod["metadata"].get("uid", ""), None)
        self._forget(key)
        if released:
            self._wake_unschedulable()

    def _account(self, key: PodKey, pod: JSON) -> None:
        node = pod.get("spec", {}).get("nodeName")
        if not _holds_resources(pod):
            if self._release(key):
                self._wake_unschedulable()
            return
        assert node
        entry = BoundPod(
            key=key,
            uid=pod["metadata"].get("uid", ""),
            priority=int(pod["spec"].get("priority") or 0),
            requests=self._pod_requests(pod),
            deleting="deletionTimestamp" in pod["metadata"],
            order=next(self._counter),
        )
        current = self._placement.get(key)
        if current == node:
            previous = self._usage[node].pods[key]
            previous.deleting = entry.deleting
            return
        self._release(key)
        self._placement[key] = node
        self._usage.setdefault(node, NodeUsage()).add(entry)

    def _nominate(self, key: PodKey, nomination: Nomination | None) -> None:
        previous = self._nominated.pop(key, None)
        if previous is not None:
            self._nominated_on[previous.node].discard(key)
            if not self._nominated_on[previous.node]:
                del self._nominated_on[previous.node]
        if nomination is not None:
            self._nominated[key] = nomination
            self._nominated_on.setdefault(nomination.node, set()).add(key)

    def _release(self, key: PodKey) -> bool:
        node = self._placement.pop(key, None)
        if node is None:
            return False
        self._usage[node].remove(key)
        return True

    def _pod_requests(self, pod: JSON) -> Resources:
        uid = pod["metadata"].get("uid", "")
        cached = self._requests.get(uid)
        if cached is None:
            cached = scheduling.to_amounts(scheduling.pod_requests(pod.get("spec", {})))
            self._requests[uid] = cached
        return cached

    # -- queues ----------------------------------------------------------------------------
    def _enqueue(self, key: PodKey) -> None:
        handle = self._unschedulable.pop(key, None)
        if handle is not None:
            handle.cancel()
        self._order.setdefault(key, next(self._counter))
        self._active.add(key)
        if self._wakeup is not None:
            self._wakeup.set()

    def _forget(self, key: PodKey) -> None:
        self._active.discard(key)
        self._order.pop(key, None)
        self._attempts.pop(key, None)
        handle = self._unschedulable.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _wake_unschedulable(self) -> None:
        """Something freed room or changed a node: try every waiting pod again now."""
        for key in list(self._unschedulable):
            self._enqueue(key)

    def _park(self, key: PodKey) -> None:
        attempts = self._attempts.get(key, 0)
        self._attempts[key] = attempts + 1
        delay = min(_INITIAL_BACKOFF * 2**attempts, _MAX_BACKOFF)
        loop = asyncio.get_running_loop()
        self._unschedulable[key] = loop.call_later(delay, self._retry, key)

    def _retry(self, key: PodKey) -> None:
        if key in self._unschedulable:
            self._unschedulable[key] = None
            self._enqueue(key)

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch = sorted(self._active, key=self._queue_order)
            self._active.clear()
            for i, key in enumerate(batch):
                try:
                    self.schedule_one(key)
                except Exception:
                    log.exception("scheduling %s/%s failed", *key)
                    self._park(key)
                if i % 50 == 49:
                    await asyncio.sleep(0)

    def _queue_order(self, key: PodKey) -> tuple[int, int]:
        pod = self._store.get(PODS, key[0], key[1])
        priority = int((pod or {}).get("spec", {}).get("priority") or 0)
        return (-priority, self._order.get(key, 0))

    # -- one scheduling cycle --------------------------------------------------------------
    def schedule_one(self, key: PodKey) -> None:
        """Try to place one pod now: bind it, nominate it after preempting, or report why not."""
        pod = self._store.get(PODS, *key)
        if pod is None or not _wants_scheduling(pod):
            self._forget(key)
            return
        spec = pod["spec"]
        requests = self._pod_requests(pod)
        priority = int(spec.get("priority") or 0)
        facts = PodFacts.of(spec, requests)
        if not self._node_names:
            self._report_unschedulable(pod, _NO_NODES)
            return
        nominated = pod.get("status", {}).get("nominatedNodeName")
        if nominated in self._nodes and self._verdict(key, facts, priority, nominated).fits:
            self._bind(pod, nominated)
            return
        feasible, verdicts = self._find_feasible(key, facts, priority)
        if feasible:
            best = max(
                feasible,
                key=lambda n: (
                    scheduling.score_node(facts, self._nodes[n], self._used(key, n, priority)),
                    -self._rank[n],
                ),
            )
            self._bind(pod, best)
            return
        total = len(self._node_names)
        reasons: Counter[str] = Counter()
        for verdict in verdicts.values():
            reasons.update(verdict.reasons)
        node, victims, post_filter = self._plan_preemption(pod, requests, priority, verdicts)
        message = scheduling.unschedulable_message(total, reasons, post_filter)
        if node is not None:
            self._preempt(pod, node, victims)
        self._report_unschedulable(pod, message, nominate=node)

    def _used(self, key: PodKey, node: str, priority: int) -> Resources:
        """Requests on ``node``, plus those of equal or higher priority pods nominated there."""
        usage = self._usage.get(node)
        used = usage.used if usage is not None else {}
        nominated = self._nominated_on.get(node)
        if not nominated:
            return used
        extra = [
            self._nominated[k]
            for k in nominated
            if k != key and self._nominated[k].priority >= priority
        ]
        if not extra:
            return used
        used = dict(used)
        for nomination in extra:
            for name, amount in nomination.requests.items():
                used[name] = used.get(name, 0) + amount
        return used

    def _verdict(self, key: PodKey, facts: PodFacts, priority: int, node: str) -> NodeVerdict:
        return scheduling.check_node(facts, self._nodes[node], self._used(key, node, priority))

    def _find_feasible(
        self, key: PodKey, facts: PodFacts, priority: int
    ) -> tuple[list[str], dict[str, NodeVerdict]]:
        """Filter nodes round-robin until enough fit (all of them when none does)."""
        names = self._node_names
        total = len(names)
        wanted = num_feasible_nodes_to_find(total)
        start = self._next_start % total
        feasible: list[str] = []
        verdicts: dict[str, NodeVerdict] = {}
        processed = 0
        for offset in range(total):
            name = names[(start + offset) % total]
            processed += 1
            verdict = self._verdict(key, facts, priority, name)
            if verdict.fits:
                feasible.append(name)
                if len(feasible) >= wanted:
                    break
            else:
                verdicts[name] = verdict
        self._next_start = (start + processed) % total
        return feasible, verdicts

    def _bind(self, pod: JSON, node: str) -> None:
        bound = copy.deepcopy(pod)
        bound["spec"]["nodeName"] = node
        status = bound.setdefault("status", {})
        status.pop("nominatedNodeName", None)
        _set_condition(
            status,
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            },
        )
        stored = self._store.update(PODS, bound)
        self._forget(pod_key(pod))
        ns, name = pod_key(pod)
        self._events.record(
            stored,
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {node}",
            component=SCHEDULER_NAME,
            instance=SCHEDULER_NAME,
        )

    def _report_unschedulable(self, pod: JSON, message: str, nominate: str | None = None) -> None:
        new = copy.deepcopy(pod)
        status = new.setdefault("status", {})
        if nominate is not None:
            status["nominatedNodeName"] = nominate
        _set_condition(
            status,
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            },
        )
        stored = self._store.update(PODS, new)
        self._events.record(
            stored,
            "FailedScheduling",
            message,
            component=SCHEDULER_NAME,
            event_type="Warning",
            instance=SCHEDULER_NAME,
        )
        self._park(pod_key(pod))

    # -- preemption ------------------------------------------------------------------------
    def _plan_preemption(
        self, pod: JSON, requests: Resources, priority: int, verdicts: dict[str, NodeVerdict]
    ) -> tuple[str | None, list[BoundPod], str]:
        """Pick the node where evicting the fewest, lowest-priority pods lets ``pod`` fit."""
        spec = pod["spec"]
        if spec.get("preemptionPolicy") == "Never":
            return None, [], "preemption: not eligible due to preemptionPolicy=Never."
        key = pod_key(pod)
        nominated = pod.get("status", {}).get("nominatedNodeName")
        if nominated in self._usage and any(
            p.deleting and p.priority < priority for p in self._usage[nominated].pods.values()
        ):
            return (
                None,
                [],
                "preemption: not eligible due to a terminating pod on the nominated node.",
            )
        candidates: list[tuple[tuple[int, int, int, str], str, list[BoundPod]]] = []
        not_helpful = no_victims = 0
        for node, verdict in verdicts.items():
            if not verdict.resolvable:
                not_helpful += 1
                continue
            victims = self._victims_on(key, node, requests, priority)
            if not victims:
                no_victims += 1
                continue
            rank = (
                max(v.priority for v in victims),
                sum(v.priority for v in victims),
                len(victims),
                node,
            )
            candidates.append((rank, node, victims))
        if not candidates:
            total = len(self._node_names)
            return None, [], scheduling.preemption_message(total, not_helpful, no_victims)
        _, node, victims = min(candidates, key=lambda c: c[0])
        return node, victims, ""

    def _victims_on(
        self, key: PodKey, node: str, requests: Resources, priority: int
    ) -> list[BoundPod]:
        """The smallest set of lower-priority pods whose eviction makes room (may be empty)."""
        allocatable = self._nodes[node].allocatable
        used = dict(self._used(key, node, priority))
        lower = [
            p for p in self._usage[node].pods.values() if p.priority < priority and not p.deleting
        ]
        for victim in lower:
            for name, amount in victim.requests.items():
                used[name] -= amount
        if scheduling.insufficient_resources(requests, allocatable, used):
            return []
        # give back the most important pods first; whatever no longer fits is evicted
        victims = []
        for candidate in sorted(lower, key=lambda p: (-p.priority, p.order)):
            trial = dict(used)
            for name, amount in candidate.requests.items():
                trial[name] = trial.get(name, 0) + amount
            if scheduling.insufficient_resources(requests, allocatable, trial):
                victims.append(candidate)
            else:
                used = trial
        return victims

    def _preempt(self, preemptor: JSON, node: str, victims: list[BoundPod]) -> None:
        uid = preemptor["metadata"].get("uid", "")
        scheduler_name = preemptor["spec"].get("schedulerName", SCHEDULER_NAME)
        for victim in victims:
            pod = self._store.get(PODS, *victim.key)
            if pod is None or pod["metadata"].get("uid") != victim.uid:
                continue
            marked = copy.deepcopy(pod)
            _set_condition(
                marked.setdefault("status", {}),
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": f"{scheduler_name}: preempting to accommodate a higher priority pod",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(),
                },
            )
            stored = self._store.update(PODS, marked)
            self._events.record(
                stored,
                "Preempted",
                f"Preempted by pod {uid} on node {node}",
                component=SCHEDULER_NAME,
                instance=SCHEDULER_NAME,
            )
            with contextlib.suppress(ApiError):
                delete_object(self._store, PODS, victim.key[0], victim.key[1])


def _same_meta(old: JSON, new: JSON) -> bool:
    a, b = old["metadata"], new["metadata"]
    return all(a.get(k) == b.get(k) for k in ("labels", "annotations", "deletionTimestamp"))
