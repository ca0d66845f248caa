"""``CustomResourceDefinition`` semantics: defaults, checks, naming, establishing, deletion.

What apiextensions-apiserver does with a CRD, done at once instead of by its controllers (a
real cluster establishes a CRD within milliseconds too; doing it in the create call means a
cluster file's objects, created right after their CRD, never race it):

- create: the status starts with empty ``acceptedNames`` and the storage version in
  ``storedVersions``; the create answer is that object. Right after it, the naming controller's
  work (``NamesAccepted``: ``NoConflicts``, or ``PluralConflict``/``KindConflict`` when another
  CRD of the group holds the name) and the establishing controller's (``Established``:
  ``InitialNamesAccepted``) are written as a status update, and the kind is served;
- update: the served kind follows the new spec (schema, versions, names of an accepted CRD);
  a new storage version is added to ``storedVersions``;
- delete: the finalizer ``customresourcecleanup.apiextensions.k8s.io`` and the ``Terminating``
  condition are set, creates of the kind are refused (405), every object of the kind is
  deleted, then the kind stops being served and the CRD goes.

Every served version shares the storage version's schema shape: there are no conversion
webhooks (``strategy: None`` only), so converting an object is changing its ``apiVersion``.
The ``scale`` subresource is not served.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from .api.field_errors import FieldError, invalid, not_supported, required
from .errors import ApiError
from .kinds import DefinedKind
from .resources import CRDS, ResourceType
from .store import Store, now_rfc3339

log = logging.getLogger(__name__)
JSON = dict[str, Any]
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_SCOPES = ["Cluster", "Namespaced"]
_POLL_SECONDS = 0.05


# -- defaults and checks ----------------------------------------------------------------------
def default_definition(crd: JSON) -> None:
    """``SetDefaults_CustomResourceDefinition``: singular and list kind names, the conversion."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    conversion = spec.setdefault("conversion", {})
    if isinstance(conversion, dict):
        conversion.setdefault("strategy", "None")


def initial_status(crd: JSON) -> JSON:
    """The status a new CRD is stored with (before the naming controller has run)."""
    return {"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": _storage(crd)[:1]}


