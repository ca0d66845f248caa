"""Discovery documents (``/api``, ``/apis``, ``/api/v1``, ``/apis/g/v``, ``/version``).

Each takes the served resource types (``Store.kinds.all()``: the built-ins plus the kinds of
established CRDs); without them, the built-in table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..resources import RESOURCE_TYPES, ResourceType

JSON = dict[str, Any]
KUBERNETES_VERSION = "v1.33.2"


def version_info() -> JSON:
    """``/version``: the Kubernetes version the emulator claims to be."""
    major, minor, _ = KUBERNETES_VERSION.lstrip("v").split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": "aiinfn-hub-emulator",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_versions() -> JSON:
    """``/api``: the legacy core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


Types = Sequence[ResourceType]


def _groups(types: Types) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rt in types:
        if rt.group:
            versions = groups.setdefault(rt.group, [])
            versions.extend(v for v in rt.versions if v not in versions)
    return groups


def api_group(group: str, types: Types = RESOURCE_TYPES) -> JSON | None:
    """``/apis/{group}``; None for a group the emulator does not serve."""
    versions = _groups(types).get(group)
    if versions is None:
        return None
    # the preferred version is the newest one (v1beta2 over v1beta1)
    preferred = sorted(versions)[-1]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
    }


def api_group_list(types: Types = RESOURCE_TYPES) -> JSON:
    """``/apis``: every named group with its versions."""
    groups = [api_group(g, types) for g in _groups(types)]
    for g in groups:
        assert g is not None
        del g["kind"], g["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entry(rt: ResourceType) -> list[JSON]:
    entry: JSON = {
        "name": rt.plural,
        "singularName": rt.singular or rt.kind.lower(),
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    out = [entry]
    for sub in rt.subresources:
        verbs = {
            "status": ["get", "patch", "update"],
            "log": ["get"],
            "binding": ["create"],
            "eviction": ["create"],
            "attach": ["create", "get"],
            "exec": ["create", "get"],
            "portforward": ["create", "get"],
        }[sub]
        kind = {
            "binding": "Binding",
            "eviction": "Eviction",
            "attach": "PodAttachOptions",
            "exec": "PodExecOptions",
            "portforward": "PodPortForwardOptions",
        }.get(sub, rt.kind)
        out.append(
            {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind,
                "verbs": verbs,
            }
        )
    return out


def resource_list(group: str, version: str, types: Types = RESOURCE_TYPES) -> JSON | None:
    """``/api/v1`` or ``/apis/{group}/{version}``: resources, verbs and subresources."""
    served = [rt for rt in types if rt.group == group and version in rt.versions]
    if not served:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [e for rt in served for e in _resource_entry(rt)],
    }


def _group_versions(types: Types) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for rt in types:
        for v in rt.versions:
            if (rt.group, v) not in seen:
                seen.append((rt.group, v))
    return seen


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_index(types: Types = RESOURCE_TYPES) -> JSON:
    """``/openapi/v3``: where each group-version's document is (kubectl reads this)."""
    return {
        "paths": {
            _gv_path(g, v): {
                "serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash={KUBERNETES_VERSION}"
            }
            for g, v in _group_versions(types)
        }
    }


_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def openapi_v3_document(group: str, version: str, types: Types = RESOURCE_TYPES) -> JSON | None:
    """A small OpenAPI 3 document: the paths and the query parameters each write accepts.

    kubectl uses it to learn that the server validates fields itself (``fieldValidation``), so
    it sends its objects for server-side validation instead of downloading full schemas.
    """
    served = [rt for rt in types if rt.group == group and version in rt.versions]
    if not served:
        return None
    params = [
        {"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for p in _QUERY_PARAMS
    ]
    paths: JSON = {}
    base = "/" + _gv_path(group, version)
    for rt in served:
        gvk = [{"group": rt.group, "version": version, "kind": rt.kind}]
        scope = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}"
            if rt.namespaced
            else f"{base}/{rt.plural}"
        )
        operation = {
            "parameters": params,
            "x-kubernetes-group-version-kind": gvk[0],
            "responses": {"200": {"description": "OK"}},
        }
        paths[scope] = {
            "post": {**operation, "x-kubernetes-action": "post"},
            "get": {**operation, "x-kubernetes-action": "list"},
        }
        paths[f"{scope}/{{name}}"] = {
            verb: {**operation, "x-kubernetes-action": action}
            for verb, action in (
                ("get", "get"),
                ("put", "put"),
                ("patch", "patch"),
                ("delete", "delete"),
            )
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }
