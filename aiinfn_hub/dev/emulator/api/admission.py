"""Defaulting and admission on create, as the real API server's defaulters and plugins do.

Pods get the scheduler, restart, DNS, service account, priority and toleration defaults and a
Pending status with their QoS class; Jobs get their selector and pod-template labels; Services
a cluster IP; Secrets fold ``stringData`` into ``data``.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
from typing import Any

from ..errors import ApiError
from ..resources import JOBS, PODS, PRIORITYCLASSES, SERVICES, ResourceType
from ..store import Store

JSON = dict[str, Any]
_SERVICE_NET = ipaddress.ip_network("10.96.0.0/12")
_service_ips = itertools.count(10)
DEFAULT_TOLERATIONS = [
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]


def default_on_create(store: Store, rt: ResourceType, obj: JSON) -> None:
    """Apply the defaults of ``rt`` to a new object in place (403 for admission refusals)."""
    if rt.kind == "Pod":
        _default_pod_spec(obj.setdefault("spec", {}))
        _admit_pod(store, obj)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj["spec"])}
    elif rt.kind == "Job":
        _default_job(obj)
    elif rt.kind == "Service":
        _default_service(obj.setdefault("spec", {}))
    elif rt.kind == "Secret":
        fold_string_data(obj)
        obj.setdefault("type", "Opaque")
    elif rt.kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif rt.kind == "PersistentVolumeClaim":
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        obj["status"] = {"phase": "Pending"}
    elif rt.kind == "PriorityClass":
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


def fold_string_data(obj: JSON) -> None:
    """Secrets: ``stringData`` is write-only sugar merged into base64 ``data``."""
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _default_container(container: JSON) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = container.get("image", "")
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    resources = container["resources"]
    # requests default to limits when only limits are given
    if resources.get("limits"):
        requests = resources.setdefault("requests", {})
        for key, value in resources["limits"].items():
            requests.setdefault(key, value)


def _default_pod_spec(spec: JSON) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or []:
            _default_container(container)
    for volume in spec.get("volumes") or []:
        for source in ("secret", "configMap"):
            if source in volume:
                volume[source].setdefault("defaultMode", 420)
        if "emptyDir" in volume and volume["emptyDir"] is None:
            volume["emptyDir"] = {}


def _admit_pod(store: Store, pod: JSON) -> None:
    spec = pod["spec"]
    name = pod["metadata"].get("name") or pod["metadata"].get("generateName", "")
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = sa
    class_name = spec.get("priorityClassName")
    if class_name:
        pc = store.get(PRIORITYCLASSES, None, class_name)
        if pc is None:
            raise ApiError.forbidden(
                f'pods "{name}" is forbidden: no PriorityClass with name {class_name} was found'
            )
        spec["priority"] = pc["value"]
        spec["preemptionPolicy"] = pc.get("preemptionPolicy", "PreemptLowerPriority")
    else:
        default = next((pc for pc in store.list(PRIORITYCLASSES) if pc.get("globalDefault")), None)
        if default is not None:
            spec["priorityClassName"] = default["metadata"]["name"]
            spec["priority"] = default["value"]
            spec.setdefault(
                "preemptionPolicy", default.get("preemptionPolicy", "PreemptLowerPriority")
            )
        else:
            spec.setdefault("priority", 0)
            spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for default_toleration in DEFAULT_TOLERATIONS:
        if not any(
            t.get("key") == default_toleration["key"] and t.get("effect") in (None, "NoExecute")
            for t in tolerations
        ):
            tolerations.append(dict(default_toleration))


def qos_class(spec: JSON) -> str:
    """Guaranteed, Burstable or BestEffort, as the kubelet computes it."""
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for res in ("cpu", "memory"):
            if res not in limits or requests.get(res, limits[res]) != limits[res]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _default_job(job: JSON) -> None:
    spec = job.setdefault("spec", {})
    uid = job["metadata"]["uid"]
    name = job["metadata"]["name"]
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    spec.setdefault("manualSelector", None)
    if spec["manualSelector"] is None:
        del spec["manualSelector"]
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    labels.update(
        {
            "batch.kubernetes.io/controller-uid": uid,
            "controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "job-name": name,
        }
    )
    _default_pod_spec(template.setdefault("spec", {}))
    job["status"] = {}


def _default_service(spec: JSON) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None":
        spec.setdefault("clusterIP", str(_SERVICE_NET[next(_service_ips)]))
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def needs_uid_first(rt: ResourceType) -> bool:
    """Jobs derive their selector from their own uid, so defaulting runs after it is known."""
    return rt.key == JOBS.key


# the kinds whose main-resource writes keep the stored status (status comes via /status)
STATUS_KINDS = {PODS.key, JOBS.key, SERVICES.key}
