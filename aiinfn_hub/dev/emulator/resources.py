"""The resource types the emulator serves: group, versions, kind, plural, scope, field labels.

This table drives discovery (``/api``, ``/apis``), routing and field-selector validation, so a new
kind is one entry here. It is what a new cluster serves; ``kinds.ServedKinds`` adds the kinds of
the CRDs applied to it (and lets a CRD replace a built-in custom kind such as Kueue's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (e.g. ``pods`` in the core group, ``jobs`` in ``batch``)."""

    group: str
    versions: tuple[str, ...]
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    # field labels usable in fieldSelector besides metadata.name and metadata.namespace
    field_labels: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # ``metadata.generation`` is kept (and bumped on spec changes) for these kinds
    has_generation: bool = True
    # default deletion propagation when the client does not say (batch/v1 Jobs orphan)
    default_propagation: str = "Background"
    custom: bool = False
    verbs: tuple[str, ...] = field(
        default=(
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        )
    )

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: all served versions of a resource share one store."""
        return (self.group, self.plural)

    @property
    def qualified_plural(self) -> str:
        """``pods`` or ``jobs.batch``: the name used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def api_version(self, version: str | None = None) -> str:
        """``v1`` or ``batch/v1``."""
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v

    def all_field_labels(self) -> frozenset[str]:
        base = {"metadata.name"}
        if self.namespaced:
            base.add("metadata.namespace")
        return frozenset(base | set(self.field_labels))


_CORE = ""
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
_KUEUE_VERSIONS = ("v1beta1", "v1beta2")

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        _CORE,
        ("v1",),
        "Namespace",
        "namespaces",
        False,
        "namespace",
        ("ns",),
        field_labels=("status.phase",),
        subresources=("status",),
        has_generation=False,
    ),
    ResourceType(
        _CORE,
        ("v1",),
        "Node",
        "nodes",
        False,
        "node",
        ("no",),
        field_labels=("spec.unschedulable",),
        subresources=("status",),
        has_generation=False,
    ),
    ResourceType(
        _CORE,
        ("v1",),
        "Pod",
        "pods",
        True,
        "pod",
        ("po",),
        field_labels=(
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
        subresources=("status", "log", "binding", "eviction", "attach", "exec", "portforward"),
        categories=("all",),
    ),
    ResourceType(
        _CORE,
        ("v1",),
        "Service",
        "services",
        True,
        "service",
        ("svc",),
        subresources=("status",),
        categories=("all",),
        has_generation=False,
    ),
    ResourceType(
        _CORE,
        ("v1",),
        "Secret",
        "secrets",
        True,
        "secret",
        field_labels=("type",),
        has_generation=False,
    ),
    ResourceType(
        _CORE, ("v1",), "ConfigMap", "configmaps", True, "configmap", ("cm",), has_generation=False
    ),
    ResourceType(
        _CORE,
        ("v1",),
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        "persistentvolumeclaim",
        ("pvc",),
        subresources=("status",),
        has_generation=False,
    ),
    ResourceType(
        _CORE,
        ("v1",),
        "Event",
        "events",
        True,
        "event",
        ("ev",),
        field_labels=_EVENT_FIELDS,
        has_generation=False,
    ),
    ResourceType(
        _CORE,
        ("v1",),
        "ServiceAccount",
        "serviceaccounts",
        True,
        "serviceaccount",
        ("sa",),
        has_generation=False,
    ),
    ResourceType(
        "batch",
        ("v1",),
        "Job",
        "jobs",
        True,
        "job",
        field_labels=("status.successful",),
        subresources=("status",),
        categories=("all",),
        default_propagation="Orphan",
    ),
    ResourceType(
        "scheduling.k8s.io",
        ("v1",),
        "PriorityClass",
        "priorityclasses",
        False,
        "priorityclass",
        ("pc",),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        ("v1",),
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        "customresourcedefinition",
        ("crd", "crds"),
        subresources=("status",),
        categories=("api-extensions",),
    ),
    ResourceType(
        "rbac.authorization.k8s.io", ("v1",), "Role", "roles", True, "role", has_generation=False
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        ("v1",),
        "RoleBinding",
        "rolebindings",
        True,
        "rolebinding",
        has_generation=False,
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        ("v1",),
        "ClusterRole",
        "clusterroles",
        False,
        "clusterrole",
        has_generation=False,
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        ("v1",),
        "ClusterRoleBinding",
        "clusterrolebindings",
        False,
        "clusterrolebinding",
        has_generation=False,
    ),
    ResourceType(
        "networking.k8s.io",
        ("v1",),
        "NetworkPolicy",
        "networkpolicies",
        True,
        "networkpolicy",
        ("netpol",),
    ),
    # what the z2jh chart renders besides the kinds above: stored and validated (no controller
    # acts on them: a Deployment here starts no pods)
    ResourceType(
        "apps",
        ("v1",),
        "Deployment",
        "deployments",
        True,
        "deployment",
        ("deploy",),
        subresources=("status",),
        categories=("all",),
    ),
    ResourceType(
        "policy",
        ("v1",),
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        "poddisruptionbudget",
        ("pdb",),
        subresources=("status",),
    ),
    ResourceType(
        "networking.k8s.io",
        ("v1",),
        "Ingress",
        "ingresses",
        True,
        "ingress",
        ("ing",),
        subresources=("status",),
    ),
    ResourceType(
        "storage.k8s.io",
        ("v1",),
        "StorageClass",
        "storageclasses",
        False,
        "storageclass",
        ("sc",),
        has_generation=False,
    ),
    # Kueue's kinds, served before any CRD is applied (see ``kinds``): stored as given until
    # Kueue's CRDs replace them
    ResourceType(
        "kueue.x-k8s.io",
        _KUEUE_VERSIONS,
        "ResourceFlavor",
        "resourceflavors",
        False,
        "resourceflavor",
        ("flavor", "flavors", "rf"),
        custom=True,
    ),
    ResourceType(
        "kueue.x-k8s.io",
        _KUEUE_VERSIONS,
        "ClusterQueue",
        "clusterqueues",
        False,
        "clusterqueue",
        ("cq",),
        subresources=("status",),
        custom=True,
    ),
    ResourceType(
        "kueue.x-k8s.io",
        _KUEUE_VERSIONS,
        "LocalQueue",
        "localqueues",
        True,
        "localqueue",
        ("queue", "queues", "lq"),
        subresources=("status",),
        custom=True,
    ),
    ResourceType(
        "kueue.x-k8s.io",
        _KUEUE_VERSIONS,
        "Workload",
        "workloads",
        True,
        "workload",
        ("wl",),
        subresources=("status",),
        custom=True,
    ),
    ResourceType(
        "kueue.x-k8s.io",
        _KUEUE_VERSIONS,
        "WorkloadPriorityClass",
        "workloadpriorityclasses",
        False,
        "workloadpriorityclass",
        custom=True,
    ),
)

