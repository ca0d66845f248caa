"""Projects of the platform configuration as JupyterHub groups with properties.

Each project is the hub group of the same name (its IAM group). Its settings are written as the
group's ``properties`` so admins see display name, allowances and storage in the admin panel;
membership stays the authenticator's (``manage_groups``), from IAM at every login.

The admin panel shows each property as one text field, so properties are flat strings:
``limits: {maxGpus: 1}`` becomes ``"limits.maxGpus": "1"`` and a list becomes
``"t4, a30"`` (a nested value would read ``[object Object]``). The hub only writes them; the
platform's code reads projects from the platform configuration, never from group properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import PlatformConfig
from ..config.dotted import dotted_items
from ..platform.vocabulary import MANAGER_HUB

MANAGED_BY = MANAGER_HUB  # the group property saying the hub keeps the group in sync


def project_group_properties(config: PlatformConfig) -> dict[str, dict[str, str]]:
    """``{group name: flat properties}`` for every project (pure: JSON-ready dicts)."""
    groups: dict[str, dict[str, str]] = {}
    for name, project in config.projects.items():
        properties = flat_properties(
            project.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
        properties["managedBy"] = MANAGED_BY
        groups[name] = properties
    return groups


def flat_properties(value: Mapping[str, Any]) -> dict[str, str]:
    """Nested settings as ``{"dotted.key": "text"}``, the shape the admin panel displays."""
    return {path: _text(item) for path, item in dotted_items(value).items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) if value else "(none)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "8 CPUs", not "8.0"
    return str(value)


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
