"""Namespace lifecycle: no new content in a terminating namespace, and the namespace controller.

As in Kubernetes (documentation: "Namespaces", "Finalizers"; sources: the NamespaceLifecycle
admission plugin and pkg/controller/namespace/deletion):

- ``DELETE`` of a namespace sets its ``deletionTimestamp`` and phase ``Terminating``;
- from then on, creating anything in it (events included) is refused with 403 ``Forbidden``,
  ``unable to create new content in namespace NS because it is being terminated``, with a
  ``NamespaceTerminating`` cause; updates and deletes of what is there still work;
- the namespace controller deletes the content, pass after pass, until none is left (objects
  that slipped in after the deletion began, e.g. written by a controller that had not seen it
  yet, are deleted by the next pass); each pass writes the controller's status conditions
  (``NamespaceDeletionDiscoveryFailure``, ``NamespaceDeletionGroupVersionParsingFailure``,
  ``NamespaceDeletionContentFailure``, ``NamespaceContentRemaining``,
  ``NamespaceFinalizersRemaining``) when they change;
- once empty, the ``kubernetes`` finalizer is removed from ``spec.finalizers`` and, with no
  finalizer left, the namespace is deleted.

Discovery and group-version parsing cannot fail here, so those two conditions are always their
"ok" variants.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import Counter
from typing import Any

from .errors import ApiError
from .resources import NAMESPACES, ResourceType
from .store import Store, now_rfc3339

log = logging.getLogger(__name__)
JSON = dict[str, Any]
KUBERNETES_FINALIZER = "kubernetes"
PASS_INTERVAL = 0.05  # seconds between the controller's passes over a terminating namespace
# condition type -> (reason, message) when all is well, in the controller's order
_OK = {
    "NamespaceDeletionDiscoveryFailure": (
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    "NamespaceDeletionGroupVersionParsingFailure": (
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    "NamespaceDeletionContentFailure": (
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentRemoved", "All content successfully removed"),
}


# -- admission --------------------------------------------------------------------------------
def is_terminating(store: Store, namespace: str) -> bool:
    """Whether ``namespace`` exists and is being deleted."""
    found = store.get(NAMESPACES, None, namespace)
    return found is not None and "deletionTimestamp" in found["metadata"]


def new_content_error(rt: ResourceType, namespace: str, name: str) -> ApiError:
    """The NamespaceLifecycle plugin's 403 for a create in a terminating namespace."""
    resource = rt.qualified_plural
    subject = f'{resource} "{name}"' if name else resource
    details: JSON = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural
    details["causes"] = [
        {
            "reason": "NamespaceTerminating",
            "message": f"namespace {namespace} is being terminated",
            "field": "metadata.namespace",
        }
    ]
    return ApiError(
        403,
        "Forbidden",
        f"{subject} is forbidden: unable to create new content in namespace {namespace} "
        "because it is being terminated",
        details=details,
    )


def admit_new_content(store: Store, rt: ResourceType, namespace: str | None, name: str) -> None:
    """NamespaceLifecycle for a create: 404 in a missing namespace, 403 in a terminating one."""
    if namespace is None or not rt.namespaced:
        return
    found = store.get(NAMESPACES, None, namespace)
    if found is None:
        raise ApiError.namespace_not_found(namespace)
    if "deletionTimestamp" in found["metadata"]:
        raise new_content_error(rt, namespace, name)


# -- deletion ---------------------------------------------------------------------------------
def delete_namespace(store: Store, namespace: JSON) -> JSON:
    """A DELETE of a namespace: mark it Terminating, run a first pass, then keep going."""
    if "deletionTimestamp" in namespace["metadata"]:
        return namespace
    name = namespace["metadata"]["name"]
    new = copy.deepcopy(namespace)
    new["metadata"]["deletionTimestamp"] = now_rfc3339()
    new.setdefault("status", {})["phase"] = "Terminating"
    marked = store.update(NAMESPACES, new)
    if not _controller_pass(store, name):
        asyncio.get_running_loop().create_task(_keep_deleting(store, name))
    return store.get(NAMESPACES, None, name) or marked


