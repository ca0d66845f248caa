"""Namespaces that finish terminating, as the Kubernetes documentation describes them.

"Namespaces" and "Finalizers" (kubernetes.io/docs): deleting a namespace marks it
``Terminating``; nothing new may be created in it (the NamespaceLifecycle admission plugin
answers 403 with a ``NamespaceTerminating`` cause); the namespace controller deletes what is
in it, reporting progress in the namespace's status conditions, then removes the
``kubernetes`` finalizer and the namespace goes. ``kubectl delete namespace`` waits for that.

Checked with real kubectl and a racing creator; every wait is on a condition (kubectl's own
wait for the deletion, ``wait_for``), never a guessed sleep.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import (
    KUBECTL,
    ApiServer,
    configmap_body,
    running_api,
    wait_for,
    wait_for_async,
)

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, NodeSpec
from aiinfn_hub.dev.emulator.resources import CONFIGMAPS
from aiinfn_hub.dev.emulator.runtime import Emulator

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on PATH")

JSON = dict[str, Any]
MERGE = "application/merge-patch+json"
HOLD = "example.com/hold"


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def terminating_namespace(api: ApiServer, name: str) -> str:
    """A namespace held in Terminating by a configmap with a finalizer; its URL."""
    base = f"/api/v1/namespaces/{name}"
    await api.create("/api/v1/namespaces", {"metadata": {"name": name}})
    held = configmap_body("held")
    held["metadata"]["finalizers"] = [HOLD]
    await api.create(f"{base}/configmaps", held)
    response = await api.delete(base)
    assert response.code == 200 and response.body["status"]["phase"] == "Terminating"
    return base


def conditions(namespace: JSON) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in namespace.get("status", {}).get("conditions", [])
    }


async def test_new_content_is_refused_with_the_real_status(api: ApiServer) -> None:
    base = await terminating_namespace(api, "closing")
    event = {
        "metadata": {"name": "late.1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "closing"},
        "reason": "Killing",
        "message": "Stopping container main",
    }
    refused = await api.post(f"{base}/events", event)
    assert refused.code == 403
    assert refused.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'events "late.1" is forbidden: unable to create new content in namespace '
        "closing because it is being terminated",
        "reason": "Forbidden",
        "details": {
            "name": "late.1",
            "kind": "events",
            "causes": [
                {
                    "reason": "NamespaceTerminating",
                    "message": "namespace closing is being terminated",
                    "field": "metadata.namespace",
                }
            ],
        },
        "code": 403,
    }
    job = await api.post("/apis/batch/v1/namespaces/closing/jobs", {"metadata": {"name": "j"}})
    assert job.code == 403
    assert job.body["details"]["group"] == "batch"
    assert job.body["message"].startswith('jobs.batch "j" is forbidden: unable to create')
    # what is there may still change (its finalizer is how it gets released)
    changed = await api.patch(f"{base}/configmaps/held", {"data": {"k": "w"}}, MERGE)
    assert changed.code == 200


async def test_the_controller_reports_what_remains_then_finishes(api: ApiServer) -> None:
    watch = api.watch("/api/v1/namespaces?watch=true&fieldSelector=metadata.name%3Dkept")
    await api.wait_watchers(1)
    base = await terminating_namespace(api, "kept")

    async def reported() -> dict[str, tuple[str, str, str]]:
        return conditions((await api.get(base)).body)

    found = await wait_for_async(reported, what="the namespace controller's conditions")
    assert found == {
        "NamespaceDeletionDiscoveryFailure": (
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        "NamespaceDeletionGroupVersionParsingFailure": (
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        "NamespaceDeletionContentFailure": (
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        "NamespaceContentRemaining": (
            "True",
            "SomeResourcesRemain",
            "Some resources are remaining: configmaps. has 1 resource instances",
        ),
        "NamespaceFinalizersRemaining": (
            "True",
            "SomeFinalizerRemain",
            f"Some finalizers are remaining: {HOLD} in 1 resource instances",
        ),
    }
    await api.patch(f"{base}/configmaps/held", {"metadata": {"finalizers": None}}, MERGE)
    events = []
    while not events or events[-1]["type"] != "DELETED":
        events.append(await watch.next(timeout=10))
    last_before = events[-2]["object"]
    # the content is gone, the conditions say so, the kubernetes finalizer was removed first
    assert conditions(last_before)["NamespaceContentRemaining"] == (
        "False",
        "ContentRemoved",
        "All content successfully removed",
    )
    assert not last_before["spec"].get("finalizers")
    assert any("kubernetes" in (e["object"]["spec"].get("finalizers") or []) for e in events)
    assert (await api.get(base)).code == 404


async def test_objects_that_slip_in_are_deleted_by_the_next_pass(api: ApiServer) -> None:
    """A controller that had not yet seen the deletion writes an object straight to storage
    (as a real one does when its informer lags): the namespace controller still empties and
    removes the namespace."""
    base = await terminating_namespace(api, "slipped")
    api.store.create(CONFIGMAPS, {"metadata": {"name": "late", "namespace": "slipped"}})
    await api.patch(f"{base}/configmaps/held", {"metadata": {"finalizers": None}}, MERGE)

    async def gone() -> bool:
        return (await api.get(base)).code == 404

    await wait_for_async(gone, what="the namespace to go")
    assert api.store.list(CONFIGMAPS, "slipped") == []


async def test_kubectl_delete_namespace_returns_despite_a_racing_creator(
    api: ApiServer, tmp_path: Path
) -> None:
    await api.create("/api/v1/namespaces", {"metadata": {"name": "race"}})
    answers: list[int] = []
    refusals: list[str] = []

    async def create_forever() -> None:
        index = 0
        while True:
            index += 1
            response = await api.post(
                "/api/v1/namespaces/race/configmaps", configmap_body(f"c{index}")
            )
            answers.append(response.code)
            if response.code == 403:
                refusals.append(response.body["message"])
            await asyncio.sleep(0)

    creator = asyncio.create_task(create_forever())
    try:
        await wait_for(lambda: answers.count(201) >= 5, what="configmaps created")
        code, out, err = await api.kubectl(tmp_path, "delete", "namespace", "race", "--timeout=30s")
        assert code == 0, err
        assert out.strip() == 'namespace "race" deleted'
        await wait_for(lambda: answers[-1] == 404, what="creates to find no namespace")
    finally:
        creator.cancel()
    assert (await api.get("/api/v1/namespaces/race")).code == 404
    assert refusals or 403 not in answers
    assert all("because it is being terminated" in m for m in refusals)
    assert api.store.list(CONFIGMAPS, "race") == []


def kubectl_run(
    emulator: Emulator, home: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """kubectl against a running emulator (thread), with its kubeconfig."""
    kubeconfig = emulator.write_kubeconfig(home / "kubeconfig")
    return subprocess.run(
        ["kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={"HOME": str(home), "KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"},
    )


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "worker", "namespace": "team"},
    "spec": {
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "main", "image": "python:3.11", "command": ["sleep", "1000"]}],
    },
}


def test_a_namespace_with_a_running_pod_is_deleted_despite_the_kubelets_events(
    tmp_path: Path,
) -> None:
    """The kubelet stops the pod and records "Killing" in the terminating namespace: the
    event is refused, the pod goes, and so does the namespace."""
    cluster = ClusterSpec(
        namespaces=["team"],
        nodes=[NodeSpec(name="node-1", capacity={"cpu": "4", "memory": "8Gi"})],
    )
    with Emulator(cluster, state_dir=tmp_path / "state") as emulator:
        pod = kubectl_run(emulator, tmp_path, "apply", "-f", "-", stdin=json.dumps(POD))
        assert pod.returncode == 0, pod.stderr
        ready = kubectl_run(
            emulator,
            tmp_path,
            "wait",
            "-n",
            "team",
            "--for=condition=Ready",
            "pod/worker",
            "--timeout=30s",
        )
        assert ready.returncode == 0, ready.stderr
        deleted = kubectl_run(emulator, tmp_path, "delete", "namespace", "team", "--timeout=60s")
        assert deleted.returncode == 0, deleted.stderr
        gone = kubectl_run(emulator, tmp_path, "get", "namespace", "team")
        assert gone.returncode != 0
        assert 'namespaces "team" not found' in gone.stderr
        assert emulator.objects("Event", "team") == []


async def test_the_emulators_event_recorder_is_refused_like_a_real_one(api: ApiServer) -> None:
    """client-go's recorder gets the 403 and drops the event; so does the emulator's."""
    from aiinfn_hub.dev.emulator.controllers.events import EventRecorder
    from aiinfn_hub.dev.emulator.resources import EVENTS

    await terminating_namespace(api, "quiet")
    held = api.store.get(CONFIGMAPS, "quiet", "held")
    assert held is not None
    recorder = EventRecorder(api.store)
    assert recorder.record(held, "Killing", "Stopping container main", component="kubelet") is None
    assert api.store.list(EVENTS, "quiet") == []
    default = api.store.get(CONFIGMAPS, "default", "x") or api.store.create(
        CONFIGMAPS, {"metadata": {"name": "x", "namespace": "default"}}
    )
    assert recorder.record(default, "Seen", "in an active namespace", component="kubelet")
