"""The live inventory follows the emulated cluster through list + watch, and survives faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config

from aiinfn_hub.config import PlatformConfig, load_platform_config
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.inventory.live import LiveInventory
from aiinfn_hub.kube.informer import ClusterView

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
async def live(emulator: Emulator) -> AsyncIterator[LiveInventory]:
    cfg = client.Configuration()
    await config.load_kube_config(
        config_file=str(emulator.write_kubeconfig()), client_configuration=cfg
    )
    api = client.ApiClient(configuration=cfg)
    view = ClusterView(api)
    view.start()
    await view.wait_ready(10)
    yield LiveInventory(view)
    await view.stop()
    await api.close()


@pytest.fixture
def platform() -> PlatformConfig:
    return load_platform_config(EXAMPLES / "platform.yaml")


async def _until(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def _t4_free(live: LiveInventory, platform: PlatformConfig) -> int:
    return next(m.free for m in live.availability(platform, None) if m.name == "t4")


def _gpu_pod(name: str) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "Tesla-T4"},
            "containers": [
                {"name": "c", "image": "x:1", "resources": {"limits": {"nvidia.com/gpu": "3"}}}
            ],
        },
    }


async def test_counts_follow_pods(
    live: LiveInventory, platform: PlatformConfig, emulator: Emulator
) -> None:
    assert _t4_free(live, platform) == 4
    core = client.CoreV1Api(live.view.pods._lister.__self__.api_client)  # type: ignore[attr-defined]
    await core.create_namespaced_pod("jupyterhub", _gpu_pod("gpu-user"))
    await _until(lambda: _t4_free(live, platform) == 1)
    await core.delete_namespaced_pod("gpu-user", "jupyterhub", grace_period_seconds=0)
    await _until(lambda: _t4_free(live, platform) == 4)


async def test_relists_after_410_and_recovers_from_errors(
    live: LiveInventory, platform: PlatformConfig, emulator: Emulator
) -> None:
    core = client.CoreV1Api(live.view.pods._lister.__self__.api_client)  # type: ignore[attr-defined]

    def watching() -> bool:
        return emulator.call(lambda: any(w.rt.plural == "pods" for w in emulator.store._watchers))

    await _until(watching)
    emulator.call(lambda: emulator.faults.fail_next("list", "pods", count=1, code=500))
    emulator.call(lambda: emulator.faults.break_watches("pods", "gone"))
    await core.create_namespaced_pod("default", _gpu_pod("after-fault"))
    await _until(lambda: _t4_free(live, platform) == 1)
    assert live.view.pods.failures >= 1  # the injected 500 was seen and retried
    version = live.view.pods.version
    assert live.usage() is live.usage()  # recounted only when pods change
    assert live.view.pods.version == version


async def test_the_pod_cache_keeps_no_environment_values_or_commands(
    live: LiveInventory, platform: PlatformConfig, emulator: Emulator
) -> None:
    core = client.CoreV1Api(live.view.pods._lister.__self__.api_client)  # type: ignore[attr-defined]
    pod = _gpu_pod("with-secrets")
    container = pod["spec"]["containers"][0]  # type: ignore[index]
    container["env"] = [{"name": "WANDB_API_KEY", "value": "s3cr3t-value"}]
    container["command"] = ["train", "--password=hunter2"]
    pod["metadata"]["annotations"] = {"note": "private"}  # type: ignore[index]
    await core.create_namespaced_pod("jupyterhub", pod)
    await _until(lambda: _t4_free(live, platform) == 1)  # still counted
    (cached,) = [p for p in live.view.pods.objects() if p["metadata"]["name"] == "with-secrets"]
    text = repr(cached)
    assert "s3cr3t-value" not in text and "hunter2" not in text and "private" not in text
    # requests defaulted from limits by admission, as the real API server does
    gpus = {"nvidia.com/gpu": "3"}
    assert cached["spec"]["containers"] == [
        {"name": "c", "resources": {"limits": gpus, "requests": gpus}}
    ]
