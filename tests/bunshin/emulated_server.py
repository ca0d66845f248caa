"""An emulated cluster with a jobs' namespace and dana's running notebook server in it: what
the service-level tests (``JobService`` alone, and behind its HTTP handlers) start from."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client, config

from aiinfn_hub.config import PlatformConfig, validate_platform_config
from aiinfn_hub.dev.emulator.cluster import load_cluster_file
from aiinfn_hub.dev.emulator.runtime import Emulator
from aiinfn_hub.kube.rest import KubeRest
from aiinfn_hub.services.errors import ServiceError

ROOT = Path(__file__).resolve().parents[2]
SERVERS, JOBS = "jupyterhub", "bunshin"
DANA_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "jupyter-dana", "annotations": {"hub.jupyter.org/username": "dana"}},
    "spec": {
        "securityContext": {"runAsUser": 100042},
        "containers": [
            {
                "name": "notebook",
                "image": "harbor.cloud.infn.it/ai-infn/base:2026.11",
                "resources": {"limits": {"cpu": "1", "memory": "4Gi"}},
            }
        ],
    },
}


def start_emulator(state_dir: Path) -> Emulator:
    """The example cluster plus the jobs' namespace (enter it with ``with``)."""
    cluster = load_cluster_file(ROOT / "examples" / "cluster.yaml")
    cluster = cluster.model_copy(update={"namespaces": [*cluster.namespaces, JOBS]})
    return Emulator(cluster, state_dir=state_dir)


@asynccontextmanager
async def dana_running(emulator: Emulator) -> AsyncIterator[tuple[KubeRest, dict[str, Any]]]:
    """A client of the emulator and dana's server pod, once it runs (within a minute)."""
    configuration = client.Configuration()
    await config.load_kube_config(
        str(emulator.write_kubeconfig()), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api:
        kube = KubeRest(api)
        pod: dict[str, Any] = await kube.post(f"/api/v1/namespaces/{SERVERS}/pods", DANA_POD)
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            found = await kube.get(f"/api/v1/namespaces/{SERVERS}/pods/jupyter-dana")
            if (found.get("status") or {}).get("phase") == "Running":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("timed out waiting for dana's server to run")
        yield kube, pod


def platform_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
    data["jobs"].update({"maxActiveJobsPerUser": 2, "maxFinishedJobsPerUser": 5})
    return data


def platform() -> PlatformConfig:
    return validate_platform_config(platform_data())


class MemoryHub:
    """The Hub API's answer about users: dana's default server runs, erin has none."""

    def __init__(self, pod_uid: str) -> None:
        state = {"pod_name": "jupyter-dana", "namespace": SERVERS, "pod_uid": pod_uid}
        server = {"ready": True, "state": state}
        self.users: dict[str, Any] = {
            "dana": {"name": "dana", "servers": {"": server}},
            "erin": {"name": "erin", "servers": {}},
            "root": {"name": "root", "servers": {}},
        }

    async def user(self, username: str) -> dict[str, Any]:
        if username not in self.users:
            raise ServiceError(404, "not-found", "no such user on the hub")
        found: dict[str, Any] = self.users[username]
        return found
