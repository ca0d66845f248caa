"""DELETE of one object or a collection: grace periods, propagation policies, preconditions,
and what the answer is for each kind.
"""

from __future__ import annotations

from typing import Any

from ..deletion import delete_object
from ..errors import ApiError
from .handlers import ResourceBase, success_status
from .listing import selection
from .paths import parse_bool

JSON = dict[str, Any]

# kinds whose DELETE answers with the object rather than a Status (ReturnDeletedObject)
_RETURN_DELETED_OBJECT = {
    ("", "pods"),
    ("", "services"),
    ("", "persistentvolumeclaims"),
    ("", "serviceaccounts"),
    ("", "namespaces"),
}


class DeleteVerbs(ResourceBase):
    """DELETE on a resource path."""

    def delete(self) -> None:
        if self._finished:
            return
        t = self.target
        if t.subresource is not None:
            raise ApiError.method_not_allowed()
        body = self._body() if self.request.body else {}
        options = body if isinstance(body, dict) else {}
        grace_text = self.query("gracePeriodSeconds")
        try:
            grace = int(grace_text) if grace_text else options.get("gracePeriodSeconds")
        except ValueError as exc:
            raise ApiError.bad_request(f"invalid gracePeriodSeconds: {grace_text}") from exc
        propagation = _propagation(self.query, options)
        dry_run = self._dry_run(options)
        if t.name is None:
            if t.rt.namespaced and t.namespace is None:
                raise ApiError.method_not_allowed()
            self._delete_collection(grace, propagation, dry_run)
            return
        if dry_run:
            self._answer(self._existing())
            return
        result = delete_object(
            self.store,
            t.rt,
            t.namespace,
            t.name,
            grace_period=grace,
            propagation=propagation,
            preconditions=options.get("preconditions"),
        )
        still_there = self.store.get(t.rt, t.namespace, t.name) is not None
        if still_there or t.rt.key in _RETURN_DELETED_OBJECT:
            self._answer(result)
            return
        details: JSON = {"name": t.name, "kind": t.rt.plural, "uid": result["metadata"]["uid"]}
        if t.rt.group:
            details["group"] = t.rt.group
        self.write_json(success_status(details=details))

    def _delete_collection(self, grace: int | None, propagation: str | None, dry_run: bool) -> None:
        t = self.target
        select = selection(t, self.query)
        matching = [o for o in self.store.list(t.rt, t.namespace) if select(o)]
        if dry_run:
            deleted = matching
        else:
            deleted = [
                delete_object(
                    self.store,
                    t.rt,
                    obj["metadata"].get("namespace"),
                    obj["metadata"]["name"],
                    grace_period=grace,
                    propagation=propagation,
                )
                for obj in matching
                if self.store.get(t.rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            ]
        items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in deleted]
        self.write_json(
            {
                "kind": t.rt.list_kind,
                "apiVersion": t.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": items,
            }
        )


def _propagation(query: Any, options: JSON) -> str | None:
    """``propagationPolicy`` from the query or DeleteOptions; ``orphanDependents`` as fallback."""
    policy = query("propagationPolicy") or options.get("propagationPolicy")
    orphan = query("orphanDependents")
    if orphan is None and "orphanDependents" in options:
        orphan = str(options["orphanDependents"]).lower()
    if policy is not None and orphan is not None:
        raise ApiError(
            422,
            "Invalid",
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: '
            f'"{policy}": orphanDependents and deletionPropagation cannot be both set',
        )
    if policy is None and orphan is not None:
        policy = "Orphan" if parse_bool(orphan, "orphanDependents") else "Background"
    if policy not in (None, "Orphan", "Background", "Foreground"):
        raise ApiError(
            422,
            "Invalid",
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
            f'"{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
        )
    return policy
