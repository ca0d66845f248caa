"""Register a service with a hub configuration: the service, its custom scopes and roles.

Several services grant scopes to every user (the hub's ``user`` role) or to the same groups:
roles are merged by name, never defined twice (the hub refuses a role defined twice), so each
service's registration stays a few lines whatever the others do.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from traitlets.config.loader import LazyConfigValue

# what a service needs from the Hub API to read users and their servers' state
READ_USERS_AND_SERVERS = ["read:users", "read:users:groups", "read:servers", "admin:server_state"]
# the hub's page frame naming services by their display name in the services menu
HUB_TEMPLATES = str(Path(__file__).resolve().parent / "hub_templates")


def access_scope(name: str) -> str:
    """The scope that lets a user reach the service (``access:services!service=<name>``)."""
    return f"access:services!service={name}"


def register_service(
    c: Any,
    name: str,
    url: str,
    *,
    module: str | None = None,
    arguments: Iterable[str] = (),
    environment: Mapping[str, str] | None = None,
    custom_scopes: Mapping[str, str] | None = None,
    hub_scopes: Iterable[str] = READ_USERS_AND_SERVERS,
    display: bool = True,
    display_name: str | None = None,
) -> None:
    """Add the service ``name`` at ``url`` (the hub runs ``python -m <module> <arguments>``
    when ``module`` is given, with ``environment``; otherwise it runs elsewhere), its custom
    scopes (scope -> description; users' sessions may carry them, without a consent page) and
    the role ``<name>-service`` giving the service ``hub_scopes`` on the Hub API.

    ``display_name``: what the hub's services menu says (e.g. "Batch jobs" rather than the
    name in the URL). JupyterHub 6 has no such field: it goes in the service's ``info``
    (also shown by the Hub API) and the hub's page frame is extended (``HUB_TEMPLATES``,
    added to ``c.JupyterHub.template_paths``) to show it."""
    scopes = dict(custom_scopes or {})
    service: dict[str, Any] = {
        "name": name,
        "url": url,
        "display": display,
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": list(scopes),
    }
    if display_name:
        service["info"] = {"display_name": display_name}
        _add_template_path(c, HUB_TEMPLATES)
    if module is not None:
        service["command"] = [sys.executable, "-m", module, *arguments]
        service["environment"] = dict(environment or {})
    c.JupyterHub.services.append(service)
    if scopes:
        c.JupyterHub.custom_scopes.update(
            {scope: {"description": text} for scope, text in scopes.items()}
        )
    grant(c, f"{name}-service", hub_scopes, services=[name])


def grant(
    c: Any,
    role: str,
    scopes: Iterable[str],
    *,
    groups: Iterable[str] = (),
    users: Iterable[str] = (),
    services: Iterable[str] = (),
) -> None:
    """Give ``scopes`` to the role ``role``'s members (``groups``, ``users``, ``services``),
    adding them to the role when it is already defined (``user`` is every user's role)."""
    roles = _roles(c)
    found = next((r for r in roles if r.get("name") == role), None)
    if found is None:
        found = {"name": role, "scopes": []}
        roles.append(found)
    for key, values in (
        ("scopes", scopes),
        ("groups", groups),
        ("users", users),
        ("services", services),
    ):
        _add(found, key, values)
    c.JupyterHub.load_roles = roles


def grant_to_every_user(c: Any, scopes: Iterable[str]) -> None:
    """Add ``scopes`` to the hub's ``user`` role (which keeps ``self``)."""
    grant(c, "user", ["self", *scopes])


def _roles(c: Any) -> list[dict[str, Any]]:
    """``c.JupyterHub.load_roles`` as a list, whether set before or only appended to."""
    roles = c.JupyterHub.load_roles
    if isinstance(roles, LazyConfigValue):
        roles = roles.get_value([])
    return [dict(r) for r in roles]


def _add_template_path(c: Any, path: str) -> None:
    """``path`` among the hub's template folders, after those already configured (which
    win, so a deployment's own page frame is kept), once."""
    paths = c.JupyterHub.template_paths
    if isinstance(paths, LazyConfigValue):
        paths = paths.get_value([])
    if path not in paths:
        c.JupyterHub.template_paths = [*paths, path]


def _add(role: dict[str, Any], key: str, values: Iterable[str]) -> None:
    new = [v for v in values if v not in role.get(key, [])]
    if new or key == "scopes":
        role[key] = [*role.get(key, []), *new]
