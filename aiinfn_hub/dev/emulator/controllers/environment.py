"""A container's environment and command line, resolved as the kubelet resolves them.

``envFrom`` first, then ``env`` in order; each value may use ``$(VAR)`` references to the
variables defined before it; then ``command`` and ``args`` are expanded against the whole
environment. ``$$`` escapes a ``$`` and references to undefined variables stay as written.
Field and resource references, Secrets and ConfigMaps are read through a lookup function so
this module stays free of the store.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ....kubemodel.quantity import parse_quantity

JSON = dict[str, Any]
# (kind "Secret" | "ConfigMap", namespace, name) -> the object or None
ObjectLookup = Callable[[str, str, str], JSON | None]

_VALID_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(Exception):
    """The container cannot be configured (``CreateContainerConfigError``): no Secret..."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of one string."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            end = text.find(")", i + 2)
            if end == -1:
                # an unclosed reference is kept literally; scanning goes on after it
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : end]
            out.append(env.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(char + following)
            i += 2
    return "".join(out)


def field_value(pod: JSON, path: str) -> str:
    """The value of a ``fieldRef`` (the downward API)."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
        "status.podIPs": ",".join(a["ip"] for a in status.get("podIPs") or []),
        "status.hostIPs": ",".join(a["ip"] for a in status.get("hostIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(container: JSON, ref: JSON, node_allocatable: Mapping[str, str]) -> str:
    """The value of a ``resourceFieldRef``; an unset limit reads as the node's allocatable."""
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(resource)
    if value is None and kind == "limits":
        value = node_allocatable.get(resource)
    if value is None:
        return "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor == 0:
        raise ConfigError(f"resourceFieldRef {ref.get('resource')}: divisor must be positive")
    return str(math.ceil(parse_quantity(value) / divisor))


def _source_data(obj: JSON) -> dict[str, str]:
    if obj.get("kind") == "Secret":
        return {
            k: base64.b64decode(v).decode(errors="replace")
            for k, v in (obj.get("data") or {}).items()
        }
    data = dict(obj.get("data") or {})
    for key, raw in (obj.get("binaryData") or {}).items():
        data[key] = base64.b64decode(raw).decode(errors="replace")
    return data


def _key_ref(kind: str, ref: JSON, namespace: str, lookup: ObjectLookup) -> str | None:
    name, key = ref.get("name", ""), ref.get("key", "")
    obj = lookup(kind, namespace, name)
    label = "secret" if kind == "Secret" else "configmap"
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{label} "{name}" not found')
    data = _source_data(obj)
    if key not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def container_environment(
    pod: JSON,
    container: JSON,
    lookup: ObjectLookup,
    node_allocatable: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables a container starts with, in definition order."""
    namespace = pod["metadata"].get("namespace", "")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, field_name in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field_name)
            if ref is None:
                continue
            obj = lookup(kind, namespace, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                label = "secret" if kind == "Secret" else "configmap"
                raise ConfigError(f'{label} "{ref.get("name", "")}" not found')
            for key, value in _source_data(obj).items():
                if _VALID_ENV_NAME.match(prefix + key):
                    env[prefix + key] = value
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        source = var["valueFrom"] or {}
        resolved: str | None
        if "fieldRef" in source:
            resolved = field_value(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            resolved = resource_value(container, source["resourceFieldRef"], node_allocatable or {})
        elif "secretKeyRef" in source:
            resolved = _key_ref("Secret", source["secretKeyRef"], namespace, lookup)
        elif "configMapKeyRef" in source:
            resolved = _key_ref("ConfigMap", source["configMapKeyRef"], namespace, lookup)
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if resolved is not None:
            env[name] = resolved
    return env


def command_line(container: JSON, env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` after expansion.

    Containers here come from no image, so it is as if every image had no ENTRYPOINT: without
    ``command``, ``args`` is the command line (KubeSpawner puts its ``cmd`` there), and with
    neither the result is empty.
    """
    parts = list(container.get("command") or []) + list(container.get("args") or [])
    return [expand(str(part), env) for part in parts]
