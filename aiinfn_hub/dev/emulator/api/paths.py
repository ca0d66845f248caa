"""What a request URL names: a discovery document or a resource target, and query booleans."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from ..kinds import ServedKinds
from ..resources import ResourceType
from . import discovery

JSON = dict[str, Any]
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def parse_bool(value: str | None, name: str) -> bool:
    """Booleans in query strings are parsed like Go's ``strconv.ParseBool`` (``watch=True``)."""
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError.bad_request(
        f'invalid value for {name}: strconv.ParseBool: parsing "{value}": invalid syntax'
    )


@dataclass(frozen=True)
class Target:
    """A resource URL: ``/api/v1/namespaces/{namespace}/{plural}/{name}/{subresource}``.

    ``watch_path`` marks the legacy ``/api/v1/watch/...`` form; ``namespace`` is None for
    cluster-scoped kinds and for the all-namespaces collection of a namespaced kind.
    """

    rt: ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool

    @property
    def api_version(self) -> str:
        """``v1`` or ``group/version`` as requested."""
        return self.rt.api_version(self.version)


def parse_path(path: str, kinds: ServedKinds) -> Target | JSON | None:
    """A resource target, a discovery document, or None for a path the API does not serve
    (``kinds``: what the cluster serves now, CRD kinds included)."""
    types = kinds.all()
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/") if p]
    if parts[:1] == ["api"]:
        if len(parts) == 1:
            return discovery.core_versions()
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"]:
        if len(parts) == 1:
            return discovery.api_group_list(types)
        if len(parts) == 2:
            return discovery.api_group(parts[1], types)
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return discovery.resource_list(group, version, types)
    watch_path = rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespaced = kinds.get(group, rest[2])
        if namespaced is not None and namespaced.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    rt = kinds.get(group, rest[0])
    if rt is None or version not in rt.versions or len(rest) > 3:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource is not None and subresource not in rt.subresources:
        return None
    return Target(rt, version, namespace, name, subresource, watch_path)


def with_version(rt: ResourceType, obj: JSON, version: str) -> JSON:
    """The object as served at ``version`` (Kueue kinds are served at two versions).

    ``kind`` and ``apiVersion`` come first, as the real server writes them.
    """
    out: JSON = {"kind": rt.kind, "apiVersion": rt.api_version(version)}
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out
