"""Deleting objects as the API server does: grace periods, finalizers, propagation policies.

Shared by the REST handlers and the controllers (garbage collector, preemption, Job
controller), so a pod evicted by the scheduler goes through the same path as a ``DELETE``.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from .crds import delete_definition
from .errors import ApiError
from .namespaces import delete_namespace
from .resources import CRDS, NAMESPACES, PODS, ResourceType
from .store import Store

JSON = dict[str, Any]
FOREGROUND = "foregroundDeletion"


def _timestamp(seconds_from_now: int = 0) -> str:
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def delete_object(
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    name: str,
    *,
    grace_period: int | None = None,
    propagation: str | None = None,
    preconditions: JSON | None = None,
) -> JSON:
    """Delete one object; returns it as the API answers (removed, or marked for deletion)."""
    obj = store.get(rt, namespace, name)
    if obj is None:
        raise ApiError.not_found(rt, name)
    meta = obj["metadata"]
    if preconditions:
        if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on "
                f'{rt.qualified_plural} "{name}": Precondition failed: UID in '
                f"precondition: {preconditions['uid']}, UID in object meta: "
                f"{meta['uid']}",
            )
        if preconditions.get("resourceVersion") and (
            preconditions["resourceVersion"] != meta["resourceVersion"]
        ):
            raise ApiError.conflict(rt, name)
    policy = propagation or rt.default_propagation
    if policy == "Orphan":
        orphan_dependents(store, meta["uid"])
    if rt.key == NAMESPACES.key:
        return delete_namespace(store, obj)
    if rt.key == CRDS.key:
        return delete_definition(store, obj)
    finalizers = list(meta.get("finalizers") or [])
    if policy == "Foreground" and FOREGROUND not in finalizers:
        finalizers.append(FOREGROUND)
    if rt.key == PODS.key:
        return _delete_pod(store, obj, grace_period, finalizers)
    if finalizers:
        return _mark_deleting(store, rt, obj, finalizers, 0)
    return store.delete(rt, namespace, name)


def _mark_deleting(
    store: Store, rt: ResourceType, obj: JSON, finalizers: list[str], grace: int
) -> JSON:
    new = copy.deepcopy(obj)
    meta = new["metadata"]
    if "deletionTimestamp" in meta:
        current = meta.get("deletionGracePeriodSeconds")
        if current is not None and grace >= current and finalizers == meta.get("finalizers", []):
            return obj
    meta["deletionTimestamp"] = _timestamp(grace)
    meta["deletionGracePeriodSeconds"] = grace
    if finalizers:
        meta["finalizers"] = finalizers
    # the store keeps an existing deletionTimestamp; a shorter grace must still win
    updated = store.update(rt, new)
    if updated["metadata"].get("deletionGracePeriodSeconds") != grace:
        forced = copy.deepcopy(updated)
        forced["metadata"]["deletionGracePeriodSeconds"] = grace
        updated = store.update(rt, forced)
    return updated


def _delete_pod(store: Store, pod: JSON, grace: int | None, finalizers: list[str]) -> JSON:
    spec = pod.get("spec", {})
    phase = pod.get("status", {}).get("phase")
    if grace is None:
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
    immediate = grace == 0 or not spec.get("nodeName") or phase in ("Succeeded", "Failed")
    if immediate and not finalizers:
        return store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
    # the kubelet stops the containers, then removes the pod (see the kubelet controller)
    return _mark_deleting(store, PODS, pod, finalizers, max(grace, 0) if not immediate else 0)


def remove_if_finalized(store: Store, rt: ResourceType, obj: JSON) -> bool:
    """Remove an object marked for deletion once nothing holds it any more."""
    meta = obj["metadata"]
    if "deletionTimestamp" not in meta or meta.get("finalizers"):
        return False
    if rt.key == PODS.key:
        spec, status = obj.get("spec", {}), obj.get("status", {})
        if spec.get("nodeName") and status.get("phase") not in ("Succeeded", "Failed"):
            return False  # the kubelet has not stopped its containers yet
    store.delete(rt, meta.get("namespace"), meta["name"])
    return True


def orphan_dependents(store: Store, owner_uid: str) -> None:
    """Orphan propagation: drop ownerReferences to ``owner_uid`` from every dependent."""
    for rt in store.kinds.all():
        for obj in store.iter(rt):
            refs = obj["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in refs):
                new = copy.deepcopy(obj)
                kept = [r for r in refs if r.get("uid") != owner_uid]
                if kept:
                    new["metadata"]["ownerReferences"] = kept
                else:
                    new["metadata"].pop("ownerReferences")
                store.update(rt, new)
