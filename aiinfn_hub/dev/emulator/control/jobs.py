"""The Job controller: pods from a Job's template, counted until it completes or fails.

Covers what our services use: ``parallelism``, ``completions`` (NonIndexed and Indexed),
``suspend`` (Kueue suspends and resumes Jobs), ``backoffLimit``, ``activeDeadlineSeconds`` and
``ttlSecondsAfterFinished``, with the conditions and Events the real controller writes.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from dataclasses import dataclass, field
from typing import Any

from ..api.admission import default_on_create
from ..deletion import delete_object
from ..resources import JOBS, PODS
from ..store import Store, WatchEvent, now_rfc3339
from .events import EventRecorder

log = logging.getLogger(__name__)
JSON = dict[str, Any]
COMPONENT = "job-controller"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


@dataclass
class _Tally:
    """Finished pods already counted, by uid (pods may be removed after they finish)."""

    succeeded: dict[str, int | None] = field(default_factory=dict)  # uid -> completion index
    failed: set[str] = field(default_factory=set)
    ttl_handle: asyncio.TimerHandle | None = None


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def format_indexes(indexes: set[int]) -> str:
    """``{0,1,2,4}`` -> ``"0-2,4"`` as in ``status.completedIndexes``."""
    out: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


class JobController:
    def __init__(self, store: Store, events: EventRecorder) -> None:
        self.store = store
        self.events = events
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._tallies: dict[str, _Tally] = {}
        self._task: asyncio.Task[None] | None = None
        self._deadlines: dict[str, asyncio.TimerHandle] = {}

    def start(self) -> None:
        for job in self.store.iter(JOBS):
            self._enqueue(job["metadata"]["namespace"], job["metadata"]["name"])
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        for tally in self._tallies.values():
            if tally.ttl_handle is not None:
                tally.ttl_handle.cancel()
        for handle in self._deadlines.values():
            handle.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def on_event(self, event: WatchEvent) -> None:
        meta = event.obj["metadata"]
        if event.rt.key == JOBS.key:
            if event.type == "DELETED":
                tally = self._tallies.pop(meta["uid"], None)
                if tally is not None and tally.ttl_handle is not None:
                    tally.ttl_handle.cancel()
                return
            self._enqueue(meta["namespace"], meta["name"])
        elif event.rt.key == PODS.key:
            job_name = (meta.get("labels") or {}).get("batch.kubernetes.io/job-name")
            if job_name:
                self._enqueue(meta["namespace"], job_name)

    def _enqueue(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def _run(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                self._sync(*key)
            except Exception:  # one bad Job must not stop the controller
                log.exception("job controller failed on %s/%s", *key)

    # -- reconcile -------------------------------------------------------------------------
    def _sync(self, namespace: str, name: str) -> None:
        job = self.store.get(JOBS, namespace, name)
        if job is None or "deletionTimestamp" in job["metadata"]:
            return
        uid = job["metadata"]["uid"]
        tally = self._tallies.setdefault(uid, _Tally())
        spec = job.get("spec", {})
        status = copy.deepcopy(job.get("status") or {})
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        if _true(conditions, "Complete") or _true(conditions, "Failed"):
            self._schedule_ttl(job, tally)
            return
        pods = [
            p
            for p in self.store.list(PODS, namespace)
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
        ]
        indexed = spec.get("completionMode") == "Indexed"
        for pod in pods:
            phase = pod.get("status", {}).get("phase")
            pod_uid = pod["metadata"]["uid"]
            if phase == "Succeeded" and pod_uid not in tally.succeeded:
                index = _index(pod) if indexed else None
                tally.succeeded[pod_uid] = index
            elif phase == "Failed" and pod_uid not in tally.failed:
                tally.failed.add(pod_uid)
        active = [
            p
            for p in pods
            if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
            and "deletionTimestamp" not in p["metadata"]
        ]
        restarts = sum(
            int(cs.get("restartCount", 0))
            for p in active
            for cs in p.get("status", {}).get("containerStatuses") or []
        )
        failed = len(tally.failed) + restarts
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        done_indexes = {i for i in tally.succeeded.values() if i is not None}
        succeeded = len(done_indexes) if indexed else len(tally.succeeded)

        if spec.get("suspend"):
            for pod in active:
                self._delete_pod(job, pod)
            if not _true(conditions, "Suspended"):
                _set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended")
                status.pop("startTime", None)
                self.events.record(job, JOBS, "Suspended", "Job suspended", component=COMPONENT)
            status["active"] = 0
            self._write(job, status, succeeded, failed, done_indexes, indexed, [])
            return
        if _true(conditions, "Suspended"):
            _set_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
            self.events.record(job, JOBS, "Resumed", "Job resumed", component=COMPONENT)
        status.setdefault("startTime", now_rfc3339())

        backoff = int(spec.get("backoffLimit", 6))
        deadline = spec.get("activeDeadlineSeconds")
        reason = message = None
        if failed > backoff:
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        elif deadline is not None:
            started = _parse_time(status["startTime"])
            elapsed = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
            if elapsed >= float(deadline):
                reason, message = (
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            else:
                self._arm_deadline(job, float(deadline) - elapsed)
        if reason is not None and message is not None:
            for pod in active:
                self._delete_pod(job, pod)
            _set_condition(status, "FailureTarget", "True", reason, message)
            _set_condition(status, "Failed", "True", reason, message)
            self.events.record(job, JOBS, reason, message, type_="Warning", component=COMPONENT)
            self._write(job, status, succeeded, failed, done_indexes, indexed, [])
            return

        complete = (completions is not None and succeeded >= int(completions)) or (
            completions is None and succeeded > 0 and not active
        )
        if complete:
            for pod in active:
                self._delete_pod(job, pod)
            _set_condition(
                status,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
            _set_condition(
                status,
                "Complete",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
            status["completionTime"] = now_rfc3339()
            self.events.record(job, JOBS, "Completed", "Job completed", component=COMPONENT)
            self._write(job, status, succeeded, failed, done_indexes, indexed, [])
            return

        created: list[JSON] = []
        if indexed:
            assert completions is not None
            busy = {_index(p) for p in active} | done_indexes
            missing = [i for i in range(int(completions)) if i not in busy]
            for index in missing[: max(parallelism - len(active), 0)]:
                created.append(self._create_pod(job, index))
        else:
            remaining = (int(completions) - succeeded) if completions is not None else parallelism
            want = (
                min(parallelism, remaining)
                if completions is not None
                else (parallelism if succeeded == 0 else 0)
            )
            for _ in range(max(want - len(active), 0)):
                created.append(self._create_pod(job, None))
            for pod in active[want:] if len(active) > want else []:
                self._delete_pod(job, pod)
        self._write(job, status, succeeded, failed, done_indexes, indexed, active + created)

    def _write(
        self,
        job: JSON,
        status: JSON,
        succeeded: int,
        failed: int,
        indexes: set[int],
        indexed: bool,
        active: list[JSON],
    ) -> None:
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if _ready(p))
        status["terminating"] = sum(
            1
            for p in self.store.list(PODS, job["metadata"]["namespace"])
            if "deletionTimestamp" in p["metadata"]
            and any(
                r.get("uid") == job["metadata"]["uid"]
                for r in p["metadata"].get("ownerReferences") or []
            )
        )
        for key, value in (("succeeded", succeeded), ("failed", failed), ("active", len(active))):
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        if indexed and indexes:
            status["completedIndexes"] = format_indexes(indexes)
        status["uncountedTerminatedPods"] = {}
        current = self.store.get(JOBS, job["metadata"]["namespace"], job["metadata"]["name"])
        if current is None:
            return
        new = copy.deepcopy(current)
        new["status"] = status
        self.store.update(JOBS, new)

    def _create_pod(self, job: JSON, index: int | None) -> JSON:
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        template = copy.deepcopy(job["spec"].get("template") or {})
        meta = template.get("metadata") or {}
        pod_meta: JSON = {
            "generateName": f"{name}-" if index is None else f"{name}-{index}-",
            "namespace": namespace,
            "labels": dict(meta.get("labels") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": name,
                    "uid": job["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if meta.get("annotations"):
            pod_meta["annotations"] = dict(meta["annotations"])
        spec = template.get("spec") or {}
        if index is not None:
            pod_meta.setdefault("annotations", {})[INDEX_KEY] = str(index)
            pod_meta["labels"][INDEX_KEY] = str(index)
            spec.setdefault("hostname", f"{name}-{index}")
            for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                env = container.setdefault("env", [])
                env.insert(
                    0,
                    {
                        "name": "JOB_COMPLETION_INDEX",
                        "valueFrom": {
                            "fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}
                        },
                    },
                )
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
        try:
            default_on_create(self.store, PODS, pod)
        except Exception as exc:
            self.events.record(
                job,
                JOBS,
                "FailedCreate",
                f"Error creating: {exc}",
                type_="Warning",
                component=COMPONENT,
            )
            raise
        created = self.store.create(PODS, pod)
        self.events.record(
            job,
            JOBS,
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            component=COMPONENT,
        )
        return created

    def _delete_pod(self, job: JSON, pod: JSON) -> None:
        if self.store.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"]) is None:
            return
        delete_object(self.store, PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.events.record(
            job,
            JOBS,
            "SuccessfulDelete",
            f"Deleted pod: {pod['metadata']['name']}",
            component=COMPONENT,
        )

    def _schedule_ttl(self, job: JSON, tally: _Tally) -> None:
        ttl = job.get("spec", {}).get("ttlSecondsAfterFinished")
        if ttl is None or tally.ttl_handle is not None:
            return
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]

        def expire() -> None:
            if self.store.get(JOBS, namespace, name) is not None:
                delete_object(self.store, JOBS, namespace, name, propagation="Background")

        tally.ttl_handle = asyncio.get_running_loop().call_later(float(ttl), expire)

    def _arm_deadline(self, job: JSON, seconds: float) -> None:
        uid = job["metadata"]["uid"]
        if uid in self._deadlines:
            return
        key = (job["metadata"]["namespace"], job["metadata"]["name"])
        self._deadlines[uid] = asyncio.get_running_loop().call_later(
            seconds + 0.01, lambda: self._enqueue(*key)
        )


def _index(pod: JSON) -> int:
    return int((pod["metadata"].get("annotations") or {}).get(INDEX_KEY, "-1"))


def _ready(pod: JSON) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _true(conditions: dict[str, JSON], kind: str) -> bool:
    return conditions.get(kind, {}).get("status") == "True"


def _set_condition(status: JSON, kind: str, value: str, reason: str, message: str) -> None:
    now = now_rfc3339()
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond["type"] == kind:
            if cond["status"] != value:
                cond["lastTransitionTime"] = now
            cond.update(
                {"status": value, "reason": reason, "message": message, "lastProbeTime": now}
            )
            return
    conditions.append(
        {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
    )
