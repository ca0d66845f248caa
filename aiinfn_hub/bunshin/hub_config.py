"""Register the Bunshin service with a hub configuration: service, custom scopes, roles."""

from __future__ import annotations

import sys
from typing import Any

from .app import ADMIN, OFFLOAD, SUBMIT

SERVICE = "bunshin"
ACCESS = f"access:services!service={SERVICE}"


def configure_bunshin(
    c: Any,
    platform_config_file: str,
    url: str,
    *,
    managed: bool = True,
    environment: dict[str, str] | None = None,
    offload_groups: list[str] | None = None,
    admin_groups: list[str] | None = None,
) -> None:
    """Add the service (hub-managed unless ``managed=False``), its scopes and the roles.

    Every user may submit (project membership is checked by the service); members of
    ``offload_groups`` may offload; members of ``admin_groups`` (and hub admins) see and cancel
    all jobs. Servers' own tokens get the submit scope, so the ``bunshin`` CLI works inside a
    server with ``$JUPYTERHUB_API_TOKEN``.
    """
    service: dict[str, Any] = {
        "name": SERVICE,
        "url": url,
        "display": True,
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": [SUBMIT, OFFLOAD, ADMIN],
    }
    if managed:
        service["command"] = [
            sys.executable,
            "-m",
            "aiinfn_hub.bunshin",
            "--config",
            platform_config_file,
        ]
        service["environment"] = dict(environment or {})
    c.JupyterHub.services.append(service)
    c.JupyterHub.custom_scopes.update(
        {
            SUBMIT: {"description": "Submit Bunshin jobs (clones of your servers)."},
            OFFLOAD: {"description": "Offload Bunshin jobs to remote sites."},
            ADMIN: {"description": "See and cancel everyone's Bunshin jobs."},
        }
    )
    c.JupyterHub.load_roles.extend(
        [
            {
                "name": "bunshin-service",
                "services": [SERVICE],
                "scopes": ["read:users", "read:users:groups", "read:servers", "admin:server_state"],
            },
            {"name": "user", "scopes": ["self", ACCESS, SUBMIT]},
            {
                "name": "bunshin-offload",
                "groups": list(offload_groups or []),
                "scopes": [ACCESS, OFFLOAD],
            },
            {
                "name": "bunshin-admin",
                "groups": list(admin_groups or []),
                "scopes": [ACCESS, ADMIN],
            },
        ]
    )
    # where the `bunshin` CLI inside a server finds the service
    c.AIInfnSpawner.bunshin_url = f"{url.rstrip('/')}/services/{SERVICE}/api/v1"
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        ACCESS,
        SUBMIT,
        OFFLOAD,
    ]
