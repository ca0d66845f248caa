"""KubeSpawner settings for a validated choice: a pure function, so it is tested directly.

The result maps KubeSpawner trait names to values; the spawner applies them before building the
pod, so the pod itself is still made by kubespawner's own ``make_pod``.
"""

from __future__ import annotations

from typing import Any

from ..config import PlatformConfig, parse_memory
from ..kube.literal import literal
from .options import ServerChoice
from .policy import UserContext

LABEL_PREFIX = "aiinfn.infn.it"
# the "restricted" Pod Security Standard for the notebook container
RESTRICTED_CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def accounting_labels(choice: ServerChoice) -> dict[str, str]:
    """Labels that let accounting and dashboards group pods by accelerator."""
    return {
        f"{LABEL_PREFIX}/accelerator": choice.accelerator.name if choice.accelerator else "none",
        f"{LABEL_PREFIX}/accelerator-count": str(choice.count),
        f"{LABEL_PREFIX}/image": choice.image.name,
    }


def accounting_annotations(
    choice: ServerChoice, user: UserContext, config: PlatformConfig
) -> dict[str, str]:
    """User and projects (not label-safe in general) go in annotations."""
    return {
        f"{LABEL_PREFIX}/user": user.name,
        f"{LABEL_PREFIX}/projects": ",".join(name for name, _ in user.projects(config)),
        f"{LABEL_PREFIX}/server": choice.server or "",
    }


def pod_settings(
    choice: ServerChoice,
    config: PlatformConfig,
    user: UserContext,
    *,
    priority_class: str | None,
    reserved_key: str = "reserved",
) -> dict[str, Any]:
    """KubeSpawner trait values for ``choice`` (image, resources, placement, security)."""
    fraction = config.resources.guarantee_fraction
    memory = parse_memory(choice.memory)
    settings: dict[str, Any] = {
        "image": choice.image.image,
        "cpu_limit": choice.cpu,
        "cpu_guarantee": choice.cpu * fraction,
        "mem_limit": memory,
        "mem_guarantee": int(memory * fraction),
        "extra_resource_limits": {},
        "extra_resource_guarantees": {},
        "node_affinity_required": [],
        "tolerations": [],
        "extra_labels": accounting_labels(choice),
        # kubespawner formats annotations as templates: a "{" in a username stays literal
        "extra_annotations": literal(accounting_annotations(choice, user, config)),
        "container_security_context": dict(RESTRICTED_CONTAINER_SECURITY),
        "allow_privilege_escalation": False,
        "automount_service_account_token": False,
    }
    if priority_class:
        settings["priority_class_name"] = priority_class
    model = choice.accelerator
    if model is not None:
        settings["extra_resource_limits"] = {model.resource: str(choice.count)}
        settings["extra_resource_guarantees"] = {model.resource: str(choice.count)}
        expressions = [
            {"key": key, "operator": "In", "values": [value]}
            for key, value in sorted(model.node_selector.items())
        ]
        if choice.server:
            expressions.append(
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [choice.server]}
            )
        if expressions:
            settings["node_affinity_required"] = [{"matchExpressions": expressions}]
        settings["tolerations"] = [
            t.model_dump(by_alias=True, exclude_defaults=True) | {"operator": t.operator}
            for t in model.tolerations
        ]
    # nodes reserved for one of the user's projects (taint <reserved_key>=<project>) accept them
    settings["tolerations"] += [
        {"key": reserved_key, "operator": "Equal", "value": name, "effect": "NoSchedule"}
        for name, _ in user.projects(config)
    ]
    return settings
