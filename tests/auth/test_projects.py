"""Projects as hub groups with their settings as properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyterhub import orm

from aiinfn_hub.auth.projects import (
    apply_group_properties,
    flat_properties,
    project_group_properties,
)
from aiinfn_hub.config import load_platform_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def db() -> orm.Session:
    return orm.new_session_factory("sqlite:///:memory:")()


def test_properties_carry_display_name_limits_and_storage() -> None:
    groups = project_group_properties(load_platform_config(EXAMPLES / "platform.yaml"))
    assert set(groups) == {"ml-infn", "cms", "lhcb-flashsim", "qml", "fpga-lab"}
    cms = groups["cms"]
    assert cms["displayName"] == "CMS" and cms["managedBy"] == "aiinfn-hub"
    assert cms["limits.accelerators"] == "t4, rtx5000, a30, a100-1g-10gb"
    assert cms["limits.maxGpus"] == "1" and cms["limits.maxMemory"] == "32Gi"
    assert cms["limits.maxCpu"] == "8"
    assert cms["storage.sharedFolder"] == "true" and cms["storage.gid"] == "5002"


def test_properties_are_flat_strings_the_admin_panel_can_show() -> None:
    """The panel shows each value in a text field: a nested one reads [object Object]."""
    for properties in project_group_properties(
        load_platform_config(EXAMPLES / "platform.yaml")
    ).values():
        assert all(isinstance(v, str) for v in properties.values()), properties


def test_flat_properties_join_paths_and_lists() -> None:
    nested = {"a": {"b": {"c": 1}, "d": []}, "e": False, "f": ["x", "y"], "g": 0.5}
    assert flat_properties(nested) == {
        "a.b.c": "1",
        "g": "0.5",
        "a.d": "(none)",
        "e": "false",
        "f": "x, y",
    }


def test_groups_are_created_updated_and_left_alone_when_unchanged(db: orm.Session) -> None:
    other = orm.Group(name="platform-admins", properties={"mine": 1})
    db.add(other)
    db.commit()
    assert apply_group_properties(db, {"cms": {"displayName": "CMS"}}) == ["cms"]
    assert orm.Group.find(db, "cms").properties == {"displayName": "CMS"}
    assert apply_group_properties(db, {"cms": {"displayName": "CMS"}}) == []
    assert apply_group_properties(db, {"cms": {"displayName": "CMS 2"}}) == ["cms"]
    assert orm.Group.find(db, "cms").properties == {"displayName": "CMS 2"}
    assert orm.Group.find(db, "platform-admins").properties == {"mine": 1}
