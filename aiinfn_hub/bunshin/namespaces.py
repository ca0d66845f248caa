"""Where jobs may run, and which of a server's volumes can follow a job there (pure).

The service writes Secrets (JuiceFS credentials) and ConfigMaps in the jobs' namespace, so its
role there is powerful: in the hub's namespace (the chart's ``hub`` Secret) or the servers'
(every user's token Secret) it would sit next to everyone's credentials. ``check_jobs_namespace``
refuses those unless ``jobs.allowHubNamespace``; the service runs it before serving.

How the service learns them, most specific first: ``AIINFN_NAMESPACE`` (the servers', as the
hub configuration sets ``AIInfnSpawner.namespace``; ``jupyterhub`` when unset, its default),
``AIINFN_HUB_NAMESPACE`` and ``POD_NAMESPACE`` (the chart's downward API), and the in-cluster
service account's namespace file (the service runs next to the hub).

A job in another namespace than its server's pod cannot use what the pod's volumes name in
that namespace (claims, Secrets, ConfigMaps): ``foreign_references`` finds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config.jobs import Jobs

JSON = dict[str, Any]
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_SERVERS_NAMESPACE = "jupyterhub"  # AIInfnSpawner.namespace when AIINFN_NAMESPACE is unset
# keys of a volume source that name an object of the pod's namespace
_REFERENCES = {
    "persistentVolumeClaim": "a PersistentVolumeClaim",
    "secret": "a Secret",
    "configMap": "a ConfigMap",
    "secretRef": "a Secret",
    "nodePublishSecretRef": "a Secret",
    "nodeStageSecretRef": "a Secret",
    "controllerPublishSecretRef": "a Secret",
    "controllerExpandSecretRef": "a Secret",
}


class NamespaceError(Exception):
    """The jobs' namespace is one the service must not use: the message says why and how."""


def servers_namespace(env: Mapping[str, str]) -> str:
    """The namespace of the users' servers (and of their token Secrets)."""
    return env.get("AIINFN_NAMESPACE", "").strip() or DEFAULT_SERVERS_NAMESPACE


def protected_namespaces(
    env: Mapping[str, str], service_account_file: Path = SERVICE_ACCOUNT_NAMESPACE
) -> dict[str, str]:
    """Namespace -> where it was learnt, for the hub's and the servers' namespaces."""
    found = {servers_namespace(env): "the servers' namespace (AIINFN_NAMESPACE)"}
    for name in ("AIINFN_HUB_NAMESPACE", "POD_NAMESPACE"):
        value = env.get(name, "").strip()
        if value:
            found.setdefault(value, f"the hub's namespace ({name})")
    try:
        value = service_account_file.read_text().strip()
    except OSError:
        value = ""
    if value:
        found.setdefault(value, f"the hub's namespace ({service_account_file})")
    return found


def check_jobs_namespace(jobs: Jobs, protected: Mapping[str, str]) -> None:
    """Raise :class:`NamespaceError` when ``jobs.namespace`` is a protected one (and not
    explicitly allowed)."""
    why = protected.get(jobs.namespace)
    if why is None or jobs.allow_hub_namespace:
        return
    raise NamespaceError(
        f"jobs.namespace is {jobs.namespace!r}, which is {why}: the service writes Secrets "
        "in the jobs' namespace and must not get that right next to the hub's and users' "
        "tokens. Give jobs a namespace of their own (e.g. `namespace: bunshin`, created "
        "with the service's Role in it), or set `jobs.allowHubNamespace: true` to accept it"
    )


def foreign_references(volume: JSON) -> list[str]:
    """What ``volume`` names in its pod's namespace (e.g. ``["a PersistentVolumeClaim"]``);
    empty when it can go to any namespace as it is."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in _REFERENCES and isinstance(inner, dict) and inner:
                    found.append(_REFERENCES[key])
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    # an ephemeral volume's claim is made in the job's own namespace, from its template
    walk({k: v for k, v in volume.items() if k not in ("name", "ephemeral")})
    return sorted(set(found))