def definition_errors(crd: JSON) -> list[FieldError]:
    """What ``ValidateCustomResourceDefinition`` refuses, for the rules that matter most.

    Names, scope, exactly one storage version, a schema for every version and the structural
    rule that every specified field has a type. Messages name invalid lists without Go's
    rendering of their values.
    """
    spec = crd.get("spec") if isinstance(crd.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    assert isinstance(names, dict)
    errors: list[FieldError] = []
    group, plural = str(spec.get("group") or ""), str(names.get("plural") or "")
    name = str((crd.get("metadata") or {}).get("name") or "")
    if name and group and plural and name != f"{plural}.{group}":
        errors.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        errors.append(required("spec.group"))
    elif "." not in group:
        errors.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    for key in ("plural", "singular", "kind", "listKind"):
        if not names.get(key):
            errors.append(required(f"spec.names.{key}"))
    scope = spec.get("scope")
    if not scope:
        errors.append(required("spec.scope"))
    elif scope not in _SCOPES:
        errors.append(not_supported("spec.scope", scope, _SCOPES))
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    if not versions:
        errors.append(required("spec.versions"))
    elif len(_storage(crd)) != 1:
        errors.append(
            invalid("spec.versions", "", "must have exactly one version marked as storage version")
        )
    for index, version in enumerate(versions):
        where = f"spec.versions[{index}]"
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            errors.append(required(f"{where}.schema.openAPIV3Schema", "schemas are required"))
            continue
        errors.extend(_structural_errors(schema, f"{where}.schema.openAPIV3Schema", root=True))
    return errors


def _structural_errors(schema: JSON, where: str, root: bool = False) -> list[FieldError]:
    """Types are required everywhere except int-or-string and preserve-unknown-fields nodes."""
    errors: list[FieldError] = []
    untyped_ok = schema.get("x-kubernetes-int-or-string") or schema.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if not schema.get("type") and not untyped_ok:
        detail = "must not be empty at the root" if root else "must not be empty for specified"
        errors.append(required(f"{where}.type", detail + ("" if root else " object fields")))
    elif root and schema.get("type") != "object":
        errors.append(invalid(f"{where}.type", schema.get("type"), "must be object at the root"))
    for name, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            errors.extend(_structural_errors(sub, f"{where}.properties[{name}]"))
    for key in ("items", "additionalProperties"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            errors.extend(_structural_errors(sub, f"{where}.{key}"))
    return errors


def _storage(crd: JSON) -> list[str]:
    versions = (crd.get("spec") or {}).get("versions") or []
    return [v["name"] for v in versions if isinstance(v, dict) and v.get("storage")]


# -- naming and establishing ------------------------------------------------------------------
def _condition(kind: str, status: str, reason: str, message: str) -> JSON:
    return {
        "type": kind,
        "status": status,
        "lastTransitionTime": now_rfc3339(),
        "reason": reason,
        "message": message,
    }


def _set_condition(status: JSON, condition: JSON) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != condition["type"]]
    old = next(
        (c for c in status.get("conditions") or [] if c.get("type") == condition["type"]), None
    )
    if old is not None and old.get("status") == condition["status"]:
        condition["lastTransitionTime"] = old.get(
            "lastTransitionTime", condition["lastTransitionTime"]
        )
    conditions.append(condition)
    status["conditions"] = conditions


def _name_conflict(store: Store, crd: JSON) -> JSON | None:
    """The NamesAccepted=False condition when another CRD of the group holds a name."""
    spec = crd["spec"]
    names = spec["names"]
    group, plural, kind = spec["group"], names["plural"], names["kind"]
    if not store.kinds.replaceable((group, plural)):
        return _condition(
            "NamesAccepted", "False", "PluralConflict", f'"{plural}" is already in use'
        )
    for other in store.list(CRDS):
        if other["metadata"]["name"] == crd["metadata"]["name"]:
            continue
        if (other.get("spec") or {}).get("group") != group:
            continue
        accepted = (other.get("status") or {}).get("acceptedNames") or {}
        if accepted.get("plural") == plural:
            return _condition(
                "NamesAccepted", "False", "PluralConflict", f'"{plural}" is already in use'
            )
        if accepted.get("kind") == kind:
            return _condition(
                "NamesAccepted", "False", "KindConflict", f'"{kind}" is already in use'
            )
    return None


def accept(store: Store, crd: JSON) -> JSON:
    """The naming and establishing controllers' work on a created or changed CRD: conditions,
    accepted names and stored versions written to the status, and the kind served."""
    if "deletionTimestamp" in crd["metadata"]:
        return crd
    new = copy.deepcopy(crd)
    status = new.setdefault("status", {})
    conflict = _name_conflict(store, new)
    if conflict is not None:
        _set_condition(status, conflict)
        _set_condition(
            status,
            _condition("Established", "False", "NotAccepted", "not all names are accepted"),
        )
        return store.update(CRDS, new)
    names = new["spec"]["names"]
    status["acceptedNames"] = {
        key: copy.deepcopy(names[key])
        for key in ("plural", "singular", "shortNames", "kind", "listKind", "categories")
        if names.get(key)
    }
    _set_condition(status, _condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"))
    _set_condition(
        status,
        _condition(
            "Established", "True", "InitialNamesAccepted", "the initial names have been accepted"
        ),
    )
    stored = list(status.get("storedVersions") or [])
    stored.extend(v for v in _storage(new) if v not in stored)
    status["storedVersions"] = stored
    updated = store.update(CRDS, new)
    store.kinds.install(defined_kind(updated))
    return updated


def defined_kind(crd: JSON) -> DefinedKind:
    """The served kind a CRD describes: resource, storage version, schemas, columns."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec.get("versions") or [] if v.get("served")]
    subresources: tuple[str, ...] = ()
    if any("status" in (v.get("subresources") or {}) for v in served):
        subresources = ("status",)
    rt = ResourceType(
        spec["group"],
        tuple(v["name"] for v in served),
        names["kind"],
        names["plural"],
        spec.get("scope") == "Namespaced",
        names.get("singular", ""),
        tuple(names.get("shortNames") or ()),
        subresources=subresources,
        categories=tuple(names.get("categories") or ()),
        custom=True,
    )
    return DefinedKind(
        rt,
        crd["metadata"]["name"],
        _storage(crd)[0],
        {v["name"]: (v.get("schema") or {}).get("openAPIV3Schema") for v in served},
        {v["name"]: list(v.get("additionalPrinterColumns") or []) for v in served},
    )


# -- deletion ---------------------------------------------------------------------------------
def terminating_error(rt: ResourceType) -> ApiError:
    """405 for a create of a kind whose CRD is being deleted."""
    return ApiError(
        405,
        "MethodNotAllowed",
        "create not allowed while custom resource definition is terminating",
        details={"group": rt.group, "kind": rt.plural},
    )


def is_terminating(store: Store, rt: ResourceType) -> bool:
    """Whether ``rt`` is served by a CRD that is being deleted."""
    defined = store.kinds.defined(rt)
    if defined is None:
        return False
    crd = store.get(CRDS, None, defined.crd_name)
    return crd is not None and "deletionTimestamp" in crd["metadata"]


def delete_definition(store: Store, crd: JSON) -> JSON:
    """A DELETE of a CRD: mark it, then remove its objects and itself in the background."""
    if "deletionTimestamp" in crd["metadata"]:
        return crd
    new = copy.deepcopy(crd)
    meta = new["metadata"]
    meta["deletionTimestamp"] = now_rfc3339()
    meta["deletionGracePeriodSeconds"] = 0
    finalizers = list(meta.get("finalizers") or [])
    if CLEANUP_FINALIZER not in finalizers:
        finalizers.append(CLEANUP_FINALIZER)
    meta["finalizers"] = finalizers
    _set_condition(
        new.setdefault("status", {}),
        _condition(
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        ),
    )
    marked = store.update(CRDS, new)
    asyncio.get_running_loop().create_task(_clean_up(store, meta["name"]))
    return marked


async def _clean_up(store: Store, name: str) -> None:
    """The CRD finalizer: delete every object of the kind, wait for them, stop serving it."""
    from .deletion import delete_object, remove_if_finalized  # deletion calls us: import late

    crd = store.get(CRDS, None, name)
    if crd is None:
        return
    defined = store.kinds.defined_by(name)
    if defined is not None:
        crd = _with_condition(
            store,
            crd,
            _condition(
                "Terminating",
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            ),
        )
        for obj in store.list(defined.rt):
            meta = obj["metadata"]
            try:
                delete_object(store, defined.rt, meta.get("namespace"), meta["name"])
            except ApiError as exc:
                log.debug("deleting %s/%s: %s", defined.rt.plural, meta["name"], exc)
        while store.list(defined.rt):
            await asyncio.sleep(_POLL_SECONDS)
        store.kinds.remove(defined.rt.key)
        store.close_watchers(defined.rt)  # the real server ends watches of a removed kind
    crd = store.get(CRDS, None, name) or crd
    crd = _with_condition(
        store,
        crd,
        _condition("Terminating", "False", "InstanceDeletionCompleted", "removed all instances"),
    )
    final = copy.deepcopy(crd)
    kept = [f for f in final["metadata"].get("finalizers") or [] if f != CLEANUP_FINALIZER]
    if kept:
        final["metadata"]["finalizers"] = kept
    else:
        final["metadata"].pop("finalizers", None)
    remove_if_finalized(store, CRDS, store.update(CRDS, final))


def _with_condition(store: Store, crd: JSON, condition: JSON) -> JSON:
    new = copy.deepcopy(crd)
    _set_condition(new.setdefault("status", {}), condition)
    return store.update(CRDS, new)
