"""Register the Bunshin service with a hub configuration: service, custom scopes, roles."""

from __future__ import annotations

from typing import Any

from ..services.registration import access_scope, grant, grant_to_every_user, register_service
from .scopes import ADMIN, DESCRIPTIONS, DISPLAY_NAME, OFFLOAD, SERVICE, SUBMIT

ACCESS = access_scope(SERVICE)


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
    register_service(
        c,
        SERVICE,
        url,
        module="aiinfn_hub.bunshin" if managed else None,
        arguments=["--config", platform_config_file],
        environment=environment,
        custom_scopes=DESCRIPTIONS,
        display_name=DISPLAY_NAME,
    )
    grant_to_every_user(c, [ACCESS, SUBMIT])
    grant(c, "bunshin-offload", [ACCESS, OFFLOAD], groups=offload_groups or [])
    grant(c, "bunshin-admin", [ACCESS, ADMIN], groups=admin_groups or [])
    # where the `bunshin` CLI inside a server finds the service
    c.AIInfnSpawner.bunshin_url = f"{url.rstrip('/')}/services/{SERVICE}/api/v1"
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        ACCESS,
        SUBMIT,
        OFFLOAD,
    ]
