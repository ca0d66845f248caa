"""The Kubernetes objects of a Bunshin job, and the job as the API shows it (pure functions).

A ``batch/v1`` Job, suspended for Kueue (``kueue.x-k8s.io/queue-name``), Indexed when it has
several completions (each pod reads ``JOB_COMPLETION_INDEX``), pods with a negative priority
class that never preempts (notebooks evict them), a ``podFailurePolicy`` ignoring evictions,
requests equal to limits, no service account token, and no owner: it survives its notebook.
The sandbox files go in a ConfigMap owned by the Job. An offloaded job with JuiceFS folders
gets the mount sidecar of ``juicefs`` as its only init container.
"""

from __future__ import annotations

import json
from typing import Any

from ..config import PlatformConfig
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
    """What the user chose freely (not label-safe): username, command, display name."""
    return {
        v.USER: plan.user,
        v.SERVER: plan.server,
        v.SOURCE_POD: plan.source_pod,
        v.SOURCE_POD_UID: plan.source_uid,
        v.COMMAND: json.dumps(plan.command),
        v.DISPLAY_NAME: plan.display_name or "",
    }


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
    """``nodeSelector`` and ``tolerations`` of the pods (see ``platform.placement``)."""
    node_selector = placement.accelerator_node_selector(plan.accelerator)
    tolerations = placement.accelerator_tolerations(plan.accelerator)
    if plan.offload:
        node_selector |= placement.offload_node_selector(config.jobs.offload)
        tolerations.append(placement.offload_toleration(config.jobs.offload))
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
    """The Job: suspended for Kueue, Indexed for several completions, evictions not failures."""
    jobs = config.jobs
    labels = job_labels(plan, config)
    spec: JSON = {
        "suspend": True,
        "completions": plan.completions,
        "parallelism": plan.parallelism,
        "backoffLimit": jobs.backoff_limit,
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


def _condition(obj: JSON | None, kind: str) -> JSON | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def job_status(job: JSON, workload: JSON | None, pods: list[JSON]) -> tuple[str, str]:
    """``(status, reason)``: queued, admitted, running, succeeded, failed or cancelled."""
    meta, spec, status = job["metadata"], job.get("spec") or {}, job.get("status") or {}
    if (meta.get("annotations") or {}).get(CANCELLED):
        return "cancelled", "cancelled by " + meta["annotations"][CANCELLED]
    done = _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet")
    if done:
        return "succeeded", ""
    failed = _condition(job, "Failed") or _condition(job, "FailureTarget")
    if failed:
        return "failed", str(failed.get("message") or failed.get("reason") or "")
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
    if any((p.get("status") or {}).get("phase") == "Running" for p in pods) or int(
        status.get("ready") or 0
    ):
        return "running", _sidecar_trouble(pods)
    return "admitted", _sidecar_trouble(pods) or "pods starting"


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


def job_view(job: JSON, pods: list[JSON], workload: JSON | None) -> JSON:
    """The job object of the API."""
    meta = job["metadata"]
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    status, reason = job_status(job, workload, pods)
    job_status_ = job.get("status") or {}
    try:
        command = json.loads(annotations.get(v.COMMAND, "[]"))
    except ValueError:
        command = []
    accelerator = labels.get(v.ACCELERATOR, v.NO_ACCELERATOR)
    return {
        "id": meta["name"],
        "name": annotations.get(v.DISPLAY_NAME) or meta["name"],
        "user": annotations.get(v.USER, ""),
        "project": labels.get(v.PROJECT, ""),
        "server": annotations.get(v.SERVER, ""),
        "command": command,
        "accelerator": None
        if accelerator == v.NO_ACCELERATOR
        else {
            "name": accelerator,
            "count": int(labels.get(v.ACCELERATOR_COUNT, 1)),
        },
        "offload": labels.get(v.OFFLOAD) == "true",
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
                "phase": (p.get("status") or {}).get("phase"),
                "index": ((p["metadata"].get("annotations") or {}).get(v.JOB_COMPLETION_INDEX)),
            }
            for p in sorted(pods, key=lambda p: p["metadata"]["name"])
        ],
    }
