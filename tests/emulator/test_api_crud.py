"""Create, read, replace and the shape of objects, against the Kubernetes API conventions.

Typed clients (kubernetes_asyncio and the sync ``kubernetes`` package) must deserialize every
answer: their models raise on a missing required field, so a round trip proves the JSON is
complete. Raw checks hold the server to the conventions: unset fields omitted, lists without
per-item kind, one cluster-wide resourceVersion, 201 on create.
"""

from __future__ import annotations

import asyncio
import re
import uuid
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
    nulls,
    pod_body,
    running_api,
    sync_client,
)
from kubernetes_asyncio import client


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def test_typed_round_trip_of_every_core_kind(api: ApiServer, tmp_path: Path) -> None:
    async with kube_client(api, tmp_path) as api_client:
        core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
        sched = client.SchedulingV1Api(api_client)
        ns = await core.create_namespace({"metadata": {"name": "team-a"}})
        assert ns.status.phase == "Active"
        sa = await core.read_namespaced_service_account("default", "team-a")
        assert sa.metadata.namespace == "team-a"
        await sched.create_priority_class({"metadata": {"name": "high"}, "value": 1000})
        pod = await core.create_namespaced_pod("team-a", pod_body("p", priorityClassName="high"))
        assert pod.spec.priority == 1000 and pod.status.phase == "Pending"
        svc = await core.create_namespaced_service(
            "team-a", {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
        )
        assert svc.spec.cluster_ip and svc.spec.ports[0].target_port == 80
        secret = await core.create_namespaced_secret(
            "team-a", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}}
        )
        assert secret.data == {"token": "YWJj"}
        cm = await core.create_namespaced_config_map("team-a", configmap_body("c", tier="web"))
        pvc = await core.create_namespaced_persistent_volume_claim(
            "team-a",
            {
                "metadata": {"name": "home"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        assert pvc.status.phase == "Pending"
        event = await core.create_namespaced_event(
            "team-a",
            {
                "metadata": {"name": "p.1"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "team-a"},
                "reason": "Scheduled",
                "message": "assigned",
                "type": "Normal",
            },
        )
        assert event.event_time is None and event.last_timestamp is None
        job = await batch.create_namespaced_job("team-a", job_body("j"))
        assert job.spec.backoff_limit == 6
        # reads, lists and a replace deserialize as well
        assert (await core.read_namespaced_pod("p", "team-a")).metadata.uid == pod.metadata.uid
        pods = await core.list_namespaced_pod("team-a")
        assert [p.metadata.name for p in pods.items] == ["p"]
        assert (await core.list_pod_for_all_namespaces()).items[0].metadata.name == "p"
        assert len((await core.list_node()).items) == 2
        assert (await core.list_namespaced_event("team-a")).items[0].reason == "Scheduled"
        assert (await batch.list_job_for_all_namespaces()).items[0].metadata.name == "j"
        cm.data = {"k": "v2"}
        replaced = await core.replace_namespaced_config_map("c", "team-a", cm)
        assert replaced.data == {"k": "v2"}
        assert int(replaced.metadata.resource_version) > int(cm.metadata.resource_version)


async def test_sync_kubernetes_client_round_trip(api: ApiServer, tmp_path: Path) -> None:
    from kubernetes import client as sync

    with sync_client(api, tmp_path) as api_client:
        core = sync.CoreV1Api(api_client)

        def work() -> list[Any]:
            created = core.create_namespaced_config_map("default", configmap_body("s1"))
            patched = core.patch_namespaced_config_map("s1", "default", {"data": {"x": "1"}})
            nodes = core.list_node()
            pod = core.create_namespaced_pod("default", pod_body("sp"))
            deleted = core.delete_namespaced_config_map("s1", "default")
            return [created, patched, nodes, pod, deleted]

        created, patched, nodes, pod, deleted = await asyncio.to_thread(work)
    assert created.metadata.name == "s1" and patched.data == {"k": "v", "x": "1"}
    assert sorted(n.metadata.name for n in nodes.items) == ["node-a", "node-b"]
    assert pod.spec.containers[0].termination_message_path == "/dev/termination-log"
    assert deleted["status"] == "Success"  # this client reads delete answers as plain dicts


async def test_objects_are_shaped_like_the_real_servers(api: ApiServer) -> None:
    resp = await api.post(f"{NS}/pods", pod_body("shape"))
    assert resp.code == 201
    pod = resp.body
    assert (pod["kind"], pod["apiVersion"]) == ("Pod", "v1")
    assert nulls(pod) == []
    meta = pod["metadata"]
    assert uuid.UUID(meta["uid"]) and meta["generation"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    cm = await api.create(f"{NS}/configmaps", configmap_body("shape"))
    assert "generation" not in cm["metadata"]  # kinds without spec keep no generation
    listing = (await api.get(f"{NS}/pods")).body
    assert listing["kind"] == "PodList" and listing["apiVersion"] == "v1"
    assert all("kind" not in i and "apiVersion" not in i for i in listing["items"])
    assert listing["metadata"]["resourceVersion"] == str(api.store.resource_version)
    assert int(cm["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    jobs = (await api.get("/apis/batch/v1/jobs")).body
    assert (jobs["kind"], jobs["apiVersion"], jobs["items"]) == ("JobList", "batch/v1", [])


async def test_status_codes_of_create_get_and_replace(api: ApiServer) -> None:
    created = await api.post(f"{NS}/configmaps", configmap_body("codes"))
    assert created.code == 201
    got = await api.get(f"{NS}/configmaps/codes")
    assert got.code == 200 and got.body == created.body
    got.body["data"] = {"k": "2"}
    replaced = await api.put(f"{NS}/configmaps/codes", got.body)
    assert replaced.code == 200 and replaced.body["data"] == {"k": "2"}
    assert replaced.headers["Content-Type"] == "application/json"


async def test_namespaces_in_urls_and_bodies(api: ApiServer) -> None:
    missing = await api.post("/api/v1/namespaces/nowhere/configmaps", configmap_body("x"))
    assert (missing.code, missing.body["message"]) == (404, 'namespaces "nowhere" not found')
    body = configmap_body("x")
    body["metadata"]["namespace"] = "kube-system"
    wrong = await api.post(f"{NS}/configmaps", body)
    assert wrong.code == 400
    assert wrong.body["message"] == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )
    # a namespaced kind cannot be created through its all-namespaces collection
    assert (await api.post("/api/v1/configmaps", configmap_body("y"))).code == 405
    # reading in a missing namespace is a plain 404 on the object; a list is empty
    assert (await api.get("/api/v1/namespaces/nowhere/pods/p")).body["message"] == (
        'pods "p" not found'
    )
    assert (await api.get("/api/v1/namespaces/nowhere/pods")).body["items"] == []


async def test_names_are_required_or_generated(api: ApiServer) -> None:
    resp = await api.post(f"{NS}/configmaps", {"metadata": {}, "data": {}})
    assert resp.code == 422 and resp.body["reason"] == "Invalid"
    assert resp.body["message"] == (
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'
    )
    generated = await api.create(f"{NS}/configmaps", {"metadata": {"generateName": "run-"}})
    assert re.fullmatch(r"run-[bcdfghjklmnpqrstvwxz2456789]{5}", generated["metadata"]["name"])
    assert generated["metadata"]["generateName"] == "run-"


async def test_duplicate_create_is_already_exists(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("dup"))
    resp = await api.post(f"{NS}/configmaps", configmap_body("dup"))
    assert resp.code == 409
    assert resp.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "dup" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "dup", "kind": "configmaps"},
        "code": 409,
    }


async def test_server_set_metadata_is_ignored_on_create(api: ApiServer) -> None:
    body = configmap_body("meta")
    body["metadata"].update(
        {"uid": "not-yours", "creationTimestamp": "2000-01-01T00:00:00Z", "generation": 7}
    )
    created = await api.create(f"{NS}/configmaps", body)
    assert created["metadata"]["uid"] != "not-yours"
    assert not created["metadata"]["creationTimestamp"].startswith("2000")


async def test_dry_run_stores_nothing(api: ApiServer) -> None:
    resp = await api.post(f"{NS}/pods?dryRun=All", pod_body("dry"))
    assert resp.code == 201 and resp.body["spec"]["dnsPolicy"] == "ClusterFirst"
    assert (await api.get(f"{NS}/pods/dry")).code == 404
    assert (await api.post(f"{NS}/pods?dryRun=Some", pod_body("dry"))).code == 400


async def test_replace_needs_a_current_resource_version_when_given(api: ApiServer) -> None:
    cm = await api.create(f"{NS}/configmaps", configmap_body("rv"))
    cm["data"] = {"k": "2"}
    assert (await api.put(f"{NS}/configmaps/rv", cm)).code == 200
    cm["data"] = {"k": "3"}  # still the old resourceVersion
    stale = await api.put(f"{NS}/configmaps/rv", cm)
    assert (stale.code, stale.body["reason"]) == (409, "Conflict")
    assert stale.body["message"] == (
        'Operation cannot be fulfilled on configmaps "rv": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    del cm["metadata"]["resourceVersion"]  # an unconditional update
    assert (await api.put(f"{NS}/configmaps/rv", cm)).body["data"] == {"k": "3"}


async def test_replace_errors(api: ApiServer) -> None:
    missing = await api.put(f"{NS}/pods/ghost", pod_body("ghost"))
    assert (missing.code, missing.body["message"]) == (404, 'pods "ghost" not found')
    cm = await api.create(f"{NS}/configmaps", configmap_body("one"))
    renamed = await api.put(f"{NS}/configmaps/other", cm)
    assert renamed.code == 400
    assert renamed.body["message"] == (
        "the name of the object (one) does not match the name on the URL (other)"
    )
    cm["metadata"]["uid"] = str(uuid.uuid4())
    other_uid = await api.put(f"{NS}/configmaps/one", cm)
    assert (
        other_uid.code == 409
        and "Precondition failed: UID in precondition" in (other_uid.body["message"])
    )


async def test_status_subresource_splits_spec_and_status_writes(api: ApiServer) -> None:
    pod = await api.create(f"{NS}/pods", pod_body("st"))
    pod["status"] = {"phase": "Running", "podIP": "10.1.0.5"}
    pod["spec"]["activeDeadlineSeconds"] = 60
    via_status = await api.put(f"{NS}/pods/st/status", pod)
    assert via_status.code == 200
    assert via_status.body["status"] == {"phase": "Running", "podIP": "10.1.0.5"}
    assert "activeDeadlineSeconds" not in via_status.body["spec"]  # status writes keep spec
    current = via_status.body
    current["status"] = {"phase": "Failed"}
    current["spec"]["activeDeadlineSeconds"] = 60
    via_main = await api.put(f"{NS}/pods/st", current)
    assert via_main.body["status"]["phase"] == "Running"  # main writes keep status
    assert via_main.body["spec"]["activeDeadlineSeconds"] == 60
    got = await api.get(f"{NS}/pods/st/status")
    assert got.code == 200 and got.body["status"]["phase"] == "Running"
    stale = await api.put(f"{NS}/pods/st/status", current)
    assert stale.code == 409


async def test_create_resets_status_of_kinds_with_a_status_subresource(api: ApiServer) -> None:
    body = pod_body("fresh")
    body["status"] = {"phase": "Running", "podIP": "1.2.3.4"}
    pod = await api.create(f"{NS}/pods", body)
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    job = job_body("fresh")
    job["status"] = {"succeeded": 1}
    assert (await api.create("/apis/batch/v1/namespaces/default/jobs", job))["status"] == {}


async def test_kueue_kinds_are_served_at_both_versions(api: ApiServer) -> None:
    base = "/apis/kueue.x-k8s.io"
    flavor = {"metadata": {"name": "gpu"}, "spec": {"nodeLabels": {"a": "b"}, "extra": 1}}
    created = await api.create(f"{base}/v1beta1/resourceflavors", flavor)
    assert created["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    assert created["spec"]["extra"] == 1  # custom resources are stored as given
    v2 = (await api.get(f"{base}/v1beta2/resourceflavors/gpu")).body
    assert (v2["apiVersion"], v2["kind"]) == ("kueue.x-k8s.io/v1beta2", "ResourceFlavor")
    listing = (await api.get(f"{base}/v1beta2/resourceflavors")).body
    assert listing["kind"] == "ResourceFlavorList" and names(listing["items"]) == ["gpu"]
    queue = await api.create(
        f"{base}/v1beta2/namespaces/default/localqueues",
        {"metadata": {"name": "q"}, "spec": {"clusterQueue": "cq"}},
    )
    assert queue["metadata"]["namespace"] == "default"
    assert (await api.get(f"{base}/v1/resourceflavors")).code == 404


async def test_errors_are_status_objects_for_unknown_paths_and_verbs(api: ApiServer) -> None:
    for path in ("/api/v1/nothere", "/apis/nogroup/v1/things", "/api/v2/pods", "/elsewhere"):
        resp = await api.get(path)
        assert resp.code == 404 and resp.body["kind"] == "Status", path
        assert resp.body["reason"] == "NotFound"
    await api.create(f"{NS}/configmaps", configmap_body("x"))
    not_allowed = await api.post(f"{NS}/configmaps/x", configmap_body("x"))
    assert (not_allowed.code, not_allowed.body["reason"]) == (405, "MethodNotAllowed")
    unknown_sub = await api.get(f"{NS}/configmaps/x/status")
    assert unknown_sub.code == 404 and unknown_sub.body["kind"] == "Status"
    bad_json = await api.post(f"{NS}/configmaps", "{not json")
    assert bad_json.code == 400 and bad_json.body["kind"] == "Status"


async def test_yaml_bodies_are_accepted(api: ApiServer) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n"
    resp = await api.post(f"{NS}/configmaps", text, content_type="application/yaml")
    assert resp.code == 201 and resp.body["data"] == {"a": "b"}


async def test_the_kind_in_a_body_must_match_the_url(api: ApiServer) -> None:
    body = configmap_body("k")
    body["kind"] = "Secret"
    assert (await api.post(f"{NS}/configmaps", body)).code == 400
    body = configmap_body("k")
    body["apiVersion"] = "v2"
    assert (await api.post(f"{NS}/configmaps", body)).code == 400
