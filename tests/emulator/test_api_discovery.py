"""Discovery (API concepts: "Discovery API"), Table output for kubectl (API concepts:
"Receiving resources as Tables") and the health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_fixtures import (
    NS,
    TABLE,
    ApiServer,
    configmap_body,
    job_body,
    kube_client,
    pod_body,
    running_api,
)
from kubernetes_asyncio import client

from aiinfn_hub.dev.emulator.api.tables import human_duration
from aiinfn_hub.dev.emulator.resources import RESOURCE_TYPES


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def test_version_and_group_lists(api: ApiServer) -> None:
    version = (await api.get("/version")).body
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    core = (await api.get("/api")).body
    assert core["kind"] == "APIVersions" and core["versions"] == ["v1"]
    groups = (await api.get("/apis")).body
    assert groups["kind"] == "APIGroupList"
    by_name = {g["name"]: g for g in groups["groups"]}
    assert set(by_name) == {rt.group for rt in RESOURCE_TYPES if rt.group}
    kueue = by_name["kueue.x-k8s.io"]
    assert [v["version"] for v in kueue["versions"]] == ["v1beta1", "v1beta2"]
    assert kueue["preferredVersion"] == {
        "groupVersion": "kueue.x-k8s.io/v1beta2",
        "version": "v1beta2",
    }
    group = (await api.get("/apis/batch")).body
    assert group["kind"] == "APIGroup" and group["name"] == "batch"


async def test_resource_lists_describe_verbs_scope_and_subresources(api: ApiServer) -> None:
    core = (await api.get("/api/v1")).body
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    resources = {r["name"]: r for r in core["resources"]}
    pods = resources["pods"]
    assert (pods["kind"], pods["namespaced"], pods["singularName"]) == ("Pod", True, "pod")
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert set(pods["verbs"]) == {
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    }
    for sub in ("pods/status", "pods/log", "pods/binding", "pods/eviction"):
        assert sub in resources, sub
    assert resources["pods/log"]["verbs"] == ["get"]
    assert resources["nodes"]["namespaced"] is False
    batch = (await api.get("/apis/batch/v1")).body
    assert [r["name"] for r in batch["resources"]] == ["jobs", "jobs/status"]
    for version in ("v1beta1", "v1beta2"):
        kueue = (await api.get(f"/apis/kueue.x-k8s.io/{version}")).body
        assert kueue["groupVersion"] == f"kueue.x-k8s.io/{version}"
        assert "workloads/status" in [r["name"] for r in kueue["resources"]]
    assert (await api.get("/apis/batch/v2")).code == 404


async def test_typed_discovery_through_kubernetes_asyncio(api: ApiServer, tmp_path: Path) -> None:
    async with kube_client(api, tmp_path) as api_client:
        versions = await client.CoreApi(api_client).get_api_versions()
        assert versions.versions == ["v1"]
        groups = await client.ApisApi(api_client).get_api_versions()
        assert "batch" in [g.name for g in groups.groups]
        resources = await client.CoreV1Api(api_client).get_api_resources()
        assert "pods" in [r.name for r in resources.resources]
        code = await client.VersionApi(api_client).get_code()
        assert code.git_version.startswith("v1.")


async def test_health_endpoints(api: ApiServer) -> None:
    for path in ("/healthz", "/readyz", "/livez"):
        resp = await api.get(path)
        assert (resp.code, resp.body) == (200, "ok")


async def test_openapi_v3_index_and_no_v2(api: ApiServer) -> None:
    index = (await api.get("/openapi/v3")).body
    assert "api/v1" in index["paths"] and "apis/batch/v1" in index["paths"]
    doc = (await api.get(index["paths"]["api/v1"]["serverRelativeURL"])).body
    post = doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"]
    assert "fieldValidation" in [p["name"] for p in post["parameters"]]
    assert (await api.get("/openapi/v2")).code == 404


async def test_pod_table(api: ApiServer) -> None:
    await api.create(f"{NS}/pods", pod_body("tp"))
    table = (await api.get(f"{NS}/pods", headers={"Accept": TABLE})).body
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    row = table["rows"][0]
    assert row["cells"][:4] == ["tp", "0/1", "Pending", "0"]
    assert row["cells"][5:7] == ["<none>", "<none>"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "tp"
    single = (await api.get(f"{NS}/pods/tp", headers={"Accept": TABLE})).body
    assert single["kind"] == "Table" and len(single["rows"]) == 1
    bare = (await api.get(f"{NS}/pods?includeObject=None", headers={"Accept": TABLE})).body
    assert "object" not in bare["rows"][0]


async def test_node_job_and_generic_tables(api: ApiServer) -> None:
    nodes = (await api.get("/api/v1/nodes", headers={"Accept": TABLE})).body
    assert [c["name"] for c in nodes["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Status",
        "Roles",
        "Age",
        "Version",
    ]
    assert nodes["rows"][0]["cells"][:3] == ["node-a", "Ready", "worker"]
    assert nodes["rows"][0]["cells"][4:6] == ["v1.33.2", "10.0.0.7"]
    await api.create("/apis/batch/v1/namespaces/default/jobs", job_body("tj"))
    jobs = (await api.get("/apis/batch/v1/jobs", headers={"Accept": TABLE})).body
    assert jobs["rows"][0]["cells"][:3] == ["tj", "Running", "0/1"]
    await api.create(f"{NS}/configmaps", configmap_body("tc"))
    cms = (await api.get(f"{NS}/configmaps", headers={"Accept": TABLE})).body
    assert [c["name"] for c in cms["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert cms["rows"][0]["cells"][:2] == ["tc", 1]
    await api.create("/apis/kueue.x-k8s.io/v1beta1/resourceflavors", {"metadata": {"name": "rf"}})
    flavors = (
        await api.get("/apis/kueue.x-k8s.io/v1beta1/resourceflavors", headers={"Accept": TABLE})
    ).body
    assert [c["name"] for c in flavors["columnDefinitions"]] == ["Name", "Age"]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (7200, "120m"),
        (4 * 3600 + 60, "4h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (40 * 86400, "40d"),
        (-5, "<invalid>"),
    ],
)
def test_ages_are_printed_like_kubectl(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


async def test_watch_events_as_tables(api: ApiServer) -> None:
    reader = api.watch(f"{NS}/pods?watch=true&timeoutSeconds=5", headers={"Accept": TABLE})
    await api.wait_watchers(1)
    await api.create(f"{NS}/pods", pod_body("tw"))
    event = await reader.next()
    assert event["type"] == "ADDED" and event["object"]["kind"] == "Table"
    assert event["object"]["rows"][0]["cells"][0] == "tw"
