"""Pure pieces of the Job controller: the pods it creates, completion indexes and conditions."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterable
from typing import Any

from ..store import now_rfc3339

JSON = dict[str, Any]
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"


def build_job_pod(job: JSON, index: int | None) -> JSON:
    """A pod from the Job's template, owned by the Job and tracked by its finalizer.

    Indexed Jobs get the completion index as annotation, label, ``JOB_COMPLETION_INDEX`` in
    every container (from the annotation, through the downward API) and hostname
    ``<job>-<index>``.
    """
    meta = job["metadata"]
    template = copy.deepcopy(job["spec"].get("template") or {})
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {})
    annotations = dict(template_meta.get("annotations") or {})
    spec = template.get("spec") or {}
    prefix = f"{meta['name']}-"
    if index is not None:
        prefix = f"{meta['name']}-{index}-"
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        spec.setdefault("hostname", f"{meta['name']}-{index}")
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            env = container.setdefault("env", [])
            if not any(var.get("name") == COMPLETION_INDEX_ENV for var in env):
                env.append(
                    {
                        "name": COMPLETION_INDEX_ENV,
                        "valueFrom": {
                            "fieldRef": {
                                "apiVersion": "v1",
                                "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']",
                            }
                        },
                    }
                )
    pod_meta: JSON = {
        "generateName": prefix,
        "namespace": meta["namespace"],
        "labels": labels,
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
        "finalizers": [TRACKING_FINALIZER],
    }
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def pod_index(pod: JSON, completions: int) -> int | None:
    """The completion index of a pod of an Indexed Job, if valid."""
    raw = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    if raw is None or not raw.isdigit():
        return None
    index = int(raw)
    return index if index < completions else None


def format_indexes(indexes: Iterable[int]) -> str:
    """``{0, 1, 2, 5}`` -> ``"0-2,5"`` (the ``completedIndexes`` format)."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    start = prev = None
    for index in ordered:
        if start is None:
            start = prev = index
        elif prev is not None and index == prev + 1:
            prev = index
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = index
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def parse_indexes(text: str | None) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def condition_true(status: JSON, kind: str) -> JSON | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def set_condition(status: JSON, kind: str, state: str, reason: str, message: str) -> bool:
    """Add or update a Job condition; True when something changed."""
    now = now_rfc3339()
    conditions = status.setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") == kind:
            if condition.get("status") == state and condition.get("reason") == reason:
                return False
            condition.update(
                status=state,
                reason=reason,
                message=message,
                lastProbeTime=now,
                lastTransitionTime=now,
            )
            return True
    conditions.append(
        {
            "type": kind,
            "status": state,
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
    )
    return True


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return parsed.replace(tzinfo=datetime.UTC)


# -- podFailurePolicy (pkg/controller/job/pod_failure_policy.go) -------------------------------
def match_pod_failure_policy(policy: JSON | None, pod: JSON) -> tuple[str | None, bool, str | None]:
    """A failed pod against the Job's ``podFailurePolicy``, as matchPodFailurePolicy does.

    Returns the Job failure message (a ``FailJob`` rule matched), whether the failure counts
    towards ``backoffLimit`` (not when an ``Ignore`` rule matched) and the action matched.
    The first matching rule wins; ``onExitCodes`` looks at terminated containers with a
    non-zero exit code (app containers, then init containers), ``onPodConditions`` at the
    pod's conditions (a pattern's ``status`` defaults to ``True``). ``FailIndex`` counts the
    failure (backoffLimitPerIndex is not modelled).
    """
    if not policy:
        return None, True, None
    namespace, name = pod["metadata"].get("namespace", ""), pod["metadata"]["name"]
    status = pod.get("status") or {}
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        message = None
        if rule.get("onExitCodes") is not None:
            container = _match_exit_codes(status, rule["onExitCodes"])
            if container is None:
                continue
            code = container["state"]["terminated"]["exitCode"]
            message = (
                f"Container {container['name']} for pod {namespace}/{name} failed with exit "
                f"code {code} matching {action} rule at index {index}"
            )
        elif rule.get("onPodConditions") is not None:
            condition = _match_conditions(status, rule["onPodConditions"])
            if condition is None:
                continue
            message = (
                f"Pod {namespace}/{name} has condition {condition['type']} matching {action} "
                f"rule at index {index}"
            )
        else:
            continue
        if action == "Ignore":
            return None, False, action
        if action == "FailJob":
            return message, True, action
        if action in ("Count", "FailIndex"):
            return None, True, action
    return None, True, None


def _match_exit_codes(status: JSON, requirement: JSON) -> JSON | None:
    wanted = requirement.get("containerName")
    values = {int(v) for v in requirement.get("values") or []}
    operator = requirement.get("operator")
    for key in ("containerStatuses", "initContainerStatuses"):
        for container in status.get(key) or []:
            terminated = (container.get("state") or {}).get("terminated")
            if not terminated or (wanted and container.get("name") != wanted):
                continue
            code = int(terminated.get("exitCode") or 0)
            if code == 0:
                continue
            if (operator == "In" and code in values) or (
                operator == "NotIn" and code not in values
            ):
                return container  # type: ignore[no-any-return]
    return None


def _match_conditions(status: JSON, patterns: list[JSON]) -> JSON | None:
    for condition in status.get("conditions") or []:
        for pattern in patterns:
            if condition.get("type") == pattern.get("type") and condition.get(
                "status"
            ) == pattern.get("status", "True"):
                return condition  # type: ignore[no-any-return]
    return None
