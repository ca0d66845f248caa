"""One call to wire aiinfn-hub into a hub configuration (``jupyterhub_config.py``)."""

from __future__ import annotations

from typing import Any


def configure_hub(c: Any, platform_config_file: str) -> None:
    """Use ``AIInfnSpawner`` with ``platform_config_file`` and serve our API handlers."""
    from .spawner.handlers import extra_handlers

    c.JupyterHub.spawner_class = "aiinfn"
    c.AIInfnSpawner.platform_config_file = platform_config_file
    # a list set earlier is extended; on a fresh Config this is traitlets' lazy ``extend``
    c.JupyterHub.extra_handlers.extend(extra_handlers())
