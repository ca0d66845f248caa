"""The cluster file: which nodes the emulated cluster has, and what it starts with.

A YAML document (camelCase keys, unknown keys rejected)::

    kubernetesVersion: v1.33.2
    namespaces: [default, jupyterhub]
    nodes:
      - name: server-1
        labels: {nvidia.com/gpu.product: Tesla-T4}
        taints: [{key: reserved, value: cms, effect: NoSchedule}]
        capacity: {cpu: "64", memory: 512Gi, nvidia.com/gpu: "4"}
    crds: []           # CustomResourceDefinitions installed first (e.g. Kueue's, see ``kinds``)
    objects: []        # any other manifests to create at start (PriorityClasses, Kueue queues...)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

JSON = dict[str, Any]
DEFAULT_KUBERNETES_VERSION = "v1.33.2"
# nodes' addresses are only data (nothing connects to them); they sit in loopback space so no
# tool ever sends traffic off this machine by following one
_NODE_ADDRESS_PREFIX = "127.1.0."
# a virtual node whose "remote" pods run here, as local processes (see NodeSpec.local_site)
LOCAL_SITE_ANNOTATION = "emulator.aiinfn-hub/local-site"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Taint(_Model):
    """A node taint, as in ``node.spec.taints``."""

    key: str = Field(description="Taint key, e.g. `reserved`.")
    value: str = Field("", description="Taint value, e.g. the project a node is reserved for.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        description="What the taint does to pods that do not tolerate it."
    )


class NodeSpec(_Model):
    """One node of the emulated cluster."""

    name: str = Field(description="Node name, e.g. `server-1`.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels, e.g. `nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB`; "
        "`kubernetes.io/hostname`, `kubernetes.io/os` and `kubernetes.io/arch` are added.",
    )
    taints: list[Taint] = Field(default_factory=list, description="Node taints.")
    unschedulable: bool = Field(False, description="Cordoned: no new pods are scheduled here.")
    capacity: dict[str, str | int] = Field(
        description="Resources, e.g. `{cpu: '64', memory: 512Gi, pods: '110', "
        "nvidia.com/gpu: '4'}`; `pods` defaults to 110."
    )
    allocatable: dict[str, str | int] | None = Field(
        None, description="What pods may use; defaults to the capacity."
    )
    ready: bool = Field(True, description="Whether the node reports Ready.")
    local_site: bool = Field(
        False,
        description="For a virtual node (interLink): its remote site is this machine, so in "
        "local-process mode its pods run as local processes like any node's (by default a "
        "virtual node's pods are simulated).",
    )


class ClusterSpec(_Model):
    """The whole cluster file."""

    kubernetes_version: str = Field(
        DEFAULT_KUBERNETES_VERSION, description="Version reported by `/version` and the nodes."
    )
    namespaces: list[str] = Field(
        default_factory=lambda: ["default"],
        description="Namespaces created at start (`default` and `kube-system` always exist).",
    )
    nodes: list[NodeSpec] = Field(default_factory=list, description="The cluster's nodes.")
    crds: list[JSON] = Field(
        default_factory=list,
        description="CustomResourceDefinitions installed before the objects, e.g. Kueue's "
        "(`aiinfn-dev emulator --crds DIR` adds a folder of them). A CRD for one of Kueue's "
        "kinds replaces the emulator's built-in, schema-less kind: its objects are then "
        "pruned, defaulted and validated as a real cluster with that CRD would.",
    )
    objects: list[JSON] = Field(
        default_factory=list,
        description="Other manifests created at start, e.g. PriorityClasses or Kueue queues.",
    )


def load_cluster_file(path: str | Path) -> ClusterSpec:
    """Read and validate a cluster file; errors name the bad key."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ValueError(f"{path}: invalid cluster file:\n  " + "\n  ".join(lines)) from exc


def load_crds(path: str | Path) -> list[JSON]:
    """The CustomResourceDefinitions of a YAML file or of every ``*.yaml``/``*.yml`` file of a
    folder (sorted by name); ValueError names a file that is not YAML or holds another kind."""
    where = Path(path)
    files = (
        sorted(p for p in where.iterdir() if p.suffix in (".yaml", ".yml"))
        if where.is_dir()
        else [where]
    )
    crds: list[JSON] = []
    for file in files:
        try:
            documents = [d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d]
        except yaml.YAMLError as exc:
            raise ValueError(f"{file}: not valid YAML: {exc}") from exc
        for document in documents:
            if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
                kind = document.get("kind") if isinstance(document, dict) else type(document)
                raise ValueError(f"{file}: not a CustomResourceDefinition but {kind}")
            crds.append(document)
    return crds


def node_object(spec: NodeSpec, index: int, kubernetes_version: str) -> JSON:
    """The Node as a kubelet would register it (status included)."""
    capacity = {k: str(v) for k, v in spec.capacity.items()}
    capacity.setdefault("pods", "110")
    allocatable = (
        {k: str(v) for k, v in spec.allocatable.items()}
        if spec.allocatable is not None
        else dict(capacity)
    )
    allocatable.setdefault("pods", capacity["pods"])
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        **spec.labels,
    }
    node_spec: JSON = {}
    taints = [t.model_dump(exclude_defaults=False) for t in spec.taints]
    for taint in taints:
        if not taint["value"]:
            del taint["value"]
    if spec.unschedulable:
        node_spec["unschedulable"] = True
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    if taints:
        node_spec["taints"] = taints
    conditions = [
        _condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        _condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        _condition("PIDPressure", "False", "KubeletHasSufficientPID"),
        _condition(
            "Ready",
            "True" if spec.ready else "False",
            "KubeletReady" if spec.ready else "KubeletNotReady",
        ),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels}
        | ({"annotations": {LOCAL_SITE_ANNOTATION: "true"}} if spec.local_site else {}),
        "spec": node_spec,
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": f"{_NODE_ADDRESS_PREFIX}{index + 1}"},
                {"type": "Hostname", "address": spec.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{index + 1:032x}",
                "systemUUID": f"00000000-0000-0000-0000-{index + 1:012x}",
                "bootID": f"00000000-0000-0000-0001-{index + 1:012x}",
                "kernelVersion": "6.1.0-emulated",
                "osImage": "aiinfn-hub emulator",
                "containerRuntimeVersion": "emulated://1.0",
                "kubeletVersion": kubernetes_version,
                "kubeProxyVersion": kubernetes_version,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def _condition(kind: str, status: str, reason: str) -> JSON:
    from .store import now_rfc3339

    now = now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": f"emulated kubelet: {reason}",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def initial_objects(spec: ClusterSpec) -> list[JSON]:
    """Everything to create at start, in order: namespaces, CRDs (served as soon as created),
    nodes, then the extra objects."""
    namespaces = ["default", "kube-system", *spec.namespaces]
    seen: set[str] = set()
    out: list[JSON] = []
    for ns in namespaces:
        if ns not in seen:
            seen.add(ns)
            out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    out.extend(copy.deepcopy(spec.crds))
    out.extend(node_object(node, i, spec.kubernetes_version) for i, node in enumerate(spec.nodes))
    out.extend(copy.deepcopy(spec.objects))
    return out
