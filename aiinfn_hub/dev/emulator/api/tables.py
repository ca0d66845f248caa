"""``meta.k8s.io/v1`` Table responses, which kubectl asks for to print ``get`` output.

The columns are those of the real server's printers (pkg/printers/internalversion): kubectl
shows the priority-0 columns, and the priority-1 ones with ``-o wide``. Kinds without a printer
of their own (custom resources) get NAME and AGE.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from ..resources import ResourceType
from .crd_tables import crd_printer

JSON = dict[str, Any]
Row = list[Any]


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """A duration as kubectl prints ages (``apimachinery/pkg/util/duration.HumanDuration``)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"  # clocks a second apart: "now"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // (24 * 365), (hours // 24) % 365
    if years < 8 and days:
        return f"{years}y{days}d"
    return f"{years}y"


def _since(text: str | None) -> str:
    when = _parse_time(text)
    if when is None:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.UTC) - when).total_seconds())


def _age(obj: JSON) -> str:
    return _since(obj["metadata"].get("creationTimestamp"))


def _col(name: str, kind: str = "string", priority: int = 0, fmt: str = "") -> JSON:
    return {"name": name, "type": kind, "format": fmt, "description": name, "priority": priority}


def _name_col() -> JSON:
    return _col("Name", fmt="name")


# -- pods -------------------------------------------------------------------------------------
def _pod_status(pod: JSON) -> str:
    """The STATUS column: a waiting or terminated reason wins over the phase."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    reason = str(status.get("reason") or status.get("phase") or "Unknown")
    for cs in status.get("initContainerStatuses") or []:
        state = cs.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode") == 0:
            continue
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            return f"Init:{state['waiting']['reason']}"
        if "terminated" in state or "waiting" in state or "running" in state:
            total = len((pod.get("spec") or {}).get("initContainers") or [])
            done = sum(
                1
                for c in status.get("initContainerStatuses") or []
                if (c.get("state") or {}).get("terminated", {}).get("exitCode") == 0
            )
            return f"Init:{done}/{total}"
    running = False
    for cs in reversed(status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            terminated = state["terminated"]
            reason = terminated.get("reason") or (
                f"Signal:{terminated['signal']}"
                if terminated.get("signal")
                else f"ExitCode:{terminated.get('exitCode', 0)}"
            )
        elif "running" in state and cs.get("ready"):
            running = True
    if reason == "Completed" and running:
        reason = "Running"
    return reason


def _pod_row(pod: JSON) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    gates = spec.get("readinessGates") or []
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        _pod_status(pod),
        str(restarts),
        _age(pod),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"{len(gates)}/{len(gates)}" if gates else "<none>",
    ]


_POD_COLUMNS = [
    _name_col(),
    _col("Ready"),
    _col("Status"),
    _col("Restarts"),
    _col("Age"),
    _col("IP", priority=1),
    _col("Node", priority=1),
    _col("Nominated Node", priority=1),
    _col("Readiness Gates", priority=1),
]


# -- nodes ------------------------------------------------------------------------------------
def _node_row(node: JSON) -> Row:
    status = node.get("status") or {}
    ready: JSON = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    state = {"True": "Ready", "False": "NotReady"}.get(ready.get("status", ""), "Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next(
            (a["address"] for a in status.get("addresses") or [] if a.get("type") == kind),
            "<none>",
        )

    return [
        node["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        _age(node),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


_NODE_COLUMNS = [
    _name_col(),
    _col("Status"),
    _col("Roles"),
    _col("Age"),
    _col("Version"),
    _col("Internal-IP", priority=1),
    _col("External-IP", priority=1),
    _col("OS-Image", priority=1),
    _col("Kernel-Version", priority=1),
    _col("Container-Runtime", priority=1),
]


# -- jobs -------------------------------------------------------------------------------------
def _job_row(job: JSON) -> Row:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conditions.get("Complete") == "True":
        state = "Complete"
    elif conditions.get("Failed") == "True":
        state = "Failed"
    elif "deletionTimestamp" in job["metadata"]:
        state = "Terminating"
    elif conditions.get("Suspended") == "True" or spec.get("suspend"):
        state = "Suspended"
    else:
        state = "Running"
    completions = spec.get("completions")
    succeeded = status.get("succeeded", 0)
    shown = f"{succeeded}/{completions}" if completions is not None else f"{succeeded}/1 of many"
    start, end = _parse_time(status.get("startTime")), _parse_time(status.get("completionTime"))
    duration = ""
    if start is not None:
        until = end or datetime.datetime.now(datetime.UTC)
        duration = human_duration((until - start).total_seconds())
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    return [
        job["metadata"]["name"],
        state,
        shown,
        duration,
        _age(job),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
    ]


_JOB_COLUMNS = [
    _name_col(),
    _col("Status"),
    _col("Completions"),
    _col("Duration"),
    _col("Age"),
    _col("Containers", priority=1),
    _col("Images", priority=1),
    _col("Selector", priority=1),
]


# -- the rest ---------------------------------------------------------------------------------
def _service_row(svc: JSON) -> Row:
    spec = svc.get("spec") or {}
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress)
    if not external:
        external = "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
        f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [
        svc["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        external,
        ports or "<none>",
        _age(svc),
        selector or "<none>",
    ]


def _event_row(event: JSON) -> Row:
    involved = event.get("involvedObject") or {}
    seen = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event["metadata"].get("creationTimestamp")
    )
    return [
        _since(seen),
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        event.get("message", ""),
    ]


def _pvc_row(pvc: JSON) -> Row:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    capacity = (status.get("capacity") or {}).get("storage", "")
    modes = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX"}
    return [
        pvc["metadata"]["name"],
        status.get("phase", ""),
        spec.get("volumeName", ""),
        capacity,
        ",".join(modes.get(m, m) for m in status.get("accessModes") or []),
        spec.get("storageClassName") or "<unset>",
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(pvc),
    ]


_PRINTERS: dict[str, tuple[list[JSON], Callable[[JSON], Row]]] = {
    "Pod": (_POD_COLUMNS, _pod_row),
    "Node": (_NODE_COLUMNS, _node_row),
    "Job": (_JOB_COLUMNS, _job_row),
    "Service": (
        [
            _name_col(),
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            _col("Age"),
            _col("Selector", priority=1),
        ],
        _service_row,
    ),
    "Namespace": (
        [_name_col(), _col("Status"), _col("Age")],
        lambda ns: [
            ns["metadata"]["name"],
            (ns.get("status") or {}).get("phase", ""),
            _age(ns),
        ],
    ),
    "ConfigMap": (
        [_name_col(), _col("Data", "integer"), _col("Age")],
        lambda cm: [
            cm["metadata"]["name"],
            len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
            _age(cm),
        ],
    ),
    "Secret": (
        [_name_col(), _col("Type"), _col("Data", "integer"), _col("Age")],
        lambda s: [s["metadata"]["name"], s.get("type", ""), len(s.get("data") or {}), _age(s)],
    ),
    "ServiceAccount": (
        [_name_col(), _col("Secrets", "integer"), _col("Age")],
        lambda sa: [sa["metadata"]["name"], len(sa.get("secrets") or []), _age(sa)],
    ),
    "Event": (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        _event_row,
    ),
    "PersistentVolumeClaim": (
        [
            _name_col(),
            _col("Status"),
            _col("Volume"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _col("Age"),
        ],
        _pvc_row,
    ),
    "PriorityClass": (
        [_name_col(), _col("Value", "integer"), _col("Global-Default", "boolean"), _col("Age")],
        lambda pc: [
            pc["metadata"]["name"],
            pc.get("value", 0),
            bool(pc.get("globalDefault")),
            _age(pc),
        ],
    ),
}
_DEFAULT_PRINTER: tuple[list[JSON], Callable[[JSON], Row]] = (
    [_name_col(), _col("Age")],
    lambda obj: [obj["metadata"]["name"], _age(obj)],
)


def table(
    rt: ResourceType,
    objects: list[JSON],
    resource_version: str,
    include_object: str,
    printer_columns: list[JSON] | None = None,
) -> JSON:
    """A Table of ``objects``; rows carry PartialObjectMetadata unless ``includeObject=None``.

    ``includeObject=Object`` embeds the whole object, as kubectl asks for with some outputs.
    ``printer_columns``: a CRD kind's ``additionalPrinterColumns`` (None for other kinds).
    """
    if printer_columns is not None:
        columns, row_of = crd_printer(printer_columns, _since)
    else:
        columns, row_of = _PRINTERS.get(rt.kind, _DEFAULT_PRINTER)
    rows = []
    for obj in objects:
        row: JSON = {"cells": row_of(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
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
        "columnDefinitions": columns,
        "rows": rows,
    }
