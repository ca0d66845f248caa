"""The scheduler: binds Pending pods of ``default-scheduler`` to nodes, preempting when allowed.

It keeps, per node, the sum of the requests of the pods bound there that still hold resources
(not Succeeded or Failed; pods being deleted still hold theirs), updated from the store's change
events, so placing one pod costs one pass over the nodes and not over all pods. Like
kube-scheduler it stops searching a large cluster once it has found enough feasible nodes
(``percentageOfNodesToScore``), starting each search where the previous one stopped.

Pods that fit nowhere are retried when something frees room or changes a node, and otherwise
after a backoff (1 s doubling to 60 s).

Preemption is kube-scheduler's DefaultPreemption PostFilter (v1.33), on the nodes where
evicting pods could help: every pod of lower priority on a node is a potential victim
(terminating ones too); the victims are the fewest left over once they are given back from
the most important down (``scheduling.select_victims``), and the node is chosen by
``scheduling.pick_preemption_node``. A pod with ``preemptionPolicy: Never`` never preempts; a
pod whose nominated node still has a lower-priority pod terminating by preemption waits.
Each victim gets the ``DisruptionTarget`` condition (reason ``PreemptionByScheduler``, message
``"<scheduler>: preempting to accommodate a higher priority pod"``), a graceful delete, and a
``Preempted`` Event (``"Preempted by pod <preemptor uid> on node <node>"``, action
``Preempting``, the preemptor as ``related``); lower-priority pods nominated on that node lose
their nomination; the preemptor gets ``status.nominatedNodeName`` and is bound there once the
victims are gone. As in v1.33 (no ClearingNominatedNodeNameAfterBinding), binding leaves
``nominatedNodeName`` in place; a failed preemption clears it. PodDisruptionBudgets are not
modelled.
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
PREEMPTION_REASON = "PreemptionByScheduler"


@dataclass
class BoundPod:
    """A pod holding resources on a node, as preemption needs to see it."""

    key: PodKey
    uid: str
    priority: int
    requests: Resources
    deleting: bool
    order: int
    # status.startTime (whole seconds) and when this scheduler first saw it, to order pods
    # that started in the same second
    started: str | None = None
    start_order: int = 0
    # terminating because the scheduler preempted it (DisruptionTarget PreemptionByScheduler)
    preempted: bool = False

    @property
    def start(self) -> tuple[int, str, int]:
        if self.started:
            return (0, self.started, self.start_order)
        return (1, "", self.order)  # no start time yet: "now", the latest of all

    def refresh(self, pod: JSON, counter: itertools.count[int]) -> None:
        """Take what may change while the pod stays bound: deletion, start time, conditions."""
        self.deleting = "deletionTimestamp" in pod["metadata"]
        self.preempted = _terminating_by_preemption(pod)
        started = pod.get("status", {}).get("startTime")
        if started and started != self.started:
            self.started = str(started)
            self.start_order = next(counter)


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


def _terminating_by_preemption(pod: JSON) -> bool:
    """podTerminatingByPreemption: being deleted after the scheduler preempted it."""
    if "deletionTimestamp" not in pod["metadata"]:
        return False
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "DisruptionTarget":
            return bool(
                condition.get("status") == "True" and condition.get("reason") == PREEMPTION_REASON
            )
    return False


def _set_condition(status: JSON, condition: JSON) -> bool:
    """Replace a pod condition, keeping lastTransitionTime when its status does not change;
    False when it was there already with the same status, reason and message."""
    conditions = status.setdefault("conditions", [])
    for i, existing in enumerate(conditions):
        if existing.get("type") == condition["type"]:
            same = all(existing.get(k) == condition.get(k) for k in ("status", "reason", "message"))
            if existing.get("status") == condition["status"]:
                condition["lastTransitionTime"] = existing.get("lastTransitionTime")
            conditions[i] = condition
            return not same
    conditions.append(condition)
    return True


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
        current = self._placement.get(key)
        if current == node:
            self._usage[node].pods[key].refresh(pod, self._counter)
            return
        entry = BoundPod(
            key=key,
            uid=pod["metadata"].get("uid", ""),
            priority=int(pod["spec"].get("priority") or 0),
            requests=self._pod_requests(pod),
            deleting="deletionTimestamp" in pod["metadata"],
            order=next(self._counter),
        )
        entry.refresh(pod, self._counter)
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
        node, victims, post_filter, clear = self._plan_preemption(pod, requests, priority, verdicts)
        message = scheduling.unschedulable_message(total, reasons, post_filter)
        if node is not None:
            self._preempt(pod, node, victims, priority)
        self._report_unschedulable(pod, message, nominate=node if node else ("" if clear else None))

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
        # the binding leaves status.nominatedNodeName as it is (v1.33)
        status = bound.setdefault("status", {})
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
        """FailedScheduling; ``nominate`` sets (a node) or clears ("") the nominated node."""
        new = copy.deepcopy(pod)
        status = new.setdefault("status", {})
        if nominate:
            status["nominatedNodeName"] = nominate
        elif nominate == "":
            status.pop("nominatedNodeName", None)
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
    ) -> tuple[str | None, list[BoundPod], str, bool]:
        """DefaultPreemption's PostFilter: the node and victims, or why not.

        Returns the node, its victims (most important first), the PostFilter message for the
        FitError, and whether the pod's nominated node must be cleared (a preemption that
        found no candidate clears it; a pod not eligible to preempt keeps it).
        """
        spec = pod["spec"]
        if spec.get("preemptionPolicy") == "Never":
            return None, [], "preemption: not eligible due to preemptionPolicy=Never.", False
        key = pod_key(pod)
        nominated = pod.get("status", {}).get("nominatedNodeName")
        usage = self._usage.get(nominated) if nominated else None
        unresolvable = nominated in verdicts and not verdicts[nominated].resolvable
        if (
            usage is not None
            and not unresolvable
            and any(p.preempted and p.priority < priority for p in usage.pods.values())
        ):
            return (
                None,
                [],
                "preemption: not eligible due to a terminating pod on the nominated node.",
                False,
            )
        candidates: list[tuple[str, list[BoundPod]]] = []
        not_helpful = no_victims = 0
        still_short: Counter[str] = Counter()
        for node in self._node_names:
            verdict = verdicts.get(node)
            if verdict is None:
                continue
            if not verdict.resolvable:
                not_helpful += 1
                continue
            victims, why = self._victims_on(key, node, requests, priority)
            if victims:
                candidates.append((node, victims))
            elif why == (scheduling.NO_VICTIMS,):
                no_victims += 1
            else:
                still_short.update(why)
        if not candidates:
            total = len(self._node_names)
            message = scheduling.preemption_message(total, not_helpful, no_victims, still_short)
            return None, [], message, True
        node, victims = candidates[scheduling.pick_preemption_node(candidates)]
        return node, victims, "", False

    def _victims_on(
        self, key: PodKey, node: str, requests: Resources, priority: int
    ) -> tuple[list[BoundPod], tuple[str, ...]]:
        """SelectVictimsOnNode on ``node``: the victims, or none and the reasons why."""
        lower = [p for p in self._usage[node].pods.values() if p.priority < priority]
        return scheduling.select_victims(
            requests, self._nodes[node].allocatable, self._used(key, node, priority), lower
        )

    def _preempt(self, preemptor: JSON, node: str, victims: list[BoundPod], priority: int) -> None:
        """Mark, delete and report each victim; lower-priority nominations on ``node`` go."""
        uid = preemptor["metadata"].get("uid", "")
        scheduler_name = preemptor["spec"].get("schedulerName", SCHEDULER_NAME)
        for victim in victims:
            pod = self._store.get(PODS, *victim.key)
            if pod is None or pod["metadata"].get("uid") != victim.uid:
                continue
            marked = copy.deepcopy(pod)
            changed = _set_condition(
                marked.setdefault("status", {}),
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": PREEMPTION_REASON,
                    "message": f"{scheduler_name}: preempting to accommodate a higher priority pod",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(),
                },
            )
            if changed:
                pod = self._store.update(PODS, marked)
            try:
                delete_object(self._store, PODS, victim.key[0], victim.key[1])
            except ApiError:
                continue  # already gone: kube-scheduler records no event then
            self._events.record(
                pod,
                "Preempted",
                f"Preempted by pod {uid} on node {node}",
                component=SCHEDULER_NAME,
                instance=SCHEDULER_NAME,
                action="Preempting",
                related=preemptor,
            )
        self._clear_lower_nominations(pod_key(preemptor), node, priority)

    def _clear_lower_nominations(self, preemptor: PodKey, node: str, priority: int) -> None:
        """Pods of lower priority nominated on ``node`` may no longer fit there: their
        nomination is cleared and they are tried again (getLowerPriorityNominatedPods)."""
        for key in sorted(self._nominated_on.get(node, ())):
            if key == preemptor or self._nominated[key].priority >= priority:
                continue
            pod = self._store.get(PODS, *key)
            if pod is None:
                continue
            cleared = copy.deepcopy(pod)
            cleared.setdefault("status", {}).pop("nominatedNodeName", None)
            self._store.update(PODS, cleared)
            self._enqueue(key)


def _same_meta(old: JSON, new: JSON) -> bool:
    a, b = old["metadata"], new["metadata"]
    return all(a.get(k) == b.get(k) for k in ("labels", "annotations", "deletionTimestamp"))
