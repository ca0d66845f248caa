"""What the hub's informers keep of each node and pod: the fields the platform reads, no more.

The hub caches every pod and node of the cluster. Whole objects would keep other users'
environment values, commands and annotations in the hub's memory, and cost several times the
memory (``bench/form.py`` measures it). Readers of :class:`~aiinfn_hub.kube.informer.ClusterView`
and what they read:

- pods, by the inventory (``node_usage``: ``kubemodel.pod_resources``): ``spec.nodeName``,
  ``status.phase``, ``metadata.deletionTimestamp``, ``spec.priority``, ``spec.overhead`` and each
  container's and init container's ``resources`` (requests, limits) and ``restartPolicy``
  (sidecars); the key ``metadata.namespace``/``metadata.name``;
- nodes, by the inventory (``platform.placement``): ``metadata.name``, ``metadata.labels``
  (models' node selectors, the reserved key, virtual-node labels, all configurable),
  ``spec.unschedulable``, ``spec.taints``, ``status.allocatable``.

Kept besides, because they identify an object and its owner for any later reader and cost
little: ``metadata.uid``, ``metadata.labels`` and ``metadata.ownerReferences`` of pods, and a
pod's ``status.nominatedNodeName`` (where the scheduler is making room for it). No annotation
of a pod is read from this cache, so none is kept. Other caches keep their own views: the
spawner reads its own pod from kubespawner's reflector, the Bunshin recorder keeps
``bunshin.recorder.pod_summary``.

Strings repeated across thousands of objects (node names, namespaces, label keys and values,
resource names and amounts, phases) are interned, so each is held once.
"""

from __future__ import annotations

import sys
from typing import Any

JSON = dict[str, Any]

_OWNER_FIELDS = ("apiVersion", "kind", "name", "uid", "controller")


def _shared(value: Any) -> Any:
    """``value`` itself, or the one interned copy of it when it is a string."""
    return sys.intern(value) if type(value) is str else value


def _shared_map(values: Any) -> dict[str, Any]:
    """A ``{string: string}`` map (labels, a ResourceList) with interned keys and values."""
    return {sys.intern(str(k)): _shared(v) for k, v in (values or {}).items()}


def _resources(container: JSON) -> JSON:
    kept: JSON = {"name": _shared(container.get("name"))}
    resources = container.get("resources") or {}
    wanted = {
        part: _shared_map(resources[part]) for part in ("requests", "limits") if resources.get(part)
    }
    if wanted:
        kept["resources"] = wanted
    if "restartPolicy" in container:
        kept["restartPolicy"] = _shared(container["restartPolicy"])
    return kept


def lean_pod(pod: JSON) -> JSON:
    """The pod as the hub's cache keeps it: the fields listed in the module's docstring."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    kept_meta: JSON = {
        "name": meta.get("name"),
        "namespace": _shared(meta.get("namespace", "")),
    }
    if "uid" in meta:
        kept_meta["uid"] = meta["uid"]
    if meta.get("labels"):
        kept_meta["labels"] = _shared_map(meta["labels"])
    if meta.get("ownerReferences"):
        kept_meta["ownerReferences"] = [
            {k: _shared(ref[k]) for k in _OWNER_FIELDS if k in ref}
            for ref in meta["ownerReferences"]
        ]
    if "deletionTimestamp" in meta:
        kept_meta["deletionTimestamp"] = meta["deletionTimestamp"]
    kept_spec: JSON = {"containers": [_resources(c) for c in spec.get("containers") or []]}
    if spec.get("initContainers"):
        kept_spec["initContainers"] = [_resources(c) for c in spec["initContainers"]]
    if spec.get("nodeName"):
        kept_spec["nodeName"] = _shared(spec["nodeName"])
    if spec.get("overhead"):
        kept_spec["overhead"] = _shared_map(spec["overhead"])
    if "priority" in spec:
        kept_spec["priority"] = spec["priority"]
    kept_status: JSON = {}
    if "phase" in status:
        kept_status["phase"] = _shared(status["phase"])
    if status.get("nominatedNodeName"):
        kept_status["nominatedNodeName"] = _shared(status["nominatedNodeName"])
    return {"metadata": kept_meta, "spec": kept_spec, "status": kept_status}


def lean_node(node: JSON) -> JSON:
    """The node as the hub's cache keeps it: the fields listed in the module's docstring."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    kept_meta: JSON = {"name": _shared(meta.get("name"))}
    if "uid" in meta:
        kept_meta["uid"] = meta["uid"]
    if meta.get("labels"):
        kept_meta["labels"] = _shared_map(meta["labels"])
    kept_spec: JSON = {}
    if spec.get("unschedulable"):
        kept_spec["unschedulable"] = True
    if spec.get("taints"):
        kept_spec["taints"] = [
            {k: _shared(v) for k, v in taint.items() if k in ("key", "value", "effect")}
            for taint in spec["taints"]
        ]
    allocatable = (node.get("status") or {}).get("allocatable")
    return {
        "metadata": kept_meta,
        "spec": kept_spec,
        "status": {"allocatable": _shared_map(allocatable)} if allocatable else {},
    }