_BY_KEY = {rt.key: rt for rt in RESOURCE_TYPES}


def resource_type(group: str, plural: str) -> ResourceType | None:
    """Look up a served resource by API group and plural name."""
    return _BY_KEY.get((group, plural))


def by_kind(kind: str) -> ResourceType:
    """The resource for a kind name, e.g. ``Pod`` (kinds are unique in our table)."""
    for rt in RESOURCE_TYPES:
        if rt.kind == kind:
            return rt
    raise KeyError(kind)


PODS = _BY_KEY[("", "pods")]
NODES = _BY_KEY[("", "nodes")]
NAMESPACES = _BY_KEY[("", "namespaces")]
EVENTS = _BY_KEY[("", "events")]
SERVICES = _BY_KEY[("", "services")]
SECRETS = _BY_KEY[("", "secrets")]
CONFIGMAPS = _BY_KEY[("", "configmaps")]
PVCS = _BY_KEY[("", "persistentvolumeclaims")]
SERVICEACCOUNTS = _BY_KEY[("", "serviceaccounts")]
JOBS = _BY_KEY[("batch", "jobs")]
PRIORITYCLASSES = _BY_KEY[("scheduling.k8s.io", "priorityclasses")]
CRDS = _BY_KEY[("apiextensions.k8s.io", "customresourcedefinitions")]


def collection_path(manifest: Mapping[str, Any]) -> str | None:
    """Where ``manifest`` is created (``POST``), as ``kubectl apply`` finds it, e.g.
    ``/apis/batch/v1/namespaces/ml/jobs``; None for a kind the emulator does not serve."""
    group, _, version = str(manifest.get("apiVersion", "")).rpartition("/")
    try:
        rt = by_kind(str(manifest.get("kind", "")))
    except KeyError:
        return None
    if rt.group != group or version not in rt.versions:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    namespace = (manifest.get("metadata") or {}).get("namespace")
    scope = f"/namespaces/{namespace}" if rt.namespaced and namespace else ""
    return f"{prefix}{scope}/{rt.plural}"
