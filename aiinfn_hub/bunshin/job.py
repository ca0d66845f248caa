"""The Kubernetes objects of a Bunshin job (pure functions; the job as the API shows it is
``job_view``).

A ``batch/v1`` Job, suspended for Kueue (``kueue.x-k8s.io/queue-name``), Indexed when it has
several completions (each pod reads ``JOB_COMPLETION_INDEX``), pods with a negative priority
class that never preempts (notebooks evict them), a ``podFailurePolicy`` ignoring evictions,
requests equal to limits, no service account token, and no owner: it survives its notebook.
The sandbox files go in a ConfigMap owned by the Job. An offloaded job with JuiceFS folders
gets the mount sidecar of ``juicefs`` as its only init container.

A submission is made safe against the service dying half-way by *releasing* the Job last:
it is created without its queue label (Kueue leaves such a Job alone, suspended), then come
the project's JuiceFS Secret and the sandbox, and only then the label that queues it
(``release_patch``). A Job still unreleased after ``SUBMISSION_GRACE_SECONDS`` was left by an
interrupted submission (``interrupted_submissions``) and is removed with what it owns.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..config import PlatformConfig
from ..kubemodel.times import api_time
from ..platform import placement
from ..platform import vocabulary as v
from ..platform.names import user_slug
from . import juicefs
from .policy import JobPlan

JSON = dict[str, Any]
MANAGED_BY = v.MANAGER_BUNSHIN
USER_LABEL = v.BUNSHIN_USER
SANDBOX_VOLUME = "sandbox"
SANDBOX_PATH = "/sandbox"
CANCELLED = v.CANCELLED
QUEUE_LABEL = v.KUEUE_QUEUE
WORKLOAD_PRIORITY_LABEL = v.KUEUE_PRIORITY_CLASS
# the command as the user typed it (quotes kept), shown instead of the items joined
COMMAND_TEXT = "aiinfn.infn.it/command-text"
# a Job still without its queue label this long after its creation was left by a submission
# that did not finish (a submission takes well under a second; replicas share this bound)
SUBMISSION_GRACE_SECONDS = 120


def user_label(username: str) -> str:
    """A label value standing for ``username`` and no other user (see ``platform.names``)."""
    return user_slug(username)


def job_name(username: str, suffix: str) -> str:
    """``bunshin-<user>-<suffix>``: unique (the suffix is random) and a valid Job name."""
    return f"bunshin-{user_slug(username)}-{suffix}"


def sandbox_name(name: str) -> str:
    return f"{name}-sandbox"


def job_labels(plan: JobPlan, config: PlatformConfig) -> dict[str, str]:
    """Selectable facts: owner, project, placement, accelerator (accounting groups by them)."""
    jobs = config.jobs
    labels = {
        v.MANAGED_BY: MANAGED_BY,
        USER_LABEL: user_label(plan.user),
        v.PROJECT: plan.project,
        v.OFFLOAD: "true" if plan.offload else "false",
        v.ACCELERATOR: plan.accelerator.name if plan.accelerator else v.NO_ACCELERATOR,
        v.ACCELERATOR_COUNT: str(plan.count),
        QUEUE_LABEL: jobs.queue_name.replace("{project}", plan.project),
    }
    if jobs.workload_priority_class:
        labels[WORKLOAD_PRIORITY_LABEL] = jobs.workload_priority_class
    return labels


def job_annotations(plan: JobPlan) -> dict[str, str]:
    """What the user chose freely (not label-safe): username, command (and its text as
    typed, when given), display name."""
    annotations = {
        v.USER: plan.user,
        v.SERVER: plan.server,
        v.SOURCE_POD: plan.source_pod,
        v.SOURCE_POD_UID: plan.source_uid,
        v.COMMAND: json.dumps(plan.command),
        v.DISPLAY_NAME: plan.display_name or "",
    }
    if plan.command_text is not None:
        annotations[COMMAND_TEXT] = plan.command_text
    return annotations


def job_container(plan: JobPlan, name: str) -> JSON:
    """The one container: the server's image and ids, requests equal to limits, the sandbox."""
    resources: dict[str, str] = {"cpu": f"{plan.cpu:g}", "memory": plan.memory}
    if plan.accelerator is not None:
        resources[plan.accelerator.resource] = str(plan.count)
    mounts = list(plan.mounts)
    if plan.sandbox:
        mounts.append({"name": SANDBOX_VOLUME, "mountPath": SANDBOX_PATH, "readOnly": True})
    container: JSON = {
        "name": "main",
        "image": plan.image,
        "command": plan.command,
        "env": [*plan.env, {"name": "BUNSHIN_JOB", "value": name}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": plan.security_context,
        "volumeMounts": mounts,
    }
    if plan.working_dir:
        container["workingDir"] = plan.working_dir
    return container


def job_placement(plan: JobPlan, config: PlatformConfig) -> JSON:
    """``nodeSelector``, ``affinity`` and ``tolerations`` of the pods (``platform.placement``)."""
    if plan.offload:
        return placement.offloaded_job_placement(plan.accelerator, config.jobs.offload)
    node_selector = placement.accelerator_node_selector(plan.accelerator)
    tolerations = placement.accelerator_tolerations(plan.accelerator)
    out: JSON = {}
    if node_selector:
        out["nodeSelector"] = node_selector
    if tolerations:
        out["tolerations"] = tolerations
    return out


def job_pod_spec(plan: JobPlan, config: PlatformConfig, name: str) -> JSON:
    """The pods' spec: below notebooks in priority, no service account token, placed."""
    jobs = config.jobs
    volumes = list(plan.volumes)
    if plan.sandbox:
        volumes.append({"name": SANDBOX_VOLUME, "configMap": {"name": sandbox_name(name)}})
    pod_spec: JSON = {
        "restartPolicy": "Never",
        "priorityClassName": jobs.priority_class,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "activeDeadlineSeconds": plan.max_runtime_seconds,
        "containers": [job_container(plan, name)],
        "volumes": volumes,
    }
    if plan.juicefs is not None and jobs.offload.juicefs is not None:
        pod_spec["initContainers"] = [juicefs.sidecar(jobs.offload.juicefs, plan.juicefs)]
    if plan.supplemental_gids:
        pod_spec["securityContext"] = {"supplementalGroups": plan.supplemental_gids}
    return pod_spec | job_placement(plan, config)


def job_manifest(plan: JobPlan, config: PlatformConfig, name: str) -> JSON:
    """The Job: suspended for Kueue, Indexed for several completions, evictions not failures,
    a failing command retried only as often as the plan says (``backoffLimit``)."""
    jobs = config.jobs
    labels = job_labels(plan, config)
    spec: JSON = {
        "suspend": True,
        "completions": plan.completions,
        "parallelism": plan.parallelism,
        "backoffLimit": plan.retries,
        "activeDeadlineSeconds": plan.max_runtime_seconds,
        "ttlSecondsAfterFinished": jobs.ttl_seconds_after_finished,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                }
            ]
        },
        "template": {
            "metadata": {"labels": {USER_LABEL: labels[USER_LABEL], v.MANAGED_BY: MANAGED_BY}},
            "spec": job_pod_spec(plan, config, name),
        },
    }
    if plan.completions > 1 or plan.parallelism > 1:
        spec["completionMode"] = "Indexed"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": jobs.namespace,
            "labels": labels,
            "annotations": job_annotations(plan),
        },
        "spec": spec,
    }


