"""Benchmark: spawn-form rendering from the live inventory, still and under churn, against the
former recount and against listing the cluster on every render; staleness; cache memory.

    .venv/bin/python bench/form.py [--nodes 500] [--pods 5000] [--renders 200]

The emulator holds ``--nodes`` GPU nodes (8 GPUs each) and ``--pods`` bound pods shaped like a
cluster's (``_typical_pod``: environment, volumes, statuses; a fifth hold a GPU, half of those
notebooks at priority 1000, half batch jobs at -100, spread evenly over the nodes). They have
no ``managedFields``, which a real API server adds, and no owner references, which the
emulator's garbage collector would follow to Jobs that do not exist: whole pods are smaller
here than on a cluster. The notebooks' priority is 1000, so the form tells free units from
those batch jobs hold. Measured side by side in one run:

- ``still``: renders with no change between them (the memoized answer);
- ``churn``: one pod event between renders (a GPU pod deleted or created through the API; the
  render starts once the informer has applied it), with the incremental ledger;
- ``recount``: the same churn, counting every pod at each render (the former implementation);
- ``naive``: listing nodes and pods through kubernetes_asyncio on every render;
- staleness: from creating a bound GPU pod to the form's free count dropping;
- memory: resident set of a process holding the node and pod caches, whole objects against
  what the hub keeps (``aiinfn_hub.kube.lean``), each in a fresh process.

The last line is ``churn-speedup: N.Nx``, naive p50 / churn p50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
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
from aiinfn_hub.kube.informer import ClusterView, Informer
from aiinfn_hub.kube.lean import lean_node, lean_pod
from aiinfn_hub.kubemodel.pod_resources import resource_view
from aiinfn_hub.platform.entitlements import UserContext
from aiinfn_hub.spawner.form_render import render_form

JSON = dict[str, Any]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PRODUCTS = ["Tesla-T4", "Quadro-RTX-5000", "NVIDIA-A100-SXM4-80GB", "NVIDIA-A30"]
NOTEBOOK_PRIORITY = 1000
NAMESPACE = "bulk"


# -- the cluster ---------------------------------------------------------------------------------


def _typical_pod(i: int, nodes: int) -> JSON:
    """A pod as the API server lists it: a notebook, a batch job's pod or a service's pod.

    Pod ``i`` is on node ``i % nodes``; of each node's pods, every fifth holds a GPU (a notebook
    and a batch job by turns), so the GPUs held are spread evenly."""
    node, turn = f"gpu-{i % nodes:04d}", i // nodes
    gpu = turn % 5 == 0
    notebook = gpu and turn % 10 == 0
    priority = NOTEBOOK_PRIORITY if notebook else (-100 if gpu else 0)
    name = f"p{i:05d}"
    limits = {"cpu": "4", "memory": "16Gi"} | ({"nvidia.com/gpu": "1"} if gpu else {})
    env = [{"name": f"SETTING_{k:02d}", "value": f"value-{i}-{k}-" + "x" * 24} for k in range(18)]
    env.append({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    mounts = [
        {"name": v, "mountPath": f"/mnt/{v}"} for v in ("home", "projects", "scratch", "config")
    ]
    mounts.append(
        {
            "name": "kube-api-access",
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "readOnly": True,
        }
    )
    labels = {
        "app": "jupyterhub" if notebook else "bunshin" if gpu else "service",
        "component": "singleuser-server" if notebook else "worker",
        "heritage": "jupyterhub",
        "release": "aiinfn",
        "hub.jupyter.org/username": f"user{i % 97}",
        "aiinfn.infn.it/project": f"project-{i % 7}",
    }
    meta: JSON = {
        "name": name,
        "namespace": NAMESPACE,
        "uid": f"00000000-0000-4000-8000-{i:012d}",
        "resourceVersion": str(1000 + i),
        "creationTimestamp": "2026-12-01T10:00:00Z",
        "labels": labels,
        "annotations": {
            "aiinfn.infn.it/user": f"user{i % 97}",
            "aiinfn.infn.it/projects": f"project-{i % 7}",
            "kubectl.kubernetes.io/default-container": "main",
            "cni.projectcalico.org/podIP": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}/32",
        },
    }
    started = "2026-12-01T10:00:05Z"
    return {
        "metadata": meta,
        "spec": {
            "nodeName": node,
            "priority": priority,
            "priorityClassName": "notebook" if notebook else "bunshin" if gpu else "default",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "restartPolicy": "OnFailure",
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 30,
            "securityContext": {"runAsUser": 100000 + i % 97, "fsGroup": 100},
            "containers": [
                {
                    "name": "main",
                    "image": "harbor.example.infn.it/ai-infn/cuda-ml:2026.11",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sh", "-c"],
                    "args": [f"python train.py --config /mnt/config/run-{i}.yaml --epochs 40"],
                    "env": env,
                    "ports": [{"containerPort": 8888, "name": "notebook", "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": limits},
                    "volumeMounts": mounts,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "volumes": [
                {"name": "home", "nfs": {"server": "nfs.example", "path": f"/homes/u{i % 97}"}},
                {"name": "projects", "nfs": {"server": "nfs.example", "path": "/projects"}},
                {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}},
                {"name": "config", "configMap": {"name": f"run-{i}", "defaultMode": 420}},
                {
                    "name": "kube-api-access",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                    },
                },
            ],
            "tolerations": [
                {
                    "key": f"node.kubernetes.io/{reason}",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
                for reason in ("not-ready", "unreachable")
            ],
        },
        "status": {
            "phase": "Running",
            "qosClass": "Burstable",
            "hostIP": "10.0.0.1",
            "podIP": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            "podIPs": [{"ip": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"}],
            "startTime": started,
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": started,
                }
                for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": "harbor.example.infn.it/ai-infn/cuda-ml:2026.11",
                    "imageID": "harbor.example.infn.it/ai-infn/cuda-ml@sha256:" + "ab" * 32,
                    "containerID": f"containerd://{i:064x}",
                    "state": {"running": {"startedAt": started}},
                    "lastState": {},
                }
            ],
        },
    }


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
        store.create(PODS, _typical_pod(i, nodes))


def _gpu_pod(name: str, node: str) -> JSON:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "c", "image": "x:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
        },
    }


# -- measuring -----------------------------------------------------------------------------------


def _percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 (nearest rank) in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.95) - 1)]
    return statistics.median(ordered) * 1000, p95 * 1000


class Changes:
    """A cache listener waking those who wait for a condition on the pod cache."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def relisted(self, cache: Mapping[str, JSON]) -> None:
        self.event.set()

    def changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
        self.event.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), max(deadline - time.monotonic(), 0))


