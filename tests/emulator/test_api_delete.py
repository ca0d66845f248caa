"""DELETE (API concepts: "Graceful deletion", "Finalizers", "Garbage collection" cascading
options; "Pod lifecycle: termination of pods"), the binding and eviction subresources, and
namespace deletion. No controllers run here: what the kubelet and the garbage collector
would do later is checked as "not done by the API server"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import (
    NS,
    ApiServer,
    configmap_body,
    job_body,
    kube_client,
    names,
    pod_body,
    running_api,
    wait_for,
    wait_for_async,
)
from kubernetes_asyncio import client

from aiinfn_hub.dev.emulator.resources import PODS

JSON = dict[str, Any]
JOBS = "/apis/batch/v1/namespaces/default/jobs"
MERGE = "application/merge-patch+json"


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def _bound_pod(api: ApiServer, name: str, **spec: Any) -> JSON:
    await api.create(f"{NS}/pods", pod_body(name, **spec))
    bound = await api.post(
        f"{NS}/pods/{name}/binding",
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"kind": "Node", "name": "node-a"},
        },
    )
    assert bound.code == 201 and bound.body["status"] == "Success"
    return dict((await api.get(f"{NS}/pods/{name}")).body)


def _owned_by(owner: JSON, name: str) -> JSON:
    body = configmap_body(name)
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
        }
    ]
    return body


async def test_binding_sets_the_node_once(api: ApiServer) -> None:
    pod = await _bound_pod(api, "b")
    assert pod["spec"]["nodeName"] == "node-a"
    again = await api.post(f"{NS}/pods/b/binding", {"target": {"kind": "Node", "name": "node-b"}})
    assert again.code == 409 and "is already assigned to node" in again.body["message"]


async def test_graceful_deletion_of_a_bound_pod(api: ApiServer) -> None:
    await _bound_pod(api, "g", terminationGracePeriodSeconds=45)
    resp = await api.delete(f"{NS}/pods/g")
    assert resp.code == 200 and resp.body["kind"] == "Pod"  # pods answer with the object
    meta = resp.body["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 45 and meta["deletionTimestamp"]
    # the kubelet finishes the deletion; until then the pod is still there
    still = await api.get(f"{NS}/pods/g")
    assert still.code == 200 and still.body["metadata"]["deletionTimestamp"]
    shorter = await api.delete(f"{NS}/pods/g?gracePeriodSeconds=5")
    assert shorter.body["metadata"]["deletionGracePeriodSeconds"] == 5


async def test_unbound_finished_or_grace_zero_pods_go_at_once(api: ApiServer) -> None:
    await api.create(f"{NS}/pods", pod_body("unbound"))
    resp = await api.delete(f"{NS}/pods/unbound")
    assert resp.code == 200 and resp.body["metadata"]["name"] == "unbound"
    assert (await api.get(f"{NS}/pods/unbound")).code == 404
    await _bound_pod(api, "now")
    assert (await api.delete(f"{NS}/pods/now?gracePeriodSeconds=0")).code == 200
    assert (await api.get(f"{NS}/pods/now")).code == 404
    done = await _bound_pod(api, "done")
    done["status"] = {"phase": "Succeeded"}
    assert (await api.put(f"{NS}/pods/done/status", done)).code == 200
    await api.delete(f"{NS}/pods/done")
    assert (await api.get(f"{NS}/pods/done")).code == 404


async def test_delete_options_in_the_body_as_kubespawner_sends_them(
    api: ApiServer, tmp_path: Path
) -> None:
    await _bound_pod(api, "ks")
    async with kube_client(api, tmp_path) as api_client:
        core = client.CoreV1Api(api_client)
        answer = await core.delete_namespaced_pod(
            "ks",
            "default",
            body=client.V1DeleteOptions(grace_period_seconds=1),
            grace_period_seconds=1,
        )
        assert answer.metadata.deletion_grace_period_seconds == 1
        await core.delete_namespaced_pod(
            "ks", "default", body=client.V1DeleteOptions(grace_period_seconds=0)
        )
    assert api.store.get(PODS, "default", "ks") is None


async def test_what_delete_answers_per_kind(api: ApiServer) -> None:
    cm = await api.create(f"{NS}/configmaps", configmap_body("cm"))
    resp = await api.delete(f"{NS}/configmaps/cm")
    assert resp.code == 200
    assert resp.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "cm", "kind": "configmaps", "uid": cm["metadata"]["uid"]},
    }
    job = await api.create(JOBS, job_body("j"))
    details = (await api.delete(f"{JOBS}/j")).body["details"]
    assert details == {"name": "j", "group": "batch", "kind": "jobs", "uid": job["metadata"]["uid"]}
    await api.create(
        f"{NS}/services", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    )
    service = await api.delete(f"{NS}/services/s")
    assert service.body["kind"] == "Service"  # services, like pods, return the object
    missing = await api.delete(f"{NS}/configmaps/cm")
    assert (missing.code, missing.body["message"]) == (404, 'configmaps "cm" not found')


async def test_orphan_propagation_releases_dependents(api: ApiServer) -> None:
    owner = await api.create(f"{NS}/configmaps", configmap_body("owner"))
    await api.create(f"{NS}/configmaps", _owned_by(owner, "child"))
    await api.delete(f"{NS}/configmaps/owner?propagationPolicy=Orphan")
    child = (await api.get(f"{NS}/configmaps/child")).body
    assert "ownerReferences" not in child["metadata"]


async def test_jobs_orphan_their_dependents_by_default(api: ApiServer) -> None:
    job = await api.create(JOBS, job_body("j"))
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    await api.create(f"{NS}/configmaps", _owned_by(job, "made-by-job"))
    await api.delete(f"{JOBS}/j")
    orphan = (await api.get(f"{NS}/configmaps/made-by-job")).body
    assert "ownerReferences" not in orphan["metadata"]


async def test_background_leaves_dependents_to_the_garbage_collector(api: ApiServer) -> None:
    owner = await api.create(f"{NS}/configmaps", configmap_body("bg"))
    await api.create(f"{NS}/configmaps", _owned_by(owner, "bg-child"))
    resp = await api.delete(f"{NS}/configmaps/bg", {"propagationPolicy": "Background"})
    assert resp.body["status"] == "Success"
    child = (await api.get(f"{NS}/configmaps/bg-child")).body
    assert child["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]


async def test_foreground_marks_the_owner_until_its_dependents_go(api: ApiServer) -> None:
    owner = await api.create(f"{NS}/configmaps", configmap_body("fg"))
    await api.create(f"{NS}/configmaps", _owned_by(owner, "fg-child"))
    resp = await api.delete(f"{NS}/configmaps/fg?propagationPolicy=Foreground")
    assert resp.code == 200 and resp.body["kind"] == "ConfigMap"
    meta = resp.body["metadata"]
    assert meta["finalizers"] == ["foregroundDeletion"] and meta["deletionTimestamp"]
    assert (await api.get(f"{NS}/configmaps/fg")).code == 200


async def test_invalid_delete_options(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("x"))
    bad = await api.delete(f"{NS}/configmaps/x?propagationPolicy=Sideways")
    assert bad.code == 422 and "Unsupported value" in bad.body["message"]
    both = await api.delete(
        f"{NS}/configmaps/x", {"propagationPolicy": "Orphan", "orphanDependents": True}
    )
    assert both.code == 422


async def test_finalizers_hold_an_object_until_the_last_is_removed(api: ApiServer) -> None:
    body = configmap_body("held")
    body["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    await api.create(f"{NS}/configmaps", body)
    reader = api.watch(
        f"{NS}/configmaps?watch=true&fieldSelector=metadata.name%3Dheld&timeoutSeconds=5"
    )
    assert (await reader.next())["type"] == "ADDED"
    resp = await api.delete(f"{NS}/configmaps/held")
    assert resp.code == 200 and resp.body["metadata"]["deletionTimestamp"]
    assert (await reader.next())["type"] == "MODIFIED"
    # updates may not undo the deletion
    resp = await api.patch(
        f"{NS}/configmaps/held", {"metadata": {"finalizers": ["example.com/b"]}}, MERGE
    )
    assert resp.body["metadata"]["deletionTimestamp"]
    assert (await reader.next())["type"] == "MODIFIED"
    await api.patch(f"{NS}/configmaps/held", {"metadata": {"finalizers": None}}, MERGE)
    assert (await api.get(f"{NS}/configmaps/held")).code == 404
    assert (await reader.next())["type"] == "DELETED"


async def test_delete_preconditions(api: ApiServer) -> None:
    cm = await api.create(f"{NS}/configmaps", configmap_body("pre"))
    wrong_uid = await api.delete(f"{NS}/configmaps/pre", {"preconditions": {"uid": "other"}})
    assert (
        wrong_uid.code == 409
        and "Precondition failed: UID in precondition: other" in (wrong_uid.body["message"])
    )
    wrong_rv = await api.delete(f"{NS}/configmaps/pre", {"preconditions": {"resourceVersion": "1"}})
    assert wrong_rv.code == 409
    right = await api.delete(
        f"{NS}/configmaps/pre",
        {
            "preconditions": {
                "uid": cm["metadata"]["uid"],
                "resourceVersion": cm["metadata"]["resourceVersion"],
            }
        },
    )
    assert right.code == 200


async def test_dry_run_delete_keeps_the_object(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("dry"))
    assert (await api.delete(f"{NS}/configmaps/dry?dryRun=All")).code == 200
    assert (await api.delete(f"{NS}/configmaps/dry", {"dryRun": ["All"]})).code == 200
    assert (await api.get(f"{NS}/configmaps/dry")).code == 200


async def test_delete_collection_with_a_selector(api: ApiServer) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        await api.create(f"{NS}/configmaps", configmap_body(name, tier=tier))
    resp = await api.delete(f"{NS}/configmaps?labelSelector=tier%3Dweb")
    assert resp.code == 200 and resp.body["kind"] == "ConfigMapList"
    assert names(resp.body["items"]) == ["a", "b"]
    left = (await api.get(f"{NS}/configmaps")).body["items"]
    assert names(left) == ["c"]


async def test_eviction_deletes_the_pod_gracefully(api: ApiServer) -> None:
    await _bound_pod(api, "ev")
    resp = await api.post(
        f"{NS}/pods/ev/eviction",
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "ev"},
            "deleteOptions": {"gracePeriodSeconds": 7},
        },
    )
    assert resp.code == 201 and resp.body["status"] == "Success"
    assert (await api.get(f"{NS}/pods/ev")).body["metadata"]["deletionGracePeriodSeconds"] == 7


async def test_deleting_a_namespace_empties_it_then_removes_it(api: ApiServer) -> None:
    await api.create("/api/v1/namespaces", {"metadata": {"name": "gone"}})
    base = "/api/v1/namespaces/gone"
    body = configmap_body("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await api.create(f"{base}/configmaps", body)
    await api.create(f"{base}/configmaps", configmap_body("free"))
    resp = await api.delete(base)
    assert resp.code == 200 and resp.body["kind"] == "Namespace"
    assert resp.body["status"]["phase"] == "Terminating"
    assert (await api.get(f"{base}/configmaps/free")).code == 404
    refused = await api.post(f"{base}/configmaps", configmap_body("new"))
    assert refused.code == 403
    assert refused.body["message"] == (
        'configmaps "new" is forbidden: unable to create new content in namespace gone because '
        "it is being terminated"
    )
    await api.patch(f"{base}/configmaps/held", {"metadata": {"finalizers": None}}, MERGE)

    async def namespace_gone() -> bool:
        return (await api.get(base)).code == 404

    await wait_for_async(namespace_gone, what="namespace removed")
    await wait_for(lambda: api.store.get(PODS, "gone", "x") is None)
