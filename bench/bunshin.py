"""Benchmark: Bunshin submissions against the emulated cluster.

    .venv/bin/python bench/bunshin.py [--users 20] [--jobs 200]

``--users`` notebook pods (as AIInfnSpawner makes them) run in the emulator; ``--jobs``
submissions, spread over the users, go through the service's own submission path
(``JobService.submit_job``: request parsing, policy, Job builder, Kubernetes calls)
concurrently. The Hub API lookup is answered
from memory (the hub is not what is measured). Prints p50/p95 submit latency, jobs/s, the
Kubernetes API calls per submission against the minimum a quota-safe submission needs (read
the source pod, count the user's jobs, create the Job, count again: several service replicas
may race), and last ``api-calls-per-job: N``.
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

from kubernetes_asyncio import client, config

from aiinfn_hub.bunshin.service import JobService
from aiinfn_hub.config import load_platform_config
from aiinfn_hub.dev.emulator.cluster import load_cluster_file
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.kube.rest import KubeRest
from aiinfn_hub.platform.entitlements import UserContext

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_POD = ROOT / "tests" / "golden" / "pod-cpu-only.json"
MINIMUM_CALLS = 4  # GET the source pod, LIST the user's jobs, POST the Job, LIST again


class CountingRest(KubeRest):
    """KubeRest that counts the calls it makes."""

    calls = 0

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        CountingRest.calls += 1
        return await super().call(*args, **kwargs)


class MemoryHub:
    """The Hub API's answer about a user, from memory (the hub is not measured)."""

    async def user(self, username: str) -> dict[str, Any]:
        server = {"ready": True, "state": {"pod_name": f"jupyter-{username}"}}
        return {"name": username, "servers": {"": server}}


async def submit(service: JobService, user: str, body: dict[str, Any]) -> float:
    began = time.perf_counter()
    await service.submit_job(UserContext(user, frozenset({"cms"})), False, body)
    return time.perf_counter() - began


async def run(users: int, count: int) -> None:
    cfg = load_platform_config(ROOT / "examples" / "platform.yaml")
    cfg = cfg.model_copy(
        update={"jobs": cfg.jobs.model_copy(update={"max_active_jobs_per_user": count})}
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        Emulator(
            # the servers' namespace and the jobs' own
            load_cluster_file(ROOT / "examples" / "cluster.yaml").model_copy(
                update={"namespaces": ["jupyterhub", cfg.jobs.namespace]}
            ),
            state_dir=tmp,
        ) as emulator,
    ):
        await config.load_kube_config(str(emulator.write_kubeconfig()))
        api = client.ApiClient()
        rest = CountingRest(api)
        namespace = "jupyterhub"  # the servers'
        template = json.loads(GOLDEN_POD.read_text())
        for i in range(users):
            pod = json.loads(json.dumps(template))
            name = f"user{i:02d}"
            pod["metadata"]["name"] = f"jupyter-{name}"
            pod["metadata"]["annotations"]["hub.jupyter.org/username"] = name
            pod["metadata"]["annotations"]["emulator.aiinfn.dev/outcome"] = "run"
            await rest.post(f"/api/v1/namespaces/{namespace}/pods", pod)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = await rest.get(f"/api/v1/namespaces/{namespace}/pods")
            if sum(p["status"].get("phase") == "Running" for p in listed["items"]) == users:
                break
            await asyncio.sleep(0.2)
        service = JobService(cfg, MemoryHub(), rest, servers_namespace=namespace)
        CountingRest.calls = 0
        body = {"command": ["python", "train.py"], "cpu": 1, "memory": "4Gi"}
        began = time.perf_counter()
        latencies = await asyncio.gather(
            *(submit(service, f"user{i % users:02d}", body) for i in range(count))
        )
        elapsed = time.perf_counter() - began
        calls = CountingRest.calls
        await api.close()
    latencies = sorted(latencies)
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    print(f"users: {users}  submissions: {count} (concurrent)")
    print(f"submit latency p50: {p50:.1f} ms  p95: {p95:.1f} ms")
    print(f"throughput: {count / elapsed:.1f} jobs/s")
    print(f"minimum calls per submission: {MINIMUM_CALLS}")
    print(f"ratio to the minimum: {calls / count / MINIMUM_CALLS:.2f}")
    print(f"api-calls-per-job: {calls / count:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.users, args.jobs))


if __name__ == "__main__":
    main()
