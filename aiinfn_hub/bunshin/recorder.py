"""The service's recorder of preemptions: it watches the jobs' pods and writes each notebook's
preemption into its Job's record (``preemption_record``) as soon as it sees it.

kube-scheduler marks the pod it preempts (condition ``DisruptionTarget``, reason
``PreemptionByScheduler``) and deletes it; the Job controller replaces it and lets it go. So
the record is written when the condition shows, on the pod's event, not later. An
:class:`~aiinfn_hub.kube.informer.Informer` lists and watches the pods labelled as Bunshin's in
the jobs' namespace (keeping only what a preemption needs: no environment, no commands) and
hands every pod it sees to :meth:`PreemptionRecorder.observe`, which only notes what to write
and schedules one writer per Job: the watch never waits for the API server.

A writer reads the Job, adds the preemptions to its record and merge-patches the annotation
with the ``resourceVersion`` it read: another writer (another replica of the service, or the
cancel of the job) in between makes that a 409 Conflict, and it reads and tries again, at most
``MAX_ATTEMPTS`` times. Recording is idempotent (a pod's uid counts once), so replicas may all
record the same pod, and a restarted service records from its first list what it missed while
it was down. Failures are logged; the pod is tried again when it is seen again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from ..kube.informer import Informer
from ..kube.rest import KubeError, KubeRest
from ..platform import vocabulary as v
from . import preemption_record
from .cluster import JobCluster
from .job import MANAGED_BY
from .job_view import pod_disruption, record_entry

JSON = dict[str, Any]
POD_SELECTOR = f"{v.MANAGED_BY}={MANAGED_BY}"  # every Bunshin job pod (``job.job_manifest``)
MAX_ATTEMPTS = 5  # writes of one Job's record tried in a row (conflicts with other writers)
MAX_PENDING = 1000  # preemptions waiting to be written; more are left for a later sighting
MAX_WRITERS = 4  # Jobs written at once
REMEMBERED = 10_000  # pods known to be written, whose later events then cost nothing
STOP_GRACE_SECONDS = 5.0  # what ``stop`` waits for writes under way
log = logging.getLogger("bunshin")


@dataclass(frozen=True)
class _Change:
    """What to write of one pod: its preemption (``entry``), or taking it out (None)."""

    entry: JSON | None
    job_uid: str | None  # the pod's Job, when the pod names it (owner reference)


def pod_summary(pod: JSON) -> JSON:
    """What the recorder's cache keeps of a pod: what ``job_view.pod_disruption`` reads, its uid
    and its Job; nothing the user put there (environment, command)."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    kept: JSON = {
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "deletionTimestamp", "ownerReferences")
            if key in meta
        },
        "spec": {"nodeName": spec["nodeName"]} if "nodeName" in spec else {},
        "status": {key: status[key] for key in ("phase", "startTime") if key in status},
    }
    kept["metadata"]["labels"] = {
        key: labels[key] for key in (v.JOB_NAME, v.JOB_NAME_SHORT, v.MANAGED_BY) if key in labels
    }
    if v.JOB_COMPLETION_INDEX in annotations:
        kept["metadata"]["annotations"] = {
            v.JOB_COMPLETION_INDEX: annotations[v.JOB_COMPLETION_INDEX]
        }
    conditions = [c for c in status.get("conditions") or [] if c.get("type") == v.DISRUPTION_TARGET]
    if conditions:
        kept["status"]["conditions"] = conditions
    return kept


def job_of(pod: JSON) -> tuple[str, str | None] | None:
    """``(name, uid)`` of the pod's Job: its controller reference, else the Job controller's
    label (uid unknown); None for a pod of no Job."""
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == "Job"
            and str(ref.get("apiVersion", "")).startswith("batch/")
            and ref.get("name")
        ):
            return str(ref["name"]), ref.get("uid") or None
    labels = meta.get("labels") or {}
    name = labels.get(v.JOB_NAME) or labels.get(v.JOB_NAME_SHORT)
    return (str(name), None) if name else None


def _preempted_but_succeeded(pod: JSON) -> bool:
    """A pod the scheduler preempted that finished its work in its grace period."""
    status = pod.get("status") or {}
    return status.get("phase") == "Succeeded" and any(
        c.get("type") == v.DISRUPTION_TARGET
        and c.get("status") == "True"
        and c.get("reason") == v.PREEMPTION_BY_SCHEDULER
        for c in status.get("conditions") or []
    )


def _oldest_first(change: tuple[str, _Change]) -> str:
    return change[1].entry["at"] if change[1].entry is not None else ""


