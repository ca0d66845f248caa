"""Fixtures of the integration tests: a MockHub with AIInfnSpawner on the emulated cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiinfn_hub.spawner.handlers import extra_handlers
from aiinfn_hub.spawner.spawner import AIInfnSpawner, stop_shared_inventories

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NS = "jupyterhub"


@pytest.fixture
async def hub(hub_app: Any, kube_env: Path, tmp_path: Path) -> AsyncIterator[Any]:
    """A JupyterHub app (MockHub) spawning with AIInfnSpawner and examples/platform.yaml.

    Modules that start a real hub process define their own ``hub`` fixture instead.
    """
    app = await hub_app(
        config={
            "JupyterHub": {
                "spawner_class": AIInfnSpawner,
                "extra_handlers": extra_handlers(),
                # not in the working folder, where another test run would find (and kill) them
                "cookie_secret_file": str(tmp_path / "jupyterhub_cookie_secret"),
            },
            "ConfigurableHTTPProxy": {"pid_file": str(tmp_path / "jupyterhub-proxy.pid")},
            "AIInfnSpawner": {
                "platform_config_file": str(EXAMPLES / "platform.yaml"),
                "notebook_priority_class": "notebook",
                "namespace": NS,
                "cmd": ["jupyterhub-singleuser"],
                "start_timeout": 20,
                # simulated containers write no logs: do not wait for the bucket sidecar
                "bucket_mount_timeout": 0,
            },
        }
    )
    yield app
    await stop_shared_inventories()
