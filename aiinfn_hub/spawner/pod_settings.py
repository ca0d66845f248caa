"""KubeSpawner settings for a validated choice: a pure function, so it is tested directly.

The result maps KubeSpawner trait names to values; the spawner applies them before building the
pod, so the pod itself is still made by kubespawner's own ``make_pod``.
"""

from __future__ import annotations

from typing import Any

from ..config import PlatformConfig, parse_memory
from ..kubemodel.literal import literal
from ..platform import placement
from ..platform import vocabulary as v
from ..platform.entitlements import UserContext
from .options import ServerChoice

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
        v.ACCELERATOR: choice.accelerator.name if choice.accelerator else v.NO_ACCELERATOR,
        v.ACCELERATOR_COUNT: str(choice.count),
        v.IMAGE: choice.image.name,
    }


def accounting_annotations(
    choice: ServerChoice, user: UserContext, config: PlatformConfig
) -> dict[str, str]:
    """User and projects (not label-safe in general) go in annotations."""
    return {
        v.USER: user.name,
        v.PROJECTS: ",".join(name for name, _ in user.projects(config)),
        v.SERVER: choice.server or "",
    }


def pod_settings(
    choice: ServerChoice,
    config: PlatformConfig,
    user: UserContext,
    *,
    priority_class: str | None,
    reserved_key: str = placement.DEFAULT_RESERVED_KEY,
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
        settings["node_affinity_required"] = placement.notebook_node_affinity(model, choice.server)
        settings["tolerations"] = placement.accelerator_tolerations(model)
    # nodes reserved for one of the user's projects (taint <reserved_key>=<project>) accept them
    settings["tolerations"] += placement.reservation_tolerations(
        (name for name, _ in user.projects(config)), reserved_key
    )
    return settings
