"""One call to wire aiinfn-hub into a hub configuration (``jupyterhub_config.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the hub's pages (home, login, logout, "not in a project"), each extending JupyterHub's own
HUB_TEMPLATES = str(Path(__file__).resolve().parent / "hub_templates")


def configure_hub(c: Any, platform_config_file: str, *, iam: bool = True) -> None:
    """Use ``AIInfnSpawner`` (and ``IAMAuthenticator`` unless ``iam=False``) with
    ``platform_config_file``, serve our API handlers and our page templates. The IAM issuer
    and client still come from the hub's configuration (``c.IAMAuthenticator.issuer``,
    ``client_secret_file``...).
    """
    from .auth.hub_pages import home_servers
    from .logs import logging_config
    from .spawner.handlers import extra_handlers

    c.JupyterHub.spawner_class = "aiinfn"
    # a hub restart (every `helm upgrade`, every node drain) must not stop the users' servers:
    # the restarted hub finds them again from its database and the pods. The local platform
    # ends its servers on Ctrl-C by stopping its emulated cluster.
    c.JupyterHub.cleanup_servers = False
    c.AIInfnSpawner.platform_config_file = platform_config_file
    c.IAMAuthenticator.platform_config_file = platform_config_file
    if iam:
        c.JupyterHub.authenticator_class = "iam"
    # a list set earlier is extended; on a fresh Config this is traitlets' lazy ``extend``
    c.JupyterHub.extra_handlers.extend(extra_handlers())
    # ours before any set earlier, so they replace the stock pages (which they extend)
    c.JupyterHub.template_paths.insert(0, HUB_TEMPLATES)
    # what the home page says about running servers (called with the current user)
    c.JupyterHub.template_vars.update({"aiinfn_servers": home_servers(platform_config_file)})
    # no OAuth codes or tokens in the log, even at debug level
    c.JupyterHub.logging_config = logging_config()
