"""Registering services with a hub configuration: several services share the roles they grant
(the hub refuses a role defined twice), and Bunshin's registration is what it was."""

from __future__ import annotations

import sys
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import LazyConfigValue

from aiinfn_hub.bunshin.hub_config import configure_bunshin
from aiinfn_hub.services.registration import (
    access_scope,
    grant,
    grant_to_every_user,
    register_service,
)


def resolved(value: Any, initial: Any) -> Any:
    """A configuration value as the hub sees it (appends and updates applied)."""
    return value.get_value(initial) if isinstance(value, LazyConfigValue) else value


def test_two_services_granting_every_user_share_one_user_role() -> None:
    c = Config()
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:users:activity"]}]
    register_service(c, "alpha", "http://alpha:1", custom_scopes={"custom:alpha:x": "X."})
    grant_to_every_user(c, [access_scope("alpha")])
    register_service(c, "beta", "http://beta:2", module="beta.service", arguments=["-v"])
    grant_to_every_user(c, [access_scope("beta")])
    grant(c, "alpha-admin", ["custom:alpha:x"], groups=["ops"])
    grant(c, "alpha-admin", ["custom:alpha:x"], groups=["ops", "sre"])
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == [
        "self",
        "read:users:activity",
        "access:services!service=alpha",
        "access:services!service=beta",
    ]
    assert roles["alpha-admin"] == {
        "name": "alpha-admin",
        "scopes": ["custom:alpha:x"],
        "groups": ["ops", "sre"],
    }
    assert roles["beta-service"]["services"] == ["beta"]
    alpha, beta = resolved(c.JupyterHub.services, [])
    assert "command" not in alpha and alpha["oauth_client_allowed_scopes"] == ["custom:alpha:x"]
    assert beta["command"] == [sys.executable, "-m", "beta.service", "-v"]
    assert resolved(c.JupyterHub.custom_scopes, {}) == {"custom:alpha:x": {"description": "X."}}


def test_bunshin_registers_its_service_scopes_and_roles() -> None:
    c = Config()
    configure_bunshin(
        c,
        "/etc/aiinfn/platform.yaml",
        "http://127.0.0.1:10101",
        environment={"AIINFN_NAMESPACE": "jupyterhub"},
        offload_groups=["lhcb-flashsim"],
        admin_groups=["platform-admins"],
    )
    (service,) = resolved(c.JupyterHub.services, [])
    assert service == {
        "name": "bunshin",
        "url": "http://127.0.0.1:10101",
        "display": True,
        "info": {"display_name": "Batch jobs"},  # the hub's services menu (HUB_TEMPLATES)
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": [
            "custom:bunshin:submit",
            "custom:bunshin:offload",
            "custom:bunshin:admin",
        ],
        "command": [
            sys.executable,
            "-m",
            "aiinfn_hub.bunshin",
            "--config",
            "/etc/aiinfn/platform.yaml",
        ],
        "environment": {"AIINFN_NAMESPACE": "jupyterhub"},
    }
    access = "access:services!service=bunshin"
    assert sorted(resolved(c.JupyterHub.custom_scopes, {})) == [
        "custom:bunshin:admin",
        "custom:bunshin:offload",
        "custom:bunshin:submit",
    ]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles == {
        "bunshin-service": {
            "name": "bunshin-service",
            "services": ["bunshin"],
            "scopes": ["read:users", "read:users:groups", "read:servers", "admin:server_state"],
        },
        "user": {"name": "user", "scopes": ["self", access, "custom:bunshin:submit"]},
        "bunshin-offload": {
            "name": "bunshin-offload",
            "groups": ["lhcb-flashsim"],
            "scopes": [access, "custom:bunshin:offload"],
        },
        "bunshin-admin": {
            "name": "bunshin-admin",
            "groups": ["platform-admins"],
            "scopes": [access, "custom:bunshin:admin"],
        },
    }
    assert c.AIInfnSpawner.bunshin_url == "http://127.0.0.1:10101/services/bunshin/api/v1"
    assert "custom:bunshin:submit" in c.Spawner.server_token_scopes
    unmanaged = Config()
    configure_bunshin(unmanaged, "/p.yaml", "http://bunshin:80", managed=False)
    assert "command" not in resolved(unmanaged.JupyterHub.services, [])[0]