def unreleased(manifest: JSON) -> tuple[JSON, str]:
    """``manifest`` without its queue label (Kueue ignores it), and the queue it waits for."""
    labels = dict(manifest["metadata"]["labels"])
    queue = labels.pop(QUEUE_LABEL)
    return {**manifest, "metadata": {**manifest["metadata"], "labels": labels}}, queue


def release_patch(queue: str) -> JSON:
    """The merge patch that queues an unreleased Job, once everything it needs exists."""
    return {"metadata": {"labels": {QUEUE_LABEL: queue}}}


def is_released(job: JSON) -> bool:
    return QUEUE_LABEL in (job["metadata"].get("labels") or {})


def interrupted_submissions(jobs: list[JSON], now: datetime) -> list[str]:
    """The names of ``jobs`` that an interrupted submission left unreleased: no queue label,
    still suspended and never started, created more than ``SUBMISSION_GRACE_SECONDS`` ago."""
    names = []
    for job in jobs:
        meta = job["metadata"]
        if is_released(job) or not (job.get("spec") or {}).get("suspend"):
            continue
        if (job.get("status") or {}).get("startTime"):
            continue
        created = api_time(meta.get("creationTimestamp"))
        if created is not None and (now - created).total_seconds() > SUBMISSION_GRACE_SECONDS:
            names.append(meta["name"])
    return names


def unfinished_cancels(jobs: list[JSON], workloads: list[JSON]) -> list[JSON]:
    """The Workloads still active of ``jobs`` marked cancelled: a cancel interrupted between
    marking the Job and deactivating its Workload, which Kueue could admit again."""
    cancelled = {
        job["metadata"].get("uid")
        for job in jobs
        if (job["metadata"].get("annotations") or {}).get(CANCELLED)
    }
    return [
        workload
        for workload in workloads
        if (workload["metadata"].get("labels") or {}).get(v.KUEUE_JOB_UID) in cancelled
        and (workload.get("spec") or {}).get("active", True) is not False
    ]


def sandbox_configmap(plan: JobPlan, job: JSON) -> JSON:
    """The sandbox files, owned by the Job (deleted with it)."""
    meta = job["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": sandbox_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {
                v.MANAGED_BY: MANAGED_BY,
                USER_LABEL: meta["labels"][USER_LABEL],
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": dict(plan.sandbox),
    }