class PreemptionRecorder:
    """Writes the preemptions of the jobs in ``namespace`` on their Jobs (see the module).

    ``start()`` begins listing and watching (in the running event loop), ``stop()`` ends the
    watch and waits a little for the writes under way; ``settled()`` waits until the pods
    have been listed and every preemption seen so far is written (or given up)."""

    def __init__(self, kube: KubeRest, namespace: str) -> None:
        self.namespace = namespace
        self.cluster = JobCluster(kube)
        self._kube = kube
        self.informer: Informer | None = None
        self._pending: dict[str, dict[str, _Change]] = {}  # Job name -> pod uid -> change
        self._writing: dict[str, dict[str, _Change]] = {}  # what each writer writes now
        self._tasks: dict[str, asyncio.Task[None]] = {}  # the writer of each Job
        self._written: OrderedDict[str, bool] = OrderedDict()  # pod uid -> recorded (or out)
        self._writers: asyncio.Semaphore | None = None
        self._full_logged = False
        self.writes = 0  # records written (for logs and tests)
        self.failures = 0  # writes given up

    # -- life ------------------------------------------------------------------------------------

    def start(self) -> None:
        """List and watch the jobs' pods, recording what they show (idempotent)."""
        if self.informer is None:
            core = client.CoreV1Api(self._kube.api_client)
            self.informer = Informer(
                f"bunshin-pods/{self.namespace}",
                functools.partial(core.list_namespaced_pod, self.namespace),
                label_selector=POD_SELECTOR,
                keep=pod_summary,
                on_object=self.observe,
            )
        self._writers = self._writers or asyncio.Semaphore(MAX_WRITERS)
        self.informer.start()
        log.info("recording the preemptions of the jobs in namespace %s", self.namespace)

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop watching; writes under way get ``grace`` seconds, then are cancelled (the pods
        they were about are recorded from the next start's list, if they still exist)."""
        if self.informer is not None:
            await self.informer.stop()
        tasks = list(self._tasks.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._tasks.clear()
        self._pending.clear()
        self._writing.clear()

    async def settled(self) -> None:
        """Once the pods are listed (when started) and every write scheduled so far is done."""
        if self.informer is not None:
            await self.informer.ready.wait()
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    # -- what the watch shows --------------------------------------------------------------------

    def observe(self, pod: JSON) -> None:
        """The informer's callback: note a pod's preemption (or its success after all) for
        its Job's writer. Never blocks and never raises."""
        try:
            self._observe(pod)
        except Exception:
            log.exception("could not note the preemption of a job pod")

    def _observe(self, pod: JSON) -> None:
        uid = (pod.get("metadata") or {}).get("uid")
        if not uid:
            return
        if _preempted_but_succeeded(pod):
            change = _Change(None, None)
        else:
            disruption = pod_disruption(pod)
            if disruption is None or not disruption.by_notebook:
                return
            if disruption.at is None:  # no time on the condition: the time it was seen
                disruption = replace(disruption, at=datetime.now(UTC).replace(microsecond=0))
            change = _Change(record_entry(disruption), None)
        adds = change.entry is not None
        if self._written.get(uid) is adds:
            return
        owner = job_of(pod)
        if owner is None:
            return
        name, job_uid = owner
        change = replace(change, job_uid=job_uid)
        for queued in (self._pending.get(name, {}), self._writing.get(name, {})):
            if uid in queued and (queued[uid].entry is not None) is adds:
                return
        waiting = self._pending.get(name, {})
        if uid not in waiting and sum(map(len, self._pending.values())) >= MAX_PENDING:
            if not self._full_logged:
                log.warning(
                    "%d preemptions wait to be recorded: later ones wait for their next event",
                    MAX_PENDING,
                )
                self._full_logged = True
            return
        self._pending.setdefault(name, {})[uid] = change
        if name not in self._tasks:
            self._tasks[name] = asyncio.get_running_loop().create_task(
                self._flush(name), name=f"record-preemptions-{name}"
            )

    # -- writing ---------------------------------------------------------------------------------

    async def _flush(self, name: str) -> None:
        """Write what waits for Job ``name``, until nothing does."""
        try:
            async with self._writers or asyncio.Semaphore(MAX_WRITERS):
                while self._pending.get(name):
                    batch = self._writing[name] = self._pending.pop(name)
                    self._full_logged = False  # room again: say it when it is full again
                    if await self._write(name, batch):
                        for uid, change in batch.items():
                            self._remember(uid, change.entry is not None)
                    else:
                        self.failures += 1
        except Exception:
            log.exception("recording the preemptions of job %s failed", name)
        finally:
            self._tasks.pop(name, None)
            self._writing.pop(name, None)
            self._pending.pop(name, None)  # left after a failure: tried at the next sighting

    def _remember(self, uid: str, recorded: bool) -> None:
        self._written[uid] = recorded
        self._written.move_to_end(uid)
        while len(self._written) > REMEMBERED:
            self._written.popitem(last=False)

    async def _write(self, name: str, batch: dict[str, _Change]) -> bool:
        """Add ``batch`` to the record of Job ``name``; True once it is there (or the Job is
        gone, or not Bunshin's), False when it could not be written."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                job = await self.cluster.read("Job", self.namespace, name)
            except KubeError as exc:
                log.warning("could not read job %s to record a preemption: %s", name, exc)
                return False
            meta = (job or {}).get("metadata") or {}
            if job is None or (meta.get("labels") or {}).get(v.MANAGED_BY) != MANAGED_BY:
                return True  # nothing to keep it on
            record = updated = preemption_record.read(job)
            # oldest first: a record that has dropped old entries takes one older than all it
            # lists as already counted (see ``PreemptionRecord.counted``)
            for uid, change in sorted(batch.items(), key=_oldest_first):
                if change.job_uid and change.job_uid != meta.get("uid"):
                    continue  # a pod of an earlier Job of that name
                if change.entry is not None:
                    updated = updated.add(change.entry) or updated
                else:
                    updated = updated.remove(uid) or updated
            if updated is record:
                return True  # already recorded (by another replica, or before a restart)
            patch = {
                "metadata": {
                    "resourceVersion": meta.get("resourceVersion"),
                    "annotations": {v.PREEMPTIONS: updated.to_json()},
                }
            }
            try:
                await self.cluster.merge_patch("Job", self.namespace, name, patch)
            except KubeError as exc:
                if exc.not_found:
                    return True
                if exc.conflict and attempt < MAX_ATTEMPTS:
                    await asyncio.sleep(random.uniform(0, 0.05 * attempt))
                    continue
                log.warning("could not record a preemption of job %s: %s", name, exc)
                return False
            self.writes += 1
            log.info(
                "job %s: a preemption by a notebook recorded (%d in all, %d s of running lost)",
                name,
                updated.count,
                updated.lost_seconds,
            )
            return True
        return False  # not reached: the last attempt returns
