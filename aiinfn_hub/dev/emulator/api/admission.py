"""Defaulting and admission, as the real API server's defaulters and admission plugins do.

Two steps, as in kube-apiserver:

- ``apply_defaults``: the per-version defaulters (``SetDefaults_Pod``, ``SetDefaults_Job``...),
  run on every decoded body, creates and updates alike;
- ``admit_create``: what admission plugins and create strategies add to a new object (service
  account, priority, default tolerations, the Job selector, a Service's cluster IP, a fresh
  status).

``default_on_create`` runs both; controllers that create objects straight in the store (the Job
controller's pods) call it so their objects look like ones that went through the API.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import itertools
from typing import Any

from ....kubemodel.quantity import parse_quantity
from ..crds import default_definition, initial_status
from ..errors import ApiError
from ..resources import CRDS, JOBS, NAMESPACES, PODS, PRIORITYCLASSES, SERVICES, ResourceType
from ..store import Store

JSON = dict[str, Any]
_SERVICE_NET = ipaddress.ip_network("10.96.0.0/12")
# .1 is the kubernetes service's address on a real cluster
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
# resources that take part in the pod's QoS class (hugepages too; GPUs and other extended
# resources do not)
_QOS_RESOURCES = ("cpu", "memory")


def default_on_create(store: Store, rt: ResourceType, obj: JSON) -> None:
    """Defaults plus create-time admission of ``rt`` on a new object, in place.

    Raises ``ApiError`` 403 when an admission plugin refuses the object (unknown
    PriorityClass). A Job needs its ``metadata.uid`` set first: its selector is made from it.
    """
    apply_defaults(rt, obj)
    admit_create(store, rt, obj)


# -- defaulters -------------------------------------------------------------------------------
def apply_defaults(rt: ResourceType, obj: JSON) -> None:
    """The versioned defaulters of ``rt``, applied to a decoded body in place."""
    if rt.key == PODS.key:
        _default_pod_spec(_dict_at(obj, "spec"))
    elif rt.key == JOBS.key:
        _default_job_spec(_dict_at(obj, "spec"))
    elif rt.key == SERVICES.key:
        _default_service_spec(_dict_at(obj, "spec"))
    elif rt.kind == "Secret":
        fold_string_data(obj)
        obj.setdefault("type", "Opaque")
    elif rt.key == NAMESPACES.key:
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif rt.kind == "PersistentVolumeClaim":
        _dict_at(obj, "spec").setdefault("volumeMode", "Filesystem")
    elif rt.key == PRIORITYCLASSES.key:
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif rt.kind == "Event":
        _default_event(obj)
    elif rt.key == CRDS.key:
        default_definition(obj)


def _default_event(event: JSON) -> None:
    """Fields Go always encodes: zero timestamps as null, empty strings and structs as such.

    Clients depend on it: KubeSpawner's event reflector reads ``lastTimestamp`` and
    ``eventTime`` from every event.
    """
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        event.setdefault(key, None)
    event.setdefault("reportingComponent", "")
    event.setdefault("reportingInstance", "")
    if not isinstance(event.get("source"), dict):
        event["source"] = {}
    if not isinstance(event.get("involvedObject"), dict):
        event["involvedObject"] = {}


def fold_string_data(obj: JSON) -> None:
    """Secrets: ``stringData`` is write-only sugar merged into base64 ``data``."""
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.get("data") or {}
        obj["data"] = data
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _dict_at(obj: JSON, key: str) -> JSON:
    value = obj.get(key)
    if not isinstance(value, dict):
        value = {}
        obj[key] = value
    return value


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")


def _default_container(container: JSON) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = str(container.get("image") or "")
    last = image.rsplit("/", 1)[-1]
    untagged_or_latest = "@" not in image and (":" not in last or last.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if untagged_or_latest else "IfNotPresent")
    if not isinstance(container.get("resources"), dict):
        container["resources"] = {}
    resources = container["resources"]
    # requests default to the limits given (SetDefaults_Pod)
    if resources.get("limits"):
        requests = resources.get("requests") or {}
        for key, value in resources["limits"].items():
            requests.setdefault(key, value)
        resources["requests"] = requests
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe))


def _default_pod_spec(spec: JSON) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or []:
            if isinstance(container, dict):
                _default_container(container)
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in ("secret", "configMap", "downwardAPI", "projected"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)
        if "emptyDir" in volume and volume["emptyDir"] is None:
            volume["emptyDir"] = {}


def _default_job_spec(spec: JSON) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )
    if spec.get("manualSelector") is None:
        spec.pop("manualSelector", None)
    template = _dict_at(spec, "template")
    _default_pod_spec(_dict_at(template, "spec"))


def _default_service_spec(spec: JSON) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


# -- create-time admission --------------------------------------------------------------------
def admit_create(store: Store, rt: ResourceType, obj: JSON) -> None:
    """What admission plugins and create strategies add to a new object."""
    if rt.key == PODS.key:
        _admit_pod(store, obj)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj["spec"])}
    elif rt.key == JOBS.key:
        _admit_job(obj)
        obj["status"] = {}
    elif rt.key == SERVICES.key:
        _allocate_cluster_ip(obj["spec"])
        obj["status"] = {"loadBalancer": {}}
    elif rt.key == NAMESPACES.key:
        obj["status"] = {"phase": "Active"}
        labels = obj["metadata"].get("labels") or {}
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj["metadata"]["labels"] = labels
    elif rt.kind == "PersistentVolumeClaim":
        obj["status"] = {"phase": "Pending"}
    elif rt.key == CRDS.key:
        obj["status"] = initial_status(obj)


def _admit_pod(store: Store, pod: JSON) -> None:
    spec = pod["spec"]
    name = pod["metadata"].get("name") or pod["metadata"].get("generateName", "")
    # ServiceAccount plugin: the deprecated serviceAccount mirrors serviceAccountName
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = account
    _admit_priority(store, spec, name)
    # DefaultTolerationSeconds plugin: tolerate a not-ready/unreachable node for 5 minutes
    tolerations = spec.get("tolerations") or []
    for default_toleration in DEFAULT_TOLERATIONS:
        if not any(
            isinstance(t, dict)
            and (t.get("key") == default_toleration["key"] or _tolerates_everything(t))
            and t.get("effect") in (None, "", "NoExecute")
            for t in tolerations
        ):
            tolerations.append(dict(default_toleration))
    spec["tolerations"] = tolerations


def _admit_priority(store: Store, spec: JSON, name: str) -> None:
    """The Priority plugin: priority and preemption policy come from the PriorityClass only."""
    class_name = spec.get("priorityClassName")
    if class_name:
        pc = store.get(PRIORITYCLASSES, None, class_name)
        if pc is None:
            raise ApiError.forbidden(
                f'pods "{name}" is forbidden: no PriorityClass with name {class_name} was found'
            )
    else:
        pc = next((c for c in store.list(PRIORITYCLASSES) if c.get("globalDefault")), None)
    priority = int(pc["value"]) if pc is not None else 0
    policy = (pc or {}).get("preemptionPolicy") or "PreemptLowerPriority"
    given = spec.get("priority")
    if given is not None and given != priority:
        raise ApiError.forbidden(
            f'pods "{name}" is forbidden: the integer value of priority ({given}) must not be '
            f"provided in pod spec; priority admission controller computed {priority} from the "
            "given PriorityClass name"
        )
    given_policy = spec.get("preemptionPolicy")
    if given_policy is not None and given_policy != policy:
        raise ApiError.forbidden(
            f'pods "{name}" is forbidden: the string value of PreemptionPolicy ({given_policy}) '
            f"must not be provided in pod spec; priority admission controller computed {policy} "
            "from the given PriorityClass name"
        )
    if pc is not None:
        spec["priorityClassName"] = pc["metadata"]["name"]
    spec["priority"] = priority
    spec["preemptionPolicy"] = policy


def _tolerates_everything(toleration: JSON) -> bool:
    return not toleration.get("key") and toleration.get("operator") == "Exists"


def _admit_job(job: JSON) -> None:
    """The Job strategy: a selector on the Job's own uid and the matching template labels."""
    spec = job["spec"]
    uid = job["metadata"]["uid"]
    name = job["metadata"]["name"]
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec["template"]
    meta = _dict_at(template, "metadata")
    labels = meta.get("labels") or {}
    labels.update(
        {
            "batch.kubernetes.io/controller-uid": uid,
            "controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "job-name": name,
        }
    )
    meta["labels"] = labels


