"""The write verbs: create, replace, patch (four patch types) and the pods ``binding`` and
``eviction`` subresources, in kube-apiserver's order: decode, admission, validation, storage.
"""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

from ..crds import accept, is_terminating, terminating_error
from ..deletion import delete_object, remove_if_finalized
from ..errors import ApiError
from ..namespaces import admit_new_content
from ..resources import CRDS, NAMESPACES, PODS, SERVICEACCOUNTS
from . import field_errors as fe
from . import validation
from .admission import admit_create, apply_defaults, carry_over_on_update
from .handlers import ResourceBase, status_is_subresource, success_status
from .patching import json_patch, merge_patch, strategic_merge_patch

JSON = dict[str, Any]

_SERVER_SET_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
# generateName suffixes use apimachinery's alphabet (no vowels, no 0, 1 or 3)
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class WriteVerbs(ResourceBase):
    """POST, PUT and PATCH on a resource path."""

    def post(self) -> None:
        if self._finished:
            return
        t = self.target
        if t.subresource in ("binding", "eviction"):
            self._pod_subresource_post()
            return
        if t.name is not None or t.subresource is not None:
            raise ApiError.method_not_allowed()
        if t.rt.namespaced and t.namespace is None:
            raise ApiError.method_not_allowed()
        obj = self._normalise(self._object_body())
        self._create(obj)

    def _create(self, obj: JSON, status: int = 201) -> None:
        t = self.target
        if is_terminating(self.store, t.rt):
            raise terminating_error(t.rt)
        decoded = self._decode(obj)
        meta = obj["metadata"]
        for server_field in _SERVER_SET_METADATA:
            meta.pop(server_field, None)
        if not meta.get("name") and meta.get("generateName"):
            # named before admission and validation, as the real server does
            meta["name"] = self._generate_name(str(meta["generateName"]))
        admit_new_content(self.store, t.rt, t.namespace, str(meta.get("name") or ""))
        if not meta.get("name"):
            raise fe.invalid_status(
                t.rt, "", [fe.required("metadata.name", "name or generateName is required")]
            )
        meta["uid"] = str(uuid.uuid4())
        if status_is_subresource(t.rt) and t.rt.kind != "Node":
            obj.pop("status", None)  # nodes alone may be created with their status
        apply_defaults(t.rt, obj)
        admit_create(self.store, t.rt, obj)
        if self.validate:
            validation.validate_create(t.rt, obj, decoded)
        self._set_warnings(decoded.warnings)
        if self._dry_run():
            self._answer(obj, status)
            return
        self._at_storage_version(obj)
        created = self.store.create(t.rt, obj)
        if t.rt.key == CRDS.key:
            accept(self.store, created)  # the naming and establishing controllers, at once
        if t.rt.key == NAMESPACES.key:
            # the service account controller's work, done at once
            self.store.create(
                SERVICEACCOUNTS,
                {"metadata": {"name": "default", "namespace": created["metadata"]["name"]}},
            )
        self._answer(created, status)

    def _at_storage_version(self, obj: JSON) -> None:
        """A CRD's objects are stored at its storage version (served at any served one)."""
        defined = self.store.kinds.defined(self.target.rt)
        if defined is not None:
            obj["apiVersion"] = self.target.rt.api_version(defined.storage)

    def _generate_name(self, prefix: str) -> str:
        t = self.target
        for _ in range(16):
            name = prefix + "".join(random.choices(_NAME_ALPHABET, k=5))
            if self.store.get(t.rt, t.namespace, name) is None:
                return name
        raise ApiError(
            500, "InternalError", f"Internal error occurred: no unique name for prefix {prefix}"
        )

    def _pod_subresource_post(self) -> None:
        t = self.target
        pod = self._existing()
        body = self._object_body()
        if t.subresource == "binding":
            node = (body.get("target") or {}).get("name")
            if not node:
                raise ApiError(
                    422, "Invalid", 'Binding.core "" is invalid: target.name: Required value'
                )
            if pod["spec"].get("nodeName"):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on pods/binding "{t.name}": pod {t.name} is '
                    f'already assigned to node "{pod["spec"]["nodeName"]}"',
                )
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = node
            self.store.update(PODS, new)
        else:
            options = body.get("deleteOptions") or {}
            delete_object(
                self.store,
                PODS,
                t.namespace,
                t.name or "",
                grace_period=options.get("gracePeriodSeconds"),
                preconditions=options.get("preconditions"),
            )
        self.write_json(success_status(201), 201)

    def put(self) -> None:
        if self._finished:
            return
        obj = self._object_body()
        expected = (obj.get("metadata") or {}).get("resourceVersion")
        self._update(obj, expected_rv=expected if isinstance(expected, str) else None)

    def patch(self) -> None:
        if self._finished:
            return
        t = self.target
        ctype = self._content_type()
        if ctype not in _PATCH_TYPES or (
            ctype == "application/strategic-merge-patch+json" and t.rt.custom
        ):
            raise ApiError.unsupported_media_type(ctype)
        body = self._body()
        if ctype == "application/apply-patch+yaml":
            self._apply(body)
            return
        current = self._existing()
        base = copy.deepcopy(current)
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError.bad_request(
                    "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                )
            patched = json_patch(base, body)
        elif ctype == "application/merge-patch+json":
            patched = merge_patch(base, body)
        else:
            patched = strategic_merge_patch(base, body)
        if not isinstance(patched, dict):
            raise ApiError.bad_request("the patch did not produce an object")
        expected = (patched.get("metadata") or {}).get("resourceVersion")
        if expected == current["metadata"]["resourceVersion"]:
            expected = None  # only a resourceVersion the patch itself sets is a precondition
        self._update(patched, expected_rv=expected)

    def _apply(self, body: Any) -> None:
        """Server-side apply, simplified: the applied configuration merged into the object."""
        t = self.target
        if not self.query("fieldManager"):
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch",
            )
        if not isinstance(body, dict):
            raise ApiError.bad_request("the applied configuration must be an object")
        current = self.store.get(t.rt, t.namespace, t.name or "")
        if current is None:
            if t.subresource is not None:
                raise ApiError.not_found(t.rt, t.name or "")
            obj = self._normalise(copy.deepcopy(body))
            obj["metadata"]["name"] = t.name
            self._create(obj)
            return
        self._update(merge_patch(copy.deepcopy(current), body), expected_rv=None)

    def _update(self, obj: JSON, expected_rv: str | None) -> None:
        t = self.target
        if t.subresource not in (None, "status"):
            raise ApiError.method_not_allowed()
        raw_meta = obj.get("metadata")
        meta: JSON = raw_meta if isinstance(raw_meta, dict) else {}
        if meta.get("name") not in (None, t.name):
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({t.name})"
            )
        current = self._existing()
        obj = self._normalise(obj)
        obj["metadata"]["name"] = t.name
        uid = obj["metadata"].get("uid")
        if uid and uid != current["metadata"]["uid"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {t.rt.qualified_plural} "{t.name}": '
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{current['metadata']['uid']}",
            )
        decoded = self._decode(obj)
        if t.subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = obj.get("status") or {}
        else:
            new = obj
            for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                if key not in current["metadata"]:
                    new["metadata"].pop(key, None)  # deletion starts with DELETE only
            if status_is_subresource(t.rt):
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            apply_defaults(t.rt, new)
            carry_over_on_update(t.rt, current, new)
        if self.validate:
            validation.validate_update(t.rt, current, new, decoded)
        self._set_warnings(decoded.warnings)
        if self._dry_run():
            self._answer(new)
            return
        if _deleted_by_update(current, new):
            if expected_rv and expected_rv != current["metadata"]["resourceVersion"]:
                raise ApiError.conflict(t.rt, t.name or "")
            # the last finalizer is gone: the object goes in one step (one DELETED event)
            self._answer(self.store.delete(t.rt, t.namespace, t.name or ""))
            return
        self._at_storage_version(new)
        updated = self.store.update(t.rt, new, expected_rv=expected_rv)
        if remove_if_finalized(self.store, t.rt, updated):
            self._answer(updated)
            return
        if t.rt.key == CRDS.key and t.subresource is None:
            accept(self.store, updated)  # the served kind follows the new spec
        self._answer(updated)


def _deleted_by_update(current: JSON, new: JSON) -> bool:
    """An update that removes the last finalizer of an object marked for deletion deletes it,
    unless a grace period is still running (a pod the kubelet is stopping)."""
    old_meta = current["metadata"]
    if new["metadata"].get("finalizers") or "deletionTimestamp" not in old_meta:
        return False
    return not old_meta.get("deletionGracePeriodSeconds")
