"""Container environment as the kubelet builds it: fieldRef, secrets, ``$(VAR)`` expansion."""

from __future__ import annotations

import base64
import re
from typing import Any

from ....kube.quantity import parse_quantity
from ..resources import CONFIGMAPS, SECRETS
from ..store import Store

JSON = dict[str, Any]
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: ``$$`` escapes, unknown references stay as they are."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _REF.sub(sub, text)


def field_ref(pod: JSON, path: str) -> str:
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    if m := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
    }
    return str(simple.get(path) or "")


def _resource_ref(container: JSON, ref: JSON) -> str:
    resource = ref.get("resource", "")
    section, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(section) or {}).get(name)
    if value is None:
        return "0"
    divisor = parse_quantity(ref.get("divisor", "1"))
    amount = parse_quantity(value) / divisor
    return str(-(-amount.numerator // amount.denominator))  # rounded up, as the kubelet does


def _secret_value(store: Store, namespace: str, ref: JSON, secret: bool) -> str | None:
    rt = SECRETS if secret else CONFIGMAPS
    obj = store.get(rt, namespace, ref.get("name", ""))
    if obj is None:
        return None
    data = obj.get("data") or {}
    value = data.get(ref.get("key", ""))
    if value is None:
        return None
    return base64.b64decode(value).decode(errors="replace") if secret else str(value)


def container_env(store: Store, pod: JSON, container: JSON) -> dict[str, str]:
    """The environment the container's process gets (envFrom first, then env in order)."""
    namespace = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, secret in (("secretRef", True), ("configMapRef", False)):
            if kind in source:
                rt = SECRETS if secret else CONFIGMAPS
                obj = store.get(rt, namespace, source[kind].get("name", ""))
                for key, raw in ((obj or {}).get("data") or {}).items():
                    text = base64.b64decode(raw).decode(errors="replace") if secret else raw
                    env[prefix + key] = str(text)
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        source = var.get("valueFrom") or {}
        value: str | None = ""
        if "fieldRef" in source:
            value = field_ref(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            value = _resource_ref(container, source["resourceFieldRef"])
        elif "secretKeyRef" in source:
            value = _secret_value(store, namespace, source["secretKeyRef"], True)
        elif "configMapKeyRef" in source:
            value = _secret_value(store, namespace, source["configMapKeyRef"], False)
        if value is not None:
            env[name] = value
        elif "value" not in var:
            env.setdefault(name, "")
    return env
