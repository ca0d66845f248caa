"""``meta.k8s.io/v1`` Table responses, which kubectl asks for to print ``get`` output."""

from __future__ import annotations

import datetime
from typing import Any

from ..resources import ResourceType

JSON = dict[str, Any]


def _age(obj: JSON) -> str:
    created = obj["metadata"].get("creationTimestamp")
    if not created:
        return "<unknown>"
    then = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = int((datetime.datetime.now(datetime.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= 120):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _col(name: str, kind: str = "string", priority: int = 0, fmt: str = "") -> JSON:
    return {"name": name, "type": kind, "format": fmt, "description": name, "priority": priority}


def _pod_status(pod: JSON) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status", {})
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state", {})
        if "waiting" in state and state["waiting"].get("reason"):
            return str(state["waiting"]["reason"])
        if "terminated" in state and status.get("phase") not in ("Succeeded", "Failed"):
            return str(state["terminated"].get("reason", "Error"))
    if status.get("phase") == "Succeeded":
        return "Completed"
    if status.get("phase") == "Failed":
        return "Error"
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _row(rt: ResourceType, obj: JSON) -> list[Any]:
    name = obj["metadata"]["name"]
    if rt.kind == "Pod":
        statuses = obj.get("status", {}).get("containerStatuses") or []
        total = len(obj.get("spec", {}).get("containers") or [])
        ready = sum(1 for c in statuses if c.get("ready"))
        restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
        status = obj.get("status", {})
        return [
            name,
            f"{ready}/{total}",
            _pod_status(obj),
            restarts,
            _age(obj),
            status.get("podIP", "<none>"),
            obj.get("spec", {}).get("nodeName", "<none>"),
        ]
    if rt.kind == "Node":
        condition: JSON = next(
            (c for c in obj.get("status", {}).get("conditions") or [] if c.get("type") == "Ready"),
            {},
        )
        state = "Ready" if condition.get("status") == "True" else "NotReady"
        if obj.get("spec", {}).get("unschedulable"):
            state += ",SchedulingDisabled"
        roles = [
            k.split("/", 1)[1]
            for k in obj["metadata"].get("labels", {})
            if k.startswith("node-role.kubernetes.io/")
        ]
        version = obj.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
        return [name, state, ",".join(roles) or "<none>", _age(obj), version]
    if rt.kind == "Job":
        spec, status = obj.get("spec", {}), obj.get("status", {})
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        if conditions.get("Complete") == "True":
            state = "Complete"
        elif conditions.get("Failed") == "True":
            state = "Failed"
        elif spec.get("suspend"):
            state = "Suspended"
        else:
            state = "Running"
        completions = f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}"
        return [name, state, completions, "", _age(obj)]
    return [name, _age(obj)]


def _columns(rt: ResourceType) -> list[JSON]:
    if rt.kind == "Pod":
        return [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "string"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
        ]
    if rt.kind == "Node":
        return [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Roles"),
            _col("Age"),
            _col("Version"),
        ]
    if rt.kind == "Job":
        return [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Completions"),
            _col("Duration"),
            _col("Age"),
        ]
    return [_col("Name", fmt="name"), _col("Age")]


def table(
    rt: ResourceType, objects: list[JSON], resource_version: str, include_object: str
) -> JSON:
    """A Table of ``objects``; rows carry PartialObjectMetadata as kubectl expects."""
    rows = []
    for obj in objects:
        row: JSON = {"cells": _row(rt, obj)}
        if include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": _columns(rt),
        "rows": rows,
    }
