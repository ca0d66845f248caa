"""Benchmark: spawn-form rendering with the cached inventory vs listing the cluster each time.

    .venv/bin/python bench/form.py [--nodes 500] [--pods 5000] [--renders 200]

The emulator holds ``--nodes`` GPU nodes and ``--pods`` bound pods. "cached" renders the form
from the informer cache (what AIInfnSpawner does); "naive" lists nodes and pods through the
kubernetes_asyncio client on every render, as hand-written hub configs do. Prints p50/p95 of
both, side by side from one run, and ``speedup: N.Nx`` (p50 naive / p50 cached).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

from aiinfn_hub.config import load_platform_config
from aiinfn_hub.dev.emulator.cluster import ClusterSpec, node_object
from aiinfn_hub.dev.emulator.resources import NODES, PODS
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.emulator.store import Store
from aiinfn_hub.inventory.availability import accelerator_availability, node_usage
from aiinfn_hub.inventory.live import LiveInventory
from aiinfn_hub.kube.informer import ClusterView
from aiinfn_hub.platform.entitlements import UserContext
from aiinfn_hub.spawner.spawner import render_form

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PRODUCTS = ["Tesla-T4", "Quadro-RTX-5000", "NVIDIA-A100-SXM4-80GB", "NVIDIA-A30"]


def _preload(store: Store, nodes: int, pods: int) -> None:
    spec = ClusterSpec.model_validate(
        {
            "nodes": [
                {
                    "name": f"gpu-{i:04d}",
                    "labels": {"nvidia.com/gpu.product": PRODUCTS[i % 4]},
                    "capacity": {"cpu": "64", "memory": "256Gi", "nvidia.com/gpu": "8"},
                }
                for i in range(nodes)
            ]
        }
    )
    for i, node in enumerate(spec.nodes):
        store.create(NODES, node_object(node, i, spec.kubernetes_version))
    for i in range(pods):
        store.create(
            PODS,
            {
                "metadata": {"name": f"p{i:05d}", "namespace": "bulk"},
                "spec": {
                    "nodeName": f"gpu-{i % nodes:04d}",
                    "containers": [
                        {
                            "name": "c",
                            "image": "x:1",
                            "resources": {"limits": {"nvidia.com/gpu": "1" if i % 5 == 0 else "0"}},
                        }
                    ],
                },
                "status": {"phase": "Running"},
            },
        )


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


async def _run(emu: Emulator, renders: int) -> None:
    platform = load_platform_config(EXAMPLES / "platform.yaml")
    user = UserContext("bench", frozenset({"ml-infn"}))
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(emu.write_kubeconfig()), client_configuration=cfg)
    api = client.ApiClient(configuration=cfg)
    view = ClusterView(api)
    view.start()
    await view.wait_ready(120)
    live = LiveInventory(view)
    core = client.CoreV1Api(api)

    cached: list[float] = []
    for _ in range(renders):
        t0 = time.perf_counter()
        render_form(platform, user, live.availability(platform, set(user.groups)), {})
        cached.append(time.perf_counter() - t0)

    naive: list[float] = []
    for _ in range(max(renders // 10, 5)):  # each naive render takes long: fewer samples
        t0 = time.perf_counter()
        nodes = [api.sanitize_for_serialization(n) for n in (await core.list_node()).items]
        pods: Any = (await core.list_pod_for_all_namespaces()).items
        pods = [api.sanitize_for_serialization(p) for p in pods]
        models = accelerator_availability(
            platform, nodes, node_usage(pods), projects=set(user.groups)
        )
        render_form(platform, user, models, {})
        naive.append(time.perf_counter() - t0)
    await view.stop()
    await api.close()

    c50, c95 = _percentiles(cached)
    n50, n95 = _percentiles(naive)
    print(f"cached inventory: p50 {c50:.1f} ms, p95 {c95:.1f} ms ({len(cached)} renders)")
    print(f"naive listing:    p50 {n50:.1f} ms, p95 {n95:.1f} ms ({len(naive)} renders)")
    print(f"speedup: {n50 / c50:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--renders", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        emu = Emulator(ClusterSpec(namespaces=["bulk"]), state_dir=tmp, validate=False)
        with emu:
            emu.call(lambda: _preload(emu.store, args.nodes, args.pods))
            asyncio.run(_run(emu, args.renders))


if __name__ == "__main__":
    main()
