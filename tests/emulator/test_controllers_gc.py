"""The garbage collector: background, foreground and orphan propagation, dangling owners."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ControllerCluster, running_cluster

from aiinfn_hub.dev.emulator.deletion import remove_if_finalized
from aiinfn_hub.dev.emulator.resources import CONFIGMAPS, JOBS, PODS, SECRETS, SERVICES

JSON = dict[str, Any]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ControllerCluster]:
    async with running_cluster(tmp_path) as c:
        c.add_node("n1")
        yield c


def _ref(owner: JSON, block: bool = False) -> JSON:
    ref = {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner.get("kind", "Pod"),
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if block:
        ref["blockOwnerDeletion"] = True
    return ref


def _dependent(cluster: ControllerCluster, rt: Any, name: str, *owners: JSON) -> JSON:
    obj: JSON = {"metadata": {"name": name, "namespace": "default"}}
    if owners:
        obj["metadata"]["ownerReferences"] = list(owners)
    if rt.kind == "Service":
        obj["spec"] = {"ports": [{"port": 8888}]}
    return cluster.create(rt, obj)


async def test_background_deletes_the_dependents_of_a_deleted_pod(
    cluster: ControllerCluster,
) -> None:
    """KubeSpawner leaves a user's Service and Secret to the GC, owned by the pod."""
    pod = cluster.create_pod("jupyter-alice")
    await cluster.running("jupyter-alice")
    _dependent(cluster, SERVICES, "jupyter-alice", _ref(pod))
    _dependent(cluster, SECRETS, "jupyter-alice", _ref(pod))
    cluster.delete(PODS, "jupyter-alice", grace_period=1)
    await cluster.gone(PODS, "jupyter-alice")
    await cluster.gone(SERVICES, "jupyter-alice")
    await cluster.gone(SECRETS, "jupyter-alice")


async def test_a_dependent_with_a_live_owner_stays(cluster: ControllerCluster) -> None:
    first = cluster.create(CONFIGMAPS, {"metadata": {"name": "first"}})
    second = cluster.create(CONFIGMAPS, {"metadata": {"name": "second"}})
    shared = _dependent(cluster, SECRETS, "shared", _ref(first), _ref(second))
    lonely = _dependent(cluster, SECRETS, "lonely", _ref(first))
    cluster.delete(CONFIGMAPS, "first")
    await cluster.gone(SECRETS, "lonely")
    kept = await cluster.wait_for(
        lambda: (
            (s := cluster.store.get(SECRETS, "default", "shared"))
            and len(s["metadata"]["ownerReferences"]) == 1
            and s
        ),
        what="the dangling reference dropped",
    )
    assert kept["metadata"]["ownerReferences"][0]["uid"] == second["metadata"]["uid"]
    assert kept["metadata"]["uid"] == shared["metadata"]["uid"]
    assert lonely["metadata"]["uid"]


async def test_foreground_waits_for_blocking_dependents(cluster: ControllerCluster) -> None:
    owner = cluster.create(CONFIGMAPS, {"metadata": {"name": "owner"}})
    held = cluster.create_pod("held")
    await cluster.running("held")
    # a finalizer keeps the blocking dependent around after its deletion starts
    pod = dict(cluster.pod("held") or {})
    pod["metadata"] = {
        **pod["metadata"],
        "ownerReferences": [_ref(owner, block=True)],
        "finalizers": ["example.com/hold"],
    }
    cluster.store.update(PODS, pod)
    _dependent(cluster, SECRETS, "loose", _ref(owner))
    cluster.delete(CONFIGMAPS, "owner", propagation="Foreground")
    await cluster.gone(SECRETS, "loose")  # non-blocking dependents are deleted too
    await cluster.phase("held", "Failed")
    waiting = cluster.store.get(CONFIGMAPS, "default", "owner")
    assert waiting is not None and "deletionTimestamp" in waiting["metadata"]
    assert waiting["metadata"]["finalizers"] == ["foregroundDeletion"]
    released = dict(cluster.pod("held") or {})
    released["metadata"] = {k: v for k, v in released["metadata"].items() if k != "finalizers"}
    remove_if_finalized(cluster.store, PODS, cluster.store.update(PODS, released))
    await cluster.gone(CONFIGMAPS, "owner")
    assert held["metadata"]["uid"]


async def test_foreground_job_deletion_removes_pods_first(cluster: ControllerCluster) -> None:
    job = {
        "metadata": {"name": "train"},
        "spec": {
            "parallelism": 2,
            "completions": 2,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}
            },
        },
    }
    cluster.create(JOBS, job)
    await cluster.wait_for(
        lambda: (j := cluster.store.get(JOBS, "default", "train")) and j["status"].get("ready") == 2
    )
    seen_job_with_pods = False

    def observe() -> bool:
        nonlocal seen_job_with_pods
        job_now = cluster.store.get(JOBS, "default", "train")
        pods = [p for p in cluster.store.list(PODS) if p["metadata"]["name"].startswith("train-")]
        if job_now is not None and pods:
            seen_job_with_pods = True
        return job_now is None and not pods

    cluster.delete(JOBS, "train", propagation="Foreground")
    await cluster.wait_for(observe, what="the Job and its pods gone")
    assert seen_job_with_pods


async def test_orphan_propagation_leaves_the_pods(cluster: ControllerCluster) -> None:
    job = {
        "metadata": {"name": "keep"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}
            }
        },
    }
    cluster.create(JOBS, job)
    await cluster.wait_for(
        lambda: (j := cluster.store.get(JOBS, "default", "keep")) and j["status"].get("ready") == 1
    )
    cluster.delete(JOBS, "keep")  # batch/v1 Jobs orphan their pods by default
    await cluster.gone(JOBS, "keep")
    pod = await cluster.wait_for(
        lambda: (
            (p := next(iter(cluster.store.list(PODS)), None))
            and not p["metadata"].get("finalizers")
            and p
        ),
        what="the tracking finalizer released",
    )
    deadline = time.monotonic() + 0.7  # longer than the GC's dangling-owner delay
    await cluster.wait_for(lambda: time.monotonic() > deadline, what="a GC round")
    survivor = cluster.pod(pod["metadata"]["name"])
    assert survivor is not None and "ownerReferences" not in survivor["metadata"]
    assert survivor["status"]["phase"] == "Running"


async def test_dependents_of_an_owner_that_never_existed_are_collected(
    cluster: ControllerCluster,
) -> None:
    ghost = {"apiVersion": "v1", "kind": "Pod", "name": "ghost", "uid": "no-such-uid"}
    _dependent(cluster, CONFIGMAPS, "stray", ghost)
    began = time.monotonic()
    await cluster.gone(CONFIGMAPS, "stray", timeout=3)
    assert time.monotonic() - began >= 0.3  # after a short delay, as the owner may be late
