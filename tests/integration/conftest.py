"""Fixtures of the integration tests: a MockHub with AIInfnSpawner on the emulated cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import ARGS, CHROMIUM, fresh_page
from bunshin_helpers import bunshin_config
from dev_helpers import Dev, started_dev
from iam_platform import Hub, running_platform
from playwright.sync_api import Browser, Page, sync_playwright

from aiinfn_hub.dev.processes import free_port
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


# -- the browser tests (test_e2e_*.py): one local platform for all of them -----------------


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """``aiinfn-dev dev`` for the whole session (modules may override ``dev`` with their own)."""
    with started_dev(tmp_path_factory.mktemp("e2e") / "state", free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one module: Playwright's sync API keeps an event loop running while it is
    open, and the asyncio tests of later modules need the thread's loop free."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run scripts/setup (Debian package chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies) and page; a screenshot of its last state is saved
    as ``test-artifacts/e2e/<test name>.png``."""
    with fresh_page(browser, request.node.name) as opened:
        yield opened


# -- a real hub with 5-second tokens, shared by test_iam_tokens.py and test_restarts.py ------


def _fast_tokens_config(emulator: Any, platform: Path) -> str:
    # the Bunshin service, and after a failed renewal the provider asked again 1 s later
    return bunshin_config(emulator, platform) + "\nc.IAMAuthenticator.provider_retry_interval = 1\n"


@pytest.fixture(scope="session")
def fast_tokens_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """Access tokens live 5 s, renewed 2 s before expiry; servers polled every second; the
    proxy in a process of its own (as z2jh runs it, so a hub restart keeps the routes); the
    Bunshin service. Tests that restart the hub or the provider leave them running."""
    with running_platform(
        tmp_path_factory.mktemp("fast-tokens"),
        access_token_ttl=5,
        margin=2,
        refresh_age=1,
        poll_interval=1,
        external_proxy=True,
        extra_config=_fast_tokens_config,
    ) as running:
        yield running