async def _api(kubeconfig: Path) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


async def _run(emu: Emulator, nodes: int, renders: int) -> dict[str, Any]:
    platform = load_platform_config(EXAMPLES / "platform.yaml")
    user = UserContext("bench", frozenset({"ml-infn"}))
    groups = set(user.groups)
    api = await _api(emu.write_kubeconfig())
    view = ClusterView(api)
    view.start()
    await view.wait_ready(300)
    live = LiveInventory(view)
    changes = Changes()
    view.pods.subscribe(changes)
    core = client.CoreV1Api(api)

    def render_live() -> str:
        models = live.availability(platform, groups, notebook_priority=NOTEBOOK_PRIORITY)
        return render_form(platform, user, models, {})

    def render_recount() -> str:
        used = node_usage(view.pods.objects(), NOTEBOOK_PRIORITY)
        models = accelerator_availability(platform, view.nodes.objects(), used, projects=groups)
        return render_form(platform, user, models, {})

    results: dict[str, Any] = {}
    still: list[float] = []
    render_live()
    for _ in range(renders):
        t0 = time.perf_counter()
        render_live()
        still.append(time.perf_counter() - t0)
    results["still"] = still

    async def one_event(k: int) -> None:
        """Delete or create one GPU pod (by turns) and wait until the informer applied it."""
        name = f"churn-{k // 2}"
        key = f"{NAMESPACE}/{name}"
        if k % 2 == 0:
            await core.create_namespaced_pod(NAMESPACE, _gpu_pod(name, f"gpu-{k % nodes:04d}"))
            await changes.until(lambda: key in view.pods.cache)
        else:
            await core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
            await changes.until(lambda: key not in view.pods.cache)

    # the recount takes long: fewer samples of it
    for label, render, count in (
        ("churn", render_live, renders),
        ("recount", render_recount, max(renders // 4, 10)),
    ):
        samples: list[float] = []
        base = 0 if label == "churn" else renders + renders % 2
        for k in range(count):
            await one_event(base + k)
            t0 = time.perf_counter()
            render()
            samples.append(time.perf_counter() - t0)
        results[label] = samples

    results["staleness"] = await _staleness(live, platform, groups, core, changes, nodes)

    naive: list[float] = []
    for _ in range(max(renders // 10, 5)):  # each naive render takes long: fewer samples
        t0 = time.perf_counter()
        listed = [api.sanitize_for_serialization(n) for n in (await core.list_node()).items]
        pods: Any = (await core.list_pod_for_all_namespaces()).items
        pods = [api.sanitize_for_serialization(p) for p in pods]
        models = accelerator_availability(
            platform, listed, node_usage(pods, NOTEBOOK_PRIORITY), projects=groups
        )
        render_form(platform, user, models, {})
        naive.append(time.perf_counter() - t0)
    results["naive"] = naive
    await view.stop()
    await api.close()
    return results


async def _staleness(
    live: LiveInventory,
    platform: Any,
    groups: set[str],
    core: client.CoreV1Api,
    changes: Changes,
    nodes: int,
    trials: int = 20,
) -> list[float]:
    """From creating a bound A100 pod to the form's A100 free count dropping."""

    def a100_free() -> int:
        models = live.availability(platform, groups, notebook_priority=NOTEBOOK_PRIORITY)
        return next(m.free for m in models if m.name == "a100")

    a100_servers = [j for j in range(nodes) if PRODUCTS[j % 4] == "NVIDIA-A100-SXM4-80GB"]
    samples: list[float] = []
    for k in range(trials):
        node = f"gpu-{a100_servers[k % len(a100_servers)]:04d}"
        name = f"stale-{k}"
        before = a100_free()
        t0 = time.perf_counter()
        await core.create_namespaced_pod(NAMESPACE, _gpu_pod(name, node))
        while a100_free() >= before:
            assert time.perf_counter() - t0 < 30, "the free count never dropped"
            await asyncio.sleep(0.001)
        samples.append(time.perf_counter() - t0)
        await core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        key = f"{NAMESPACE}/{name}"
        await changes.until(lambda key=key: key not in live.view.pods.cache)
    return samples


# -- memory, each kind of cache in its own process -----------------------------------------------


def _trimmed_rss_kib() -> int:
    """Resident memory after a full collection, with the C heap's free pages given back (as
    they would be, in time, in a long-running hub), so what is measured is what is held."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss_kib()


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


KEEPS: dict[str, tuple[Any, Any]] = {
    "whole": (None, None),
    "main-before": (None, resource_view),  # this repository before: pods trimmed, nodes whole
    "lean": (lean_node, lean_pod),
}


async def _hold_cache(kubeconfig: Path, kind: str) -> dict[str, int]:
    """In a fresh process: the resident memory before and after filling node and pod caches."""
    api = await _api(kubeconfig)
    core = client.CoreV1Api(api)
    keep_node, keep_pod = KEEPS[kind]
    nodes = Informer("nodes", core.list_node, keep=keep_node)
    pods = Informer("pods", core.list_pod_for_all_namespaces, keep=keep_pod)
    await core.list_namespace()  # the connection, TLS and client set up before measuring
    before = _trimmed_rss_kib()
    await nodes._list()
    await pods._list()
    after = _trimmed_rss_kib()
    await api.close()
    return {"before": before, "after": after, "pods": len(pods.cache), "nodes": len(nodes.cache)}


def _memory(kubeconfig: Path) -> dict[str, dict[str, int]]:
    out = {}
    for kind in KEEPS:
        child = subprocess.run(
            [sys.executable, __file__, "--hold-cache", kind, "--kubeconfig", str(kubeconfig)],
            check=True,
            capture_output=True,
            text=True,
        )
        out[kind] = json.loads(child.stdout.strip().splitlines()[-1])
    return out


# -- report --------------------------------------------------------------------------------------


def _report(results: dict[str, Any], memory: dict[str, dict[str, int]]) -> None:
    rows = [
        ("still (memoized, no change)", "still"),
        ("churn (incremental ledger)", "churn"),
        ("churn (recount every pod)", "recount"),
        ("naive (list per render)", "naive"),
    ]
    print(f"{'form render':<32}{'p50 ms':>10}{'p95 ms':>10}{'renders':>9}")
    for title, key in rows:
        p50, p95 = _percentiles(results[key])
        print(f"{title:<32}{p50:>10.2f}{p95:>10.2f}{len(results[key]):>9}")
    s50, s95 = _percentiles(results["staleness"])
    print(
        f"staleness (bound GPU pod -> free count drops): p50 {s50:.1f} ms, p95 {s95:.1f} ms "
        f"({len(results['staleness'])} pods)"
    )
    whole = memory["whole"]["after"] - memory["whole"]["before"]
    for kind, figures in memory.items():
        grown = figures["after"] - figures["before"]
        print(
            f"memory {kind:<12} caches of {figures['nodes']} nodes, {figures['pods']} pods: "
            f"+{grown / 1024:.1f} MiB (RSS {figures['before'] / 1024:.0f} -> "
            f"{figures['after'] / 1024:.0f} MiB), {whole / max(grown, 1):.1f}x less than whole"
        )
    recount, churn = _percentiles(results["recount"])[0], _percentiles(results["churn"])[0]
    naive = _percentiles(results["naive"])[0]
    print(f"recount-vs-incremental: {recount / churn:.1f}x")
    print(f"churn-speedup: {naive / churn:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--hold-cache", choices=list(KEEPS), help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold_cache:
        print(json.dumps(asyncio.run(_hold_cache(args.kubeconfig, args.hold_cache))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        emu = Emulator(ClusterSpec(namespaces=[NAMESPACE]), state_dir=tmp, validate=False)
        with emu:
            emu.call(lambda: _preload(emu.store, args.nodes, args.pods), timeout=600)
            memory = _memory(emu.write_kubeconfig())
            results = asyncio.run(_run(emu, args.nodes, args.renders))
    _report(results, memory)


if __name__ == "__main__":
    main()
