"""Benchmarks of the Kubernetes API emulator (not run in CI).

    .venv/bin/python bench/emulator.py [--nodes 500] [--pods 5000] [--creates 300]

Prints, measured side by side in one run:
- pods created per second through kubernetes_asyncio (with and without schema validation);
- list latency of all pods with 500 nodes and 5,000 pods: raw JSON over HTTP versus the same
  list through kubernetes_asyncio's typed client (which deserialises every object);
- watch event latency: from a create's response to its ADDED event on an open watch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch
from tornado.httpclient import AsyncHTTPClient

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, node_object
from aiinfn_hub.dev.emulator.resources import NODES, PODS
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.dev.emulator.store import Store


def _pod(name: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "python:3.11",
                "command": ["sleep", "infinity"],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }
        ],
        "restartPolicy": "Never",
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _preload(store: Store, nodes: int, pods: int) -> None:
    """Put many nodes and bound pods straight into the store (the API path is measured apart)."""
    cluster = ClusterSpec.model_validate(
        {
            "nodes": [
                {"name": f"n{i:04d}", "capacity": {"cpu": "64", "memory": "256Gi"}}
                for i in range(nodes)
            ]
        }
    )
    for i, node in enumerate(cluster.nodes):
        store.create(NODES, node_object(node, i, cluster.kubernetes_version))
    for i in range(pods):
        pod = _pod(f"bulk-{i:05d}", f"n{i % nodes:04d}")
        pod["metadata"]["namespace"] = "bulk"
        pod["status"] = {"phase": "Running", "podIP": f"127.2.{i // 250}.{i % 250 + 1}"}
        store.create(PODS, pod)


async def _api(kubeconfig: Path) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


async def bench_creates(emu: Emulator, count: int) -> float:
    api = await _api(emu.write_kubeconfig())
    core = client.CoreV1Api(api)
    t0 = time.perf_counter()
    for i in range(count):
        await core.create_namespaced_pod("default", _pod(f"create-{i:05d}"))
    elapsed = time.perf_counter() - t0
    await api.close()
    return count / elapsed


async def bench_list(emu: Emulator, rounds: int) -> tuple[float, float, int]:
    api = await _api(emu.write_kubeconfig())
    core = client.CoreV1Api(api)
    http = AsyncHTTPClient()
    raw, typed = [], []
    count = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        resp = await http.fetch(
            f"{emu.url}/api/v1/pods",
            headers=emu.auth_headers,
            ssl_options=emu.access.ssl_context(),
            request_timeout=120,
        )
        count = len(json.loads(resp.body)["items"])
        raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await core.list_pod_for_all_namespaces()
        typed.append(time.perf_counter() - t0)
    await api.close()
    return statistics.median(raw), statistics.median(typed), count


async def bench_watch(emu: Emulator, events: int) -> float:
    api = await _api(emu.write_kubeconfig())
    core = client.CoreV1Api(api)
    latencies: list[float] = []
    sent: dict[str, float] = {}
    w = watch.Watch()
    stream = w.stream(core.list_namespaced_config_map, "default", timeout_seconds=60)

    async def consume() -> None:
        async for event in stream:
            name = event["object"].metadata.name
            if event["type"] == "ADDED" and name in sent:
                latencies.append(time.perf_counter() - sent[name])
                if len(latencies) == events:
                    return

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    for i in range(events):
        name = f"watch-{i:04d}"
        sent[name] = time.perf_counter()
        await core.create_namespaced_config_map(
            "default", {"metadata": {"name": name}, "data": {"k": "v"}}
        )
    await asyncio.wait_for(consumer, 60)
    w.stop()
    await api.close()
    return statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--creates", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        rates = {}
        for validate in (True, False):
            cluster = ClusterSpec.model_validate(
                {
                    "nodes": [
                        {
                            "name": "n0",
                            "capacity": {"cpu": "100000", "memory": "100Ti", "pods": "100000"},
                        }
                    ]
                }
            )
            with Emulator(cluster, state_dir=Path(tmp) / f"c{validate}", validate=validate) as emu:
                rates[validate] = asyncio.run(bench_creates(emu, args.creates))
        print(
            f"pod creates/s via kubernetes_asyncio: {rates[True]:.0f} validated, "
            f"{rates[False]:.0f} unvalidated (ratio {rates[False] / rates[True]:.2f})"
        )

        with Emulator(ClusterSpec(namespaces=["bulk"]), state_dir=Path(tmp) / "big") as emu:
            emu.call(lambda: _preload(emu.store, args.nodes, args.pods))
            raw, typed, count = asyncio.run(bench_list(emu, 5))
            print(
                f"list {count} pods ({args.nodes} nodes): raw HTTP+JSON {raw * 1000:.0f} ms, "
                f"kubernetes_asyncio typed {typed * 1000:.0f} ms "
                f"(client/emulator ratio {typed / raw:.1f})"
            )
            latency = asyncio.run(bench_watch(emu, 200))
            print(f"watch event latency (create response -> ADDED): median {latency * 1000:.2f} ms")


if __name__ == "__main__":
    main()
