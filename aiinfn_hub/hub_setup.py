"""One call to wire aiinfn-hub into a hub configuration (``jupyterhub_config.py``)."""

from __future__ import annotations

from typing import Any


def configure_hub(c: Any, platform_config_file: str, *, iam: bool = True) -> None:
    """Use ``AIInfnSpawner`` (and ``IAMAuthenticator`` unless ``iam=False``) with
    ``platform_config_file``, and serve our API handlers. The IAM issuer and client still come
    from the hub's configuration (``c.IAMAuthenticator.issuer``, ``client_secret_file``...).
    """
    from .logs import logging_config
    from .spawner.handlers import extra_handlers

    c.JupyterHub.spawner_class = "aiinfn"
    c.AIInfnSpawner.platform_config_file = platform_config_file
    c.IAMAuthenticator.platform_config_file = platform_config_file
    if iam:
        c.JupyterHub.authenticator_class = "iam"
    # a list set earlier is extended; on a fresh Config this is traitlets' lazy ``extend``
    c.JupyterHub.extra_handlers.extend(extra_handlers())
    # no OAuth codes or tokens in the log, even at debug level
    c.JupyterHub.logging_config = logging_config()