def _allocate_cluster_ip(spec: JSON) -> None:
    if spec.get("type") == "ExternalName":
        return
    if spec.get("clusterIP") != "None":
        spec.setdefault("clusterIP", str(_SERVICE_NET[next(_service_ips)]))
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")


# -- updates ----------------------------------------------------------------------------------
def carry_over_on_update(rt: ResourceType, old: JSON, new: JSON) -> None:
    """Keep what create-time admission set when an update body leaves it out.

    Clients that PUT a hand-written body (not a read-modify-write) omit the service account,
    priority, default tolerations, a Job's generated selector and template labels, or a
    Service's allocated IPs. The real server restores the allocated IPs itself and would
    otherwise refuse the update as changing immutable fields; keeping them lets such updates
    through when nothing else changed.
    """
    old_spec, new_spec = old.get("spec") or {}, new.get("spec")
    if not isinstance(new_spec, dict):
        return
    if rt.key == PODS.key:
        for key in ("serviceAccountName", "serviceAccount", "priority", "preemptionPolicy"):
            if key in old_spec:
                new_spec.setdefault(key, old_spec[key])
        if "priorityClassName" in old_spec:
            new_spec.setdefault("priorityClassName", old_spec["priorityClassName"])
        if "tolerations" not in new_spec and "tolerations" in old_spec:
            new_spec["tolerations"] = copy.deepcopy(old_spec["tolerations"])
    elif rt.key == JOBS.key:
        if "selector" not in new_spec and "selector" in old_spec:
            new_spec["selector"] = copy.deepcopy(old_spec["selector"])
        old_labels = ((old_spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        template = _dict_at(new_spec, "template")
        meta = _dict_at(template, "metadata")
        labels = meta.get("labels") or {}
        for key in (
            "batch.kubernetes.io/controller-uid",
            "controller-uid",
            "batch.kubernetes.io/job-name",
            "job-name",
        ):
            if key in old_labels:
                labels.setdefault(key, old_labels[key])
        if labels:
            meta["labels"] = labels
    elif rt.key == SERVICES.key:
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key in old_spec:
                new_spec.setdefault(key, copy.deepcopy(old_spec[key]))


# -- QoS --------------------------------------------------------------------------------------
def qos_class(spec: JSON) -> str:
    """Guaranteed, Burstable or BestEffort, computed as Kubernetes does (``GetPodQOS``).

    Only cpu, memory and hugepages count. Requests and limits are summed over all containers (init
    containers included); Guaranteed needs every container to limit both, and the sums of
    requests and limits to be equal.
    """
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    for container in containers:
        resources = container.get("resources") or {}
        for name, value in (resources.get("requests") or {}).items():
            quantity = _positive_quantity(name, value)
            if quantity is not None:
                requests[name] = requests.get(name, 0) + quantity
        limited = set()
        for name, value in (resources.get("limits") or {}).items():
            quantity = _positive_quantity(name, value)
            if quantity is not None:
                limited.add(name)
                limits[name] = limits.get(name, 0) + quantity
        if not limited.issuperset(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    equal = all(limits.get(name) == value for name, value in requests.items())
    if guaranteed and equal and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _positive_quantity(name: str, value: Any) -> Any:
    if name not in _QOS_RESOURCES and not name.startswith("hugepages-"):
        return None
    try:
        quantity = parse_quantity(value)
    except ValueError:
        return None
    return quantity if quantity > 0 else None
