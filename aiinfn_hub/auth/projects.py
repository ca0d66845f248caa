"""Projects of the platform configuration as JupyterHub groups with properties.

Each project is the hub group of the same name (its IAM group). Its settings are written as the
group's ``properties`` so admins see display name, allowances and storage in the admin panel;
membership stays the authenticator's (``manage_groups``), from IAM at every login.
"""

from __future__ import annotations

from typing import Any

from ..config import PlatformConfig
from ..platform.vocabulary import MANAGER_HUB

MANAGED_BY = MANAGER_HUB  # the group property saying the hub keeps the group in sync


def project_group_properties(config: PlatformConfig) -> dict[str, dict[str, Any]]:
    """``{group name: properties}`` for every project (pure: JSON-ready dicts)."""
    groups: dict[str, dict[str, Any]] = {}
    for name, project in config.projects.items():
        properties = project.model_dump(mode="json", by_alias=True, exclude_none=True)
        properties["managedBy"] = MANAGED_BY
        groups[name] = properties
    return groups


def apply_group_properties(db: Any, groups: dict[str, dict[str, Any]]) -> list[str]:
    """Create missing project groups and update changed properties in the hub database.

    Returns the names of the groups created or changed. Groups not in ``groups`` are left alone.
    """
    from jupyterhub import orm

    changed: list[str] = []
    for name, properties in groups.items():
        group = orm.Group.find(db, name)
        if group is None:
            group = orm.Group(name=name)
            db.add(group)
        if group.properties != properties:
            group.properties = properties
            changed.append(name)
    if changed:
        db.commit()
    return changed
