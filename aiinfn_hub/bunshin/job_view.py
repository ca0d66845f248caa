"""A Bunshin job as the API, the page and the CLI show it (pure functions over the Job, its
Workload and its pods): status and reason, pods, and the preemptions notebooks made, from the
pods still there and the record the service keeps on the Job (``preemption_record``).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..kubemodel.times import api_time
from ..platform import vocabulary as v
from . import juicefs, preemption_record
from .job import CANCELLED, COMMAND_TEXT

JSON = dict[str, Any]


def _condition(obj: JSON | None, kind: str) -> JSON | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def job_status(
    job: JSON,
    workload: JSON | None,
    pods: list[JSON],
    now: datetime | None = None,
    virtual_nodes: frozenset[str] = frozenset(),
) -> tuple[str, str]:
    """``(status, reason)``: queued, admitted, running, succeeded, failed or cancelled.

    A pod the cluster stopped (condition ``DisruptionTarget``: a notebook preempting it, a
    drain, its node going) is no failure: the Job's ``podFailurePolicy`` ignores it and a
    replacement waits for a GPU. With no pod running the job reads ``queued`` (its work waits),
    and ``running`` once a pod runs again; the reason says what happened and when (HH:MM UTC,
    with the date when it is not the day of ``now``, or when ``now`` is not given). The
    preemptions recorded on the Job count as well as the pods that still show theirs, so the
    answer is the same once the preempted pod is gone. A running pod on one of
    ``virtual_nodes`` is said to be offloaded there (after a preemption: the fallback of an
    offloaded job)."""
    meta, spec, status = job["metadata"], job.get("spec") or {}, job.get("status") or {}
    if (meta.get("annotations") or {}).get(CANCELLED):
        return "cancelled", "cancelled by " + meta["annotations"][CANCELLED]
    done = _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet")
    if done:
        return "succeeded", ""
    failed = _condition(job, "Failed") or _condition(job, "FailureTarget")
    if failed:
        return "failed", _failed_reason(job, failed, pods)
    if spec.get("suspend"):
        admitted = _condition(workload, "Admitted")
        if admitted:
            return "admitted", ""
        evicted = _condition(workload, "Evicted")
        if evicted:
            return "queued", f"evicted: {evicted.get('reason', '')}"
        reserved = next(
            (
                c
                for c in ((workload or {}).get("status") or {}).get("conditions") or []
                if c.get("type") == "QuotaReserved"
            ),
            None,
        )
        return "queued", str((reserved or {}).get("message") or "waiting for the queue")
    stopped = job_disruptions(job, pods).stopped
    live = [p for p in pods if pod_disruption(p) is None]
    if any(_phase(p) == "Running" for p in live) or (int(status.get("ready") or 0) and not stopped):
        trouble = _sidecar_trouble(live)
        remote = _offloaded_to(live, virtual_nodes)
        if trouble or not stopped:
            return "running", trouble or (f"offloaded to {remote}" if remote else "")
        return "running", _running_again(stopped, live, now, remote)
    trouble = _sidecar_trouble(live)
    if stopped and not trouble:
        last = stopped[-1]
        return "queued", f"{last.what}{_at(last, now)}, waiting to run again"
    return "admitted", trouble or "pods starting"


@dataclass(frozen=True)
class Disruption:
    """A job pod the cluster stopped: when, why (the condition's reason), where, which index,
    how long it had run (seconds), and which pod (uid)."""

    at: datetime | None
    reason: str
    node: str | None
    index: int | None
    lost_seconds: int
    pod: str | None = None  # the pod's uid, when known

    @property
    def by_notebook(self) -> bool:
        """kube-scheduler preempted it: on this platform only notebooks outrank jobs."""
        return self.reason == v.PREEMPTION_BY_SCHEDULER

    @property
    def what(self) -> str:
        """What happened to the pod, in plain words (never a notebook unless it was one)."""
        return _DISRUPTED.get(self.reason, (f"stopped by the cluster ({self.reason})", ""))[0]

    @property
    def event(self) -> str:
        return _DISRUPTED.get(self.reason, ("", f"a stop by the cluster ({self.reason})"))[1]


# DisruptionTarget reasons (Kubernetes' own): what happened to the pod, and the event's name
_DISRUPTED = {
    v.PREEMPTION_BY_SCHEDULER: ("preempted by a notebook", "a preemption"),
    v.DELETION_BY_TAINT_MANAGER: (
        "evicted by a taint on its node (node trouble or maintenance)",
        "an eviction by a node taint",
    ),
    v.EVICTION_BY_EVICTION_API: (
        "evicted from its node (drain or maintenance)",
        "an eviction from its node",
    ),
    v.DELETION_BY_POD_GC: ("lost with its node", "the loss of its node"),
    v.TERMINATION_BY_KUBELET: (
        "stopped by its node (out of resources or shutting down)",
        "a stop by its node",
    ),
}
MAX_PREEMPTIONS = preemption_record.MAX_RECORDS  # the view lists the most recent ones only


def _phase(pod: JSON) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _index(pod: JSON) -> int | None:
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(v.JOB_COMPLETION_INDEX)
    return int(text) if isinstance(text, str) and text.isdigit() else None


def pod_disruption(pod: JSON) -> Disruption | None:
    """The pod's stop by the cluster, or None. A pod that succeeded anyway lost nothing."""
    condition = next(
        (
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == v.DISRUPTION_TARGET and c.get("status") == "True"
        ),
        None,
    )
    if condition is None or _phase(pod) == "Succeeded":
        return None
    at = api_time(condition.get("lastTransitionTime")) or api_time(
        (pod.get("metadata") or {}).get("deletionTimestamp")
    )
    status = pod.get("status") or {}
    started = api_time(status.get("startTime"))
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        started = started or api_time(
            (state.get("running") or state.get("terminated") or {}).get("startedAt")
        )
    lost = int((at - started).total_seconds()) if at and started else 0
    return Disruption(
        at=at,
        reason=str(condition.get("reason") or ""),
        node=(pod.get("spec") or {}).get("nodeName"),
        index=_index(pod),
        lost_seconds=max(0, lost),
        pod=(pod.get("metadata") or {}).get("uid") or None,
    )


def _oldest_first(found: list[Disruption]) -> list[Disruption]:
    return sorted(found, key=lambda d: d.at or datetime.min.replace(tzinfo=UTC))


def disruptions(pods: list[JSON]) -> list[Disruption]:
    """The job's pods the cluster stopped, oldest first."""
    return _oldest_first([d for d in (pod_disruption(p) for p in pods) if d is not None])


def record_entry(disruption: Disruption) -> JSON | None:
    """A notebook's preemption as the Job's record keeps it; None for other disruptions."""
    if not disruption.by_notebook or disruption.at is None:
        return None
    return preemption_record.entry(
        disruption.at,
        disruption.node,
        disruption.index,
        disruption.lost_seconds,
        disruption.pod,
    )


@dataclass(frozen=True)
class JobDisruptions:
    """What stopped a job's pods: ``stopped`` oldest first (the recorded preemptions and what
    the pods show), and the totals of the notebooks' preemptions (``count``, ``lost_seconds``:
    all of them, listed or not)."""

    stopped: list[Disruption]
    count: int
    lost_seconds: int


def job_disruptions(job: JSON, pods: list[JSON]) -> JobDisruptions:
    """The record on the Job (``preemption_record``) merged with the pods: a pod's preemption
    counts once, recorded or not, whether the pod still exists or not."""
    record = preemption_record.read(job)
    for pod in pods:  # recorded while it was stopping, it succeeded after all: nothing lost
        uid = (pod.get("metadata") or {}).get("uid")
        if _phase(pod) == "Succeeded" and uid:
            record = record.remove(uid) or record
    recorded = [
        Disruption(
            at=api_time(item["at"]),
            reason=v.PREEMPTION_BY_SCHEDULER,
            node=item["node"],
            index=item["index"],
            lost_seconds=item["lostSeconds"],
            pod=item["pod"],
        )
        for item in record.entries
    ]
    count, lost = record.count, record.lost_seconds
    unrecorded = []
    for found in disruptions(pods):
        item = record_entry(found)
        if item is not None and record.counted(item):
            continue
        unrecorded.append(found)
        if item is not None:
            count, lost = count + 1, lost + found.lost_seconds
    return JobDisruptions(_oldest_first(recorded + unrecorded), count, lost)


def _at(disruption: Disruption, now: datetime | None) -> str:
    """`` at 14:02`` (UTC), `` at 14:02 on 2025-03-06`` when it is not the day of ``now``, ""
    when unknown."""
    if disruption.at is None:
        return ""
    text = f" at {disruption.at:%H:%M}"
    if now is None or now.astimezone(UTC).date() != disruption.at.date():
        text += f" on {disruption.at:%Y-%m-%d}"
    return text


def _offloaded_to(pods: list[JSON], virtual_nodes: frozenset[str]) -> str:
    """``virtual node vk-a`` (or ``virtual nodes vk-a, vk-b``) running ``pods``, or ""."""
    nodes = sorted(
        {
            str((p.get("spec") or {}).get("nodeName"))
            for p in pods
            if _phase(p) == "Running" and (p.get("spec") or {}).get("nodeName") in virtual_nodes
        }
    )
    if not nodes:
        return ""
    return ("virtual node " if len(nodes) == 1 else "virtual nodes ") + ", ".join(nodes)


def _running_again(
    stopped: list[Disruption], live: list[JSON], now: datetime | None, remote: str = ""
) -> str:
    """The reason of a running job some of whose pods the cluster stopped: the indexes still
    waiting for a GPU, or that it runs again (offloaded to ``remote``, when it is said)."""
    done = {_index(p) for p in live if _phase(p) in ("Running", "Succeeded")}
    waiting = {d.index: d for d in stopped if d.index is not None and d.index not in done}
    if len(waiting) == 1:
        ((index, last),) = waiting.items()
        return f"index {index} {last.what}{_at(last, now)}, waiting to run again"
    if waiting:
        last = max(waiting.values(), key=lambda d: d.at or datetime.min.replace(tzinfo=UTC))
        return (
            f"{len(waiting)} indexes stopped (the last {last.what}{_at(last, now)}), waiting to "
            "run again"
        )
    last = stopped[-1]
    if remote:
        return f"running again, offloaded to {remote}, after {last.event}{_at(last, now)}"
    return f"running again after {last.event}{_at(last, now)}"


def preemption_note(preempted: list[Disruption]) -> str:
    """The notebooks' preemptions of a job in plain words: how often, the running time lost."""
    return totals_note(len(preempted), sum(d.lost_seconds for d in preempted))


def totals_note(count: int, lost: int) -> str:
    """``preemption_note`` of ``count`` preemptions that lost ``lost`` seconds in all."""
    if not count:
        return ""
    times = "once by a notebook" if count == 1 else f"{count} times by notebooks"
    if lost == 0:
        return f"preempted {times} before it had run"
    return f"preempted {times}: lost {_duration(lost)} of running"


def _duration(seconds: int) -> str:
    if seconds < 60:
        return "less than a minute"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _sidecar_trouble(pods: list[JSON]) -> str:
    """Why a pod's mount sidecar keeps restarting (its job waits meanwhile), or ""."""
    for pod in pods:
        for sidecar in (pod.get("status") or {}).get("initContainerStatuses") or []:
            restarts = int(sidecar.get("restartCount") or 0)
            ended = (sidecar.get("lastState") or {}).get("terminated") or {}
            if restarts and ended:
                what = (
                    "the job's file system"
                    if sidecar.get("name") == juicefs.SIDECAR
                    else (f"the {sidecar.get('name')} helper")
                )
                return (
                    f"{what} does not come up (tried {restarts + 1} times, last exit code "
                    f"{ended.get('exitCode')}); the job waits for it: cancel it and tell the "
                    "platform administrators if this goes on"
                )
    return ""


def _main_terminated(pod: JSON) -> JSON | None:
    """The job container's ``terminated`` state, once it has ended."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == "main":
            terminated = (container.get("state") or {}).get("terminated")
            return dict(terminated) if terminated else None
    return None


def exit_code(pod: JSON) -> int | None:
    """The exit code of a pod's command, once it has ended; None before."""
    terminated = _main_terminated(pod)
    if terminated is None or terminated.get("exitCode") is None:
        return None
    try:
        return int(terminated["exitCode"])
    except (TypeError, ValueError):
        return None


def failed_pods(pods: list[JSON]) -> list[JSON]:
    """The pods whose command failed (not those the cluster stopped), the last one last."""
    found = [
        p
        for p in pods
        if _phase(p) == "Failed" and pod_disruption(p) is None and (exit_code(p) or 0) != 0
    ]
    return sorted(
        found,
        key=lambda p: (
            str((_main_terminated(p) or {}).get("finishedAt") or ""),
            p["metadata"]["name"],
        ),
    )


def failure(pods: list[JSON]) -> JSON | None:
    """Where the command failed: the last failed pod, its index and exit code and the
    container's reason (e.g. ``OOMKilled``); None when no pod's command failed. The service
    adds the end of that pod's log (``log``, ``logTruncated``)."""
    failed = failed_pods(pods)
    if not failed:
        return None
    last = failed[-1]
    return {
        "pod": last["metadata"]["name"],
        "index": _index(last),
        "exitCode": exit_code(last),
        "reason": str((_main_terminated(last) or {}).get("reason") or ""),
        "attempts": len(failed),
    }


def _failed_reason(job: JSON, condition: JSON, pods: list[JSON]) -> str:
    """Why a job failed in words: its command's exit code (and how often it ran) rather than
    the Job controller's "reached the specified backoff limit"; other reasons (its run time,
    a failure policy) as the controller says them."""
    said = str(condition.get("message") or condition.get("reason") or "")
    if condition.get("reason") not in ("BackoffLimitExceeded", None):
        return said
    found = failure(pods)
    if found is None:
        return said
    code, attempts = found["exitCode"], found["attempts"]
    if found["reason"] == "OOMKilled":
        text = f"the command was stopped for using more memory than the job has (exit code {code})"
    else:
        text = f"the command failed with exit code {code}"
    if attempts > 1:
        text += f" ({attempts} times: the job's retries were used up)"
    if found["index"] is not None:
        text = f"index {found['index']}: {text}"
    return text


def job_view(
    job: JSON,
    pods: list[JSON],
    workload: JSON | None,
    now: datetime | None = None,
    virtual_nodes: frozenset[str] = frozenset(),
) -> JSON:
    """The job object of the API. ``preemptions``: the most recent ``MAX_PREEMPTIONS`` times a
    notebook took a pod's GPU, oldest first, from the record on the Job and the pods (kept
    once the job has finished and its pods are gone); ``preemptionNote`` says all of them in
    plain words (the record's totals). A pod on one of ``virtual_nodes`` is ``offloaded``."""
    meta = job["metadata"]
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    status, reason = job_status(job, workload, pods, now, virtual_nodes)
    found = job_disruptions(job, pods)
    preempted = [d for d in found.stopped if d.by_notebook and d.at is not None]
    job_status_ = job.get("status") or {}
    try:
        command = json.loads(annotations.get(v.COMMAND, "[]"))
    except ValueError:
        command = []
    accelerator = labels.get(v.ACCELERATOR, v.NO_ACCELERATOR)
    failed = failure(pods) if status == "failed" else None
    return {
        "id": meta["name"],
        "name": annotations.get(v.DISPLAY_NAME) or meta["name"],
        "user": annotations.get(v.USER, ""),
        "project": labels.get(v.PROJECT, ""),
        "server": annotations.get(v.SERVER, ""),
        "command": command,
        "commandText": annotations.get(COMMAND_TEXT) or shlex.join(command),
        "accelerator": None
        if accelerator == v.NO_ACCELERATOR
        else {
            "name": accelerator,
            "count": int(labels.get(v.ACCELERATOR_COUNT, 1)),
        },
        "offload": labels.get(v.OFFLOAD) == "true",
        "retries": int((job.get("spec") or {}).get("backoffLimit") or 0),
        "status": status,
        "reason": reason,
        "createdAt": meta.get("creationTimestamp"),
        "startedAt": job_status_.get("startTime"),
        "finishedAt": job_status_.get("completionTime")
        or (_condition(job, "Failed") or {}).get("lastTransitionTime"),
        "pods": [
            {
                "name": p["metadata"]["name"],
                "node": (p.get("spec") or {}).get("nodeName"),
                "offloaded": (p.get("spec") or {}).get("nodeName") in virtual_nodes,
                "phase": (p.get("status") or {}).get("phase"),
                "index": ((p["metadata"].get("annotations") or {}).get(v.JOB_COMPLETION_INDEX)),
                "exitCode": exit_code(p),
            }
            for p in sorted(pods, key=lambda p: p["metadata"]["name"])
        ],
        "preemptions": [
            {
                "at": d.at.strftime("%Y-%m-%dT%H:%M:%SZ") if d.at else None,
                "node": d.node,
                "index": d.index,
                "lostSeconds": d.lost_seconds,
            }
            for d in preempted[-MAX_PREEMPTIONS:]
        ],
        "preemptionNote": totals_note(found.count, found.lost_seconds),
        "exitCode": failed["exitCode"] if failed else None,
        "failure": failed,
    }