async def _keep_deleting(store: Store, name: str) -> None:
    """The namespace controller's requeues: a pass until the namespace is gone."""
    while True:
        await asyncio.sleep(PASS_INTERVAL)
        try:
            if _controller_pass(store, name):
                return
        except Exception:
            log.exception("deleting the content of namespace %s failed; retrying", name)


def _controller_pass(store: Store, name: str) -> bool:
    """One pass of the namespace controller; True once the namespace is gone (or finalized
    and left to other finalizers)."""
    from .deletion import delete_object  # deletion calls us for namespaces: import late

    namespace = store.get(NAMESPACES, None, name)
    if namespace is None or "deletionTimestamp" not in namespace["metadata"]:
        return True
    failures: list[str] = []
    remaining: Counter[str] = Counter()
    finalizers: Counter[str] = Counter()
    for rt in store.kinds.all():
        if not rt.namespaced:
            continue
        for obj in store.list(rt, name):
            if "deletionTimestamp" in obj["metadata"]:
                continue
            try:
                delete_object(store, rt, name, obj["metadata"]["name"], propagation="Background")
            except ApiError as exc:
                if exc.code != 404:
                    failures.append(f"{rt.qualified_plural}: {exc.message}")
        for obj in store.list(rt, name):
            remaining[f"{rt.plural}.{rt.group}"] += 1
            finalizers.update(obj["metadata"].get("finalizers") or [])
    namespace = _write_conditions(store, namespace, failures, remaining, finalizers)
    if remaining:
        return False
    return _finalize(store, namespace)


def _write_conditions(
    store: Store,
    namespace: JSON,
    failures: list[str],
    remaining: Counter[str],
    finalizers: Counter[str],
) -> JSON:
    """The controller's conditions for this pass, written only when one of them changed."""
    wanted: dict[str, tuple[str, str, str]] = {
        kind: ("False", reason, message) for kind, (reason, message) in _OK.items()
    }
    if failures:
        wanted["NamespaceDeletionContentFailure"] = (
            "True",
            "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(failures)} remaining: "
            + ", ".join(sorted(failures)),
        )
    if remaining:
        listed = sorted(f"{r} has {n} resource instances" for r, n in remaining.items())
        wanted["NamespaceContentRemaining"] = (
            "True",
            "SomeResourcesRemain",
            "Some resources are remaining: " + ", ".join(listed),
        )
    if finalizers:
        listed = sorted(f"{f} in {n} resource instances" for f, n in finalizers.items())
        wanted["NamespaceFinalizersRemaining"] = (
            "True",
            "SomeFinalizerRemain",
            "Some finalizers are remaining: " + ", ".join(listed),
        )
    new = copy.deepcopy(namespace)
    status = new.setdefault("status", {})
    conditions: list[JSON] = status.setdefault("conditions", [])
    for kind, (state, reason, message) in wanted.items():
        old = next((c for c in conditions if c.get("type") == kind), None)
        if old is None:
            conditions.append(
                {
                    "type": kind,
                    "status": state,
                    "lastTransitionTime": now_rfc3339(),
                    "reason": reason,
                    "message": message,
                }
            )
        elif (old["status"], old.get("reason"), old.get("message")) != (state, reason, message):
            if old["status"] != state:
                old["lastTransitionTime"] = now_rfc3339()
            old.update(status=state, reason=reason, message=message)
    return store.update(NAMESPACES, new) if new != namespace else namespace


def _finalize(store: Store, namespace: JSON) -> bool:
    """Remove the ``kubernetes`` finalizer, then the namespace if nothing else holds it."""
    name = namespace["metadata"]["name"]
    spec_finalizers = list((namespace.get("spec") or {}).get("finalizers") or [])
    if KUBERNETES_FINALIZER in spec_finalizers:
        new = copy.deepcopy(namespace)
        kept = [f for f in spec_finalizers if f != KUBERNETES_FINALIZER]
        new["spec"] = {**new.get("spec", {}), "finalizers": kept} if kept else {}
        namespace = store.update(NAMESPACES, new)
        spec_finalizers = kept
    if spec_finalizers or namespace["metadata"].get("finalizers"):
        return False  # another finalizer's owner finishes the job
    store.delete(NAMESPACES, None, name)
    return True
