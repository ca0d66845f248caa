"""Fixtures shared by the whole suite: an in-process emulated cluster and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from emulator_client import RawClient

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, load_cluster_file

if TYPE_CHECKING:
    from aiinfn_hub.dev.emulator.runtime import Emulator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def example_cluster() -> ClusterSpec:
    """The paper's four servers (examples/cluster.yaml)."""
    return load_cluster_file(EXAMPLES / "cluster.yaml")


@pytest.fixture
def emulator(example_cluster: ClusterSpec, tmp_path: Path) -> Iterator[Emulator]:
    """The example cluster, served on 127.0.0.1 on its own thread (simulated containers)."""
    from aiinfn_hub.dev.emulator.runtime import Emulator

    emu = Emulator(example_cluster, state_dir=tmp_path / "emulator").start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
async def kube_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    """Point kubespawner and kubernetes_asyncio at ``emulator`` the standard way (KUBECONFIG).

    kubernetes_asyncio reads the default kubeconfig location at import, and kubespawner caches
    the loaded config, its clients and its reflectors at class level: reset all of them so each
    test talks to its own emulator.
    """
    import kubernetes_asyncio.config.kube_config as kube_config
    from kubespawner import KubeSpawner, clients

    path = emulator.write_kubeconfig()
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    clients.load_config.cache_clear()
    clients._client_cache.clear()
    KubeSpawner.reflectors.clear()
    yield path
    for reflector in list(KubeSpawner.reflectors.values()):
        await reflector.stop()
    KubeSpawner.reflectors.clear()
    for client in list(clients._client_cache.values()):
        await client.api_client.close()
    clients._client_cache.clear()
    clients.load_config.cache_clear()


@pytest.fixture
def raw(emulator: Emulator) -> RawClient:
    return RawClient(emulator.access)
