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
from aiinfn_hub.inventory.availability import Usage, node_usage
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


def _normalized(usage: Usage) -> tuple[dict[str, object], dict[str, object]]:
    def clean(per_node: dict[str, dict[str, object]]) -> dict[str, object]:
        out = {n: {r: v for r, v in res.items() if v} for n, res in per_node.items()}
        return {n: res for n, res in out.items() if res}

    return clean(usage.held), clean(usage.preemptible)  # type: ignore[arg-type]


async def test_incremental_counts_match_a_recount_through_churn_and_a_relist(
    live: LiveInventory, emulator: Emulator
) -> None:
    api = live.view.pods._lister.__self__.api_client  # type: ignore[attr-defined]
    core = client.CoreV1Api(api)

    async def recount() -> Usage:
        pods = (await core.list_pod_for_all_namespaces()).items
        return node_usage([api.sanitize_for_serialization(p) for p in pods], 0)

    def bound(name: str, node: str, gpus: str) -> dict[str, object]:
        pod = _gpu_pod(name)
        pod["spec"] = {  # type: ignore[index]
            "nodeName": node,
            "containers": [
                {"name": "c", "image": "x:1", "resources": {"limits": {"nvidia.com/gpu": gpus}}}
            ],
        }
        return pod

    for i, node in enumerate(["server-1", "server-3", "server-3", "server-4"]):
        await core.create_namespaced_pod("default", bound(f"churn-{i}", node, str(1 + i % 2)))
    await core.create_namespaced_pod("default", _gpu_pod("scheduled"))  # bound by the scheduler
    await core.delete_namespaced_pod("churn-0", "default", grace_period_seconds=0)
    await core.patch_namespaced_pod_status("churn-1", "default", {"status": {"phase": "Succeeded"}})
    await core.delete_namespaced_pod("churn-2", "default")  # graceful: terminating first
    emulator.call(lambda: emulator.faults.break_watches("pods", "gone"))  # relist
    await core.create_namespaced_pod("default", bound("after-relist", "server-1", "1"))
    deadline = time.monotonic() + 60
    while True:
        expected = _normalized(await recount())
        if _normalized(live.usage(0)) == expected:
            break
        assert time.monotonic() < deadline, (live.usage(0), expected)
        await asyncio.sleep(0.05)
    # server-1: "scheduled" (3 T4s, the only T4 server) and "after-relist"; churn-0 is gone
    assert expected[0]["server-1"] == {"pods": 2, "nvidia.com/gpu": 4}  # type: ignore[index]
    assert "server-3" not in expected[0]  # churn-1 finished, churn-2 is terminating
