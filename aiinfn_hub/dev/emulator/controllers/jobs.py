"""The Job controller (batch/v1), with the behaviour of kube-controller-manager's.

Each Job is synced as a whole whenever it or one of its pods changes: finished pods are counted
(their ``batch.kubernetes.io/job-tracking`` finalizer is removed only after the count is in the
Job's status, so none is counted twice or lost), pods are created or deleted towards
``parallelism``/``completions`` (NonIndexed or Indexed), ``suspend`` deletes the active pods and
resuming resets ``startTime``, ``backoffLimit`` and ``activeDeadlineSeconds`` fail the Job
(FailureTarget, then Failed once no pod runs), success adds SuccessCriteriaMet then Complete,
and ``ttlSecondsAfterFinished`` deletes a finished Job (in the foreground, as the TTL
controller does).

Failed pods, as v1.33's controller sees them (isPodFailed): a pod in phase Failed, and, unless
the Job only replaces failed pods (``podReplacementPolicy: Failed``, which a
``podFailurePolicy`` implies), a pod being deleted that has not succeeded. A failed pod is
matched against the ``podFailurePolicy``: an ``Ignore`` rule (Bunshin's, on the
``DisruptionTarget`` condition the scheduler puts on a preempted pod) keeps it out of
``status.failed`` and of ``backoffLimit``, ``FailJob`` fails the Job (reason
``PodFailurePolicy``). When only failed pods are replaced, a terminating pod still takes its
place: its replacement (for an Indexed Job, of its index; completed indexes stay completed) is
created once it has reached phase Failed. Counted pods lose the tracking finalizer, so a
deleted one then goes away. The pod-creation backoff after failures (10 s doubling) is not
modelled: replacements are created at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
from collections import defaultdict

from ..api.admission import default_on_create
from ..deletion import delete_object, remove_if_finalized
from ..errors import ApiError
from ..resources import JOBS, NAMESPACES, PODS
from ..store import JSON, Store, WatchEvent, now_rfc3339
from . import job_pods
from .events import EventRecorder
from .job_pods import TRACKING_FINALIZER, condition_true, set_condition

log = logging.getLogger(__name__)
COMPONENT = "job-controller"
JobKey = tuple[str, str]
PodKey = tuple[str, str]
BACKOFF_REASON = "BackoffLimitExceeded"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
SUCCESS_REASON = "CompletionsReached"
SUCCESS_MESSAGE = "Reached expected number of succeeded pods"
POLICY_REASON = "PodFailurePolicy"


def _controller_job_uid(pod: JSON) -> tuple[str, str] | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == "Job"
            and ref.get("apiVersion", "").startswith("batch/")
        ):
            return ref.get("uid", ""), ref.get("name", "")
    return None


def _terminal(pod: JSON) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def _never_ran(pod: JSON) -> bool:
    """Deleted before any kubelet ran it: it will never run (PodGC would mark it Failed)."""
    return "deletionTimestamp" in pod["metadata"] and not pod.get("spec", {}).get("nodeName")


def _finished_for_counting(pod: JSON) -> bool:
    """Terminal, or deleted before any kubelet ran it."""
    return _terminal(pod) or _never_ran(pod)


def only_replace_failed(spec: JSON) -> bool:
    """onlyReplaceFailedPods: ``podReplacementPolicy: Failed``, or a ``podFailurePolicy``."""
    return spec.get("podReplacementPolicy") == "Failed" or bool(spec.get("podFailurePolicy"))


def _is_failed(pod: JSON, spec: JSON) -> bool:
    """isPodFailed: phase Failed; or, unless only failed pods are replaced, being deleted
    without having succeeded (so a deleted pod counts even if it never reaches Failed)."""
    phase = pod.get("status", {}).get("phase")
    if phase == "Failed" or _never_ran(pod):
        return True
    if only_replace_failed(spec):
        return False
    return "deletionTimestamp" in pod["metadata"] and phase != "Succeeded"


def _countable(pod: JSON, spec: JSON) -> bool:
    """Ready to be counted (and released from the tracking finalizer)."""
    return pod.get("status", {}).get("phase") == "Succeeded" or _is_failed(pod, spec)


def _is_ready(pod: JSON) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _restarts(pod: JSON) -> int:
    status = pod.get("status", {})
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return sum(int(s.get("restartCount") or 0) for s in statuses)


class JobController:
    """Keeps every Job's pods and status in line with its spec."""

    def __init__(self, store: Store, events: EventRecorder) -> None:
        self._store = store
        self._events = events
        self._pods_of: dict[str, set[PodKey]] = defaultdict(set)
        self._job_of_pod: dict[PodKey, str] = {}
        self._dirty: set[JobKey] = set()
        self._orphaned: set[str] = set()
        self._expected_deletions: set[str] = set()
        self._timers: dict[JobKey, asyncio.TimerHandle] = {}
        # when each Job started, to the microsecond (status.startTime has whole seconds)
        self._started: dict[str, datetime.datetime] = {}
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        for pod in self._store.iter(PODS):
            self._pod_event("ADDED", pod)
        for job in self._store.iter(JOBS):
            self._mark((job["metadata"]["namespace"], job["metadata"]["name"]))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="job-controller")

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- change events ---------------------------------------------------------------------
    def observe(self, event: WatchEvent) -> None:
        if event.rt.key == JOBS.key:
            meta = event.obj["metadata"]
            if event.type == "DELETED":
                self._orphaned.add(meta["uid"])
                self._started.pop(meta["uid"], None)
                self._wake()
            else:
                self._mark((meta["namespace"], meta["name"]))
        elif event.rt.key == PODS.key:
            self._pod_event(event.type, event.obj)

    def _pod_event(self, kind: str, pod: JSON) -> None:
        owner = _controller_job_uid(pod)
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if owner is None:
            return
        uid, job_name = owner
        if kind == "DELETED":
            self._pods_of[uid].discard(key)
            if not self._pods_of[uid]:
                del self._pods_of[uid]
            self._job_of_pod.pop(key, None)
            self._expected_deletions.discard(pod["metadata"].get("uid", ""))
        else:
            self._pods_of[uid].add(key)
            self._job_of_pod[key] = uid
        self._mark((key[0], job_name))

    def _mark(self, key: JobKey) -> None:
        self._dirty.add(key)
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            dirty, self._dirty = self._dirty, set()
            orphaned, self._orphaned = self._orphaned, set()
            for uid in orphaned:
                self._release_orphans(uid)
            for i, key in enumerate(sorted(dirty)):
                try:
                    self.sync(key)
                except Exception:
                    log.exception("syncing Job %s/%s failed", *key)
                if i % 50 == 49:
                    await asyncio.sleep(0)

    # -- the sync --------------------------------------------------------------------------
    def _pods(self, job: JSON) -> list[JSON]:
        uid = job["metadata"]["uid"]
        pods = []
        for key in list(self._pods_of.get(uid, ())):
            pod = self._store.get(PODS, *key)
            if pod is not None and (_controller_job_uid(pod) or ("", ""))[0] == uid:
                pods.append(pod)
        return pods

    def sync(self, key: JobKey) -> None:
        """Bring one Job's pods and status in line with its spec."""
        job = self._store.get(JOBS, *key)
        if job is None:
            return
        spec = job.get("spec", {})
        status = copy.deepcopy(job.get("status") or {})
        pods = self._pods(job)
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        finished = condition_true(status, "Complete") or condition_true(status, "Failed")

        # count finished pods that still carry the tracking finalizer
        to_release = [
            p
            for p in pods
            if TRACKING_FINALIZER in (p["metadata"].get("finalizers") or []) and _countable(p, spec)
        ]
        succeeded_indexes = job_pods.parse_indexes(status.get("completedIndexes"))
        fail_job: str | None = None
        if not finished:
            for pod in to_release:
                if pod.get("status", {}).get("phase") == "Succeeded":
                    status["succeeded"] = int(status.get("succeeded") or 0) + 1
                    index = job_pods.pod_index(pod, int(completions or 0)) if indexed else None
                    if index is not None:
                        succeeded_indexes.add(index)
                elif pod["metadata"].get("uid") not in self._expected_deletions:
                    message, counts, _ = job_pods.match_pod_failure_policy(
                        spec.get("podFailurePolicy"), pod
                    )
                    if counts:
                        status["failed"] = int(status.get("failed") or 0) + 1
                    fail_job = fail_job or message
        if indexed:
            status["completedIndexes"] = job_pods.format_indexes(succeeded_indexes)
            status["succeeded"] = len(succeeded_indexes)
        active = [
            p
            for p in pods
            if not _finished_for_counting(p) and "deletionTimestamp" not in p["metadata"]
        ]
        terminating = [
            p
            for p in pods
            if not _finished_for_counting(p) and "deletionTimestamp" in p["metadata"]
        ]

        if not finished:
            active, terminating = self._manage(
                job, status, active, terminating, succeeded_indexes, fail_job
            )

        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if _is_ready(p))
        status["terminating"] = len(terminating)
        status["uncountedTerminatedPods"] = {}
        # like the API's omitempty: zero counters and empty index lists are left out
        for optional in ("active", "succeeded", "failed", "completedIndexes"):
            if not status.get(optional):
                status.pop(optional, None)
        new = copy.deepcopy(job)
        new["status"] = status
        stored = self._store.update(JOBS, new)
        for pod in to_release:
            self._release(pod)
        self._schedule_timers(stored)

    def _manage(
        self,
        job: JSON,
        status: JSON,
        active: list[JSON],
        terminating: list[JSON],
        succeeded_indexes: set[int],
        fail_job: str | None = None,
    ) -> tuple[list[JSON], list[JSON]]:
        """Create, delete and finish: everything a Job that has not finished needs."""
        spec = job.get("spec", {})
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        suspended = bool(spec.get("suspend"))
        succeeded = int(status.get("succeeded") or 0)
        deleting_job = "deletionTimestamp" in job["metadata"]

        uid = job["metadata"]["uid"]
        if status.get("startTime") is None and not suspended:
            self._set_start(uid, status)

        # success and failure targets
        if not condition_true(status, "FailureTarget") and not condition_true(
            status, "SuccessCriteriaMet"
        ):
            if fail_job is not None:
                set_condition(status, "FailureTarget", "True", POLICY_REASON, fail_job)
                self._record(job, POLICY_REASON, fail_job, warning=True)
            elif self._succeeded(spec, succeeded, succeeded_indexes, active):
                set_condition(status, "SuccessCriteriaMet", "True", SUCCESS_REASON, SUCCESS_MESSAGE)
            elif self._past_backoff_limit(spec, status, active):
                set_condition(status, "FailureTarget", "True", BACKOFF_REASON, BACKOFF_MESSAGE)
                self._record(job, BACKOFF_REASON, BACKOFF_MESSAGE, warning=True)
            elif not suspended and self._past_deadline(spec, self._start_of(uid, status)):
                set_condition(status, "FailureTarget", "True", DEADLINE_REASON, DEADLINE_MESSAGE)
                self._record(job, DEADLINE_REASON, DEADLINE_MESSAGE, warning=True)
        failure = condition_true(status, "FailureTarget")
        success = condition_true(status, "SuccessCriteriaMet")
        if failure or success:
            terminating = terminating + self._delete_pods(job, active)
            active = []
            if not terminating:
                if failure:
                    set_condition(status, "Failed", "True", failure["reason"], failure["message"])
                else:
                    set_condition(status, "Complete", "True", SUCCESS_REASON, SUCCESS_MESSAGE)
                    status["completionTime"] = now_rfc3339()
                    self._record(job, "Completed", "Job completed")
            return active, terminating

        if suspended:
            if active:
                terminating = terminating + self._delete_pods(job, active)
                active = []
            if set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended"):
                self._record(job, "Suspended", "Job suspended")
            return active, terminating
        if condition_true(status, "Suspended"):
            set_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
            self._record(job, "Resumed", "Job resumed")
            # activeDeadlineSeconds counts the time the Job is continuously active
            self._set_start(uid, status)
        if deleting_job:
            return active, terminating

        # a terminating pod keeps its place until it has failed when only failed pods are
        # replaced (its index too)
        waiting = terminating if only_replace_failed(spec) else []
        if indexed:
            total = int(completions or 0)
            wanted = min(parallelism, total - len(succeeded_indexes))
            duplicates, seen = [], set()
            for pod in active:
                index = job_pods.pod_index(pod, total)
                if index is None or index in succeeded_indexes or index in seen:
                    duplicates.append(pod)
                else:
                    seen.add(index)
            if duplicates:
                terminating = terminating + self._delete_pods(job, duplicates)
                active = [p for p in active if p not in duplicates]
            held = {job_pods.pod_index(p, total) for p in waiting}
            missing = [
                i
                for i in range(total)
                if i not in succeeded_indexes and i not in seen and i not in held
            ]
            for index in missing[: max(wanted - len(active) - len(waiting), 0)]:
                created = self._create_pod(job, index)
                if created is None:
                    break
                active.append(created)
        else:
            if completions is None:
                wanted = 0 if succeeded > 0 else parallelism
            else:
                wanted = max(min(parallelism, int(completions) - succeeded), 0)
            for _ in range(wanted - len(active) - len(waiting)):
                created = self._create_pod(job, None)
                if created is None:
                    break
                active.append(created)
        if len(active) > wanted:
            # scale down: pods not yet running first, then the newest
            ranked = sorted(
                active,
                key=lambda p: (
                    p.get("status", {}).get("phase") == "Running",
                    _is_ready(p),
                    p["metadata"].get("creationTimestamp", ""),
                ),
            )
            extra = ranked[: len(active) - wanted]
            terminating = terminating + self._delete_pods(job, extra)
            active = [p for p in active if p not in extra]
        return active, terminating

    @staticmethod
    def _succeeded(spec: JSON, succeeded: int, indexes: set[int], active: list[JSON]) -> bool:
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed":
            return len(indexes) >= int(completions or 0)
        if completions is None:
            return succeeded > 0 and not active
        return succeeded >= int(completions)

    @staticmethod
    def _past_backoff_limit(spec: JSON, status: JSON, active: list[JSON]) -> bool:
        limit = int(spec.get("backoffLimit", 6))
        if int(status.get("failed") or 0) > limit:
            return True
        restart_policy = (spec.get("template") or {}).get("spec", {}).get("restartPolicy")
        if restart_policy != "OnFailure":
            return False
        restarts = sum(_restarts(p) for p in active)
        return restarts > 0 if limit == 0 else restarts >= limit

    def _set_start(self, uid: str, status: JSON) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self._started[uid] = now
        status["startTime"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _start_of(self, uid: str, status: JSON) -> datetime.datetime | None:
        started = job_pods.parse_time(status.get("startTime"))
        precise = self._started.get(uid)
        if (
            precise is not None
            and started is not None
            and precise.replace(microsecond=0) == started
        ):
            return precise
        return started

    @staticmethod
    def _past_deadline(spec: JSON, started: datetime.datetime | None) -> bool:
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is None or started is None:
            return False
        elapsed = datetime.datetime.now(datetime.UTC) - started
        return elapsed.total_seconds() >= int(deadline)

    # -- writes ----------------------------------------------------------------------------
    def _create_pod(self, job: JSON, index: int | None) -> JSON | None:
        pod = job_pods.build_job_pod(job, index)
        namespace = job["metadata"]["namespace"]
        try:
            ns = self._store.get(NAMESPACES, None, namespace)
            if ns is not None and "deletionTimestamp" in ns["metadata"]:
                raise ApiError.forbidden(
                    f"unable to create new content in namespace {namespace} because it is being "
                    "terminated"
                )
            default_on_create(self._store, PODS, pod)
            created = self._store.create(PODS, pod)
        except ApiError as exc:
            self._record(job, "FailedCreate", f"Error creating: {exc.message}", warning=True)
            return None
        self._record(job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return created

    def _delete_pods(self, job: JSON, pods: list[JSON]) -> list[JSON]:
        """Delete pods the Job no longer wants; they do not count as failures."""
        deleted = []
        for pod in pods:
            meta = pod["metadata"]
            self._expected_deletions.add(meta.get("uid", ""))
            try:
                result = delete_object(self._store, PODS, meta["namespace"], meta["name"])
            except ApiError:
                continue
            self._record(job, "SuccessfulDelete", f"Deleted pod: {meta['name']}")
            current = self._store.get(PODS, meta["namespace"], meta["name"])
            if current is not None and not _finished_for_counting(current):
                deleted.append(result)
        return deleted

    def _release(self, pod: JSON) -> None:
        """Drop the tracking finalizer of a counted pod (which may then go away)."""
        meta = pod["metadata"]
        current = self._store.get(PODS, meta["namespace"], meta["name"])
        if current is None or current["metadata"].get("uid") != meta.get("uid"):
            return
        finalizers = [
            f for f in current["metadata"].get("finalizers") or [] if f != TRACKING_FINALIZER
        ]
        new = copy.deepcopy(current)
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        else:
            new["metadata"].pop("finalizers", None)
        updated = self._store.update(PODS, new)
        remove_if_finalized(self._store, PODS, updated)

    def _release_orphans(self, job_uid: str) -> None:
        """The Job is gone: its pods must not stay blocked by the tracking finalizer."""
        for key in list(self._pods_of.get(job_uid, ())):
            pod = self._store.get(PODS, *key)
            if pod is not None and TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or []):
                self._release(pod)

    def _record(self, job: JSON, reason: str, message: str, *, warning: bool = False) -> None:
        self._events.record(
            job,
            reason,
            message,
            component=COMPONENT,
            event_type="Warning" if warning else "Normal",
            instance="",
        )

    # -- timers ----------------------------------------------------------------------------
    def _schedule_timers(self, job: JSON) -> None:
        """Wake up for activeDeadlineSeconds and ttlSecondsAfterFinished."""
        key = (job["metadata"]["namespace"], job["metadata"]["name"])
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        spec, status = job.get("spec", {}), job.get("status", {})
        now = datetime.datetime.now(datetime.UTC)
        finished = condition_true(status, "Complete") or condition_true(status, "Failed")
        loop = asyncio.get_running_loop()
        if finished:
            ttl = spec.get("ttlSecondsAfterFinished")
            ended = job_pods.parse_time(
                status.get("completionTime") or finished.get("lastTransitionTime")
            )
            if ttl is None or ended is None:
                return
            delay = max((ended - now).total_seconds() + int(ttl), 0.0)
            uid = job["metadata"]["uid"]
            self._timers[key] = loop.call_later(delay, self._expire, key, uid)
            return
        deadline = spec.get("activeDeadlineSeconds")
        started = self._start_of(job["metadata"]["uid"], status)
        if deadline is not None and started is not None and not spec.get("suspend"):
            delay = max((started - now).total_seconds() + int(deadline), 0.0)
            self._timers[key] = loop.call_later(delay + 0.01, self._mark, key)

    def _expire(self, key: JobKey, uid: str) -> None:
        """ttlSecondsAfterFinished is up: delete the Job and, in the foreground, its pods."""
        self._timers.pop(key, None)
        job = self._store.get(JOBS, *key)
        if job is None or job["metadata"]["uid"] != uid or "deletionTimestamp" in job["metadata"]:
            return
        with contextlib.suppress(ApiError):
            delete_object(
                self._store,
                JOBS,
                key[0],
                key[1],
                propagation="Foreground",
                preconditions={"uid": uid},
            )
