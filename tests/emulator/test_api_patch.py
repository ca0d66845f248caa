"""PATCH in its four content types (API concepts: "Patch operations"; RFC 7386, RFC 6902,
strategic merge patch as documented in "Update API Objects in Place Using kubectl patch")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import NS, ApiServer, configmap_body, kube_client, pod_body, running_api
from kubernetes_asyncio import client

from aiinfn_hub.dev.emulator.api.patching import json_patch, merge_patch, strategic_merge_patch
from aiinfn_hub.dev.emulator.errors import ApiError

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


# -- the algorithms ---------------------------------------------------------------------------
def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None, "h": 1}, "list": [3]}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e", "h": 1}, "list": [3]}
    assert target["a"] == "b"  # the input is left alone


def test_json_patch_follows_rfc_6902() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/c", "value": "x"},
        {"op": "add", "path": "/a/b/1", "value": 9},
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "replace", "path": "/c", "value": "y"},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e~1f"},
        {"op": "remove", "path": "/a/b/0"},
    ]
    assert json_patch(doc, ops) == {"a": {"b": [9, 2, 3]}, "c": "y", "e/f": "y"}
    with pytest.raises(ApiError) as failed_test:
        json_patch(doc, [{"op": "test", "path": "/c", "value": "nope"}])
    assert failed_test.value.code == 422
    with pytest.raises(ApiError) as missing:
        json_patch(doc, [{"op": "replace", "path": "/nothere", "value": 1}])
    assert missing.value.code == 422


def test_strategic_merge_merges_named_lists_and_honours_directives() -> None:
    spec = {
        "containers": [
            {"name": "a", "image": "x:1", "env": [{"name": "E", "value": "1"}]},
            {"name": "b", "image": "y:1"},
        ],
        "tolerations": [{"key": "k1", "operator": "Exists"}],
        "volumes": [{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}],
    }
    patch = {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [
            {"name": "a", "image": "x:2", "env": [{"name": "F", "value": "2"}]},
            {"name": "c", "image": "z:1"},
        ],
        "tolerations": [{"key": "k2", "operator": "Exists"}],
        "volumes": [{"name": "v2", "$patch": "delete"}],
    }
    merged = strategic_merge_patch(spec, patch)
    assert merged["containers"] == [
        {
            "name": "a",
            "image": "x:2",
            "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}],
        },
        {"name": "b", "image": "y:1"},
        {"name": "c", "image": "z:1"},
    ]
    assert merged["tolerations"] == [{"key": "k2", "operator": "Exists"}]  # no merge key
    assert merged["volumes"] == [{"name": "v1", "emptyDir": {}}]
    replaced = strategic_merge_patch(
        spec, {"containers": [{"name": "only"}, {"$patch": "replace"}]}
    )
    assert replaced["containers"] == [{"name": "only"}]
    whole_map = strategic_merge_patch({"m": {"a": 1, "b": 2}}, {"m": {"$patch": "replace", "c": 3}})
    assert whole_map == {"m": {"c": 3}}
    dropped = strategic_merge_patch({"m": {"a": 1}, "n": 1}, {"m": {"$patch": "delete"}})
    assert dropped == {"n": 1}
    assert strategic_merge_patch({"finalizers": ["a"]}, {"finalizers": ["b", "a"]}) == {
        "finalizers": ["a", "b"]
    }
    assert strategic_merge_patch(
        {"finalizers": ["a", "b"]}, {"$deleteFromPrimitiveList/finalizers": ["a"]}
    ) == {"finalizers": ["b"]}


def test_strategic_merge_of_ports_uses_the_kinds_merge_key() -> None:
    service = {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}
    merged = strategic_merge_patch(service, {"ports": [{"port": 80, "targetPort": 8080}]})
    assert merged["ports"] == [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "https", "port": 443},
    ]
    container = {"ports": [{"containerPort": 8888, "name": "nb"}]}
    merged = strategic_merge_patch(
        container, {"ports": [{"containerPort": 8888, "protocol": "TCP"}]}
    )
    assert merged["ports"] == [{"containerPort": 8888, "name": "nb", "protocol": "TCP"}]


# -- over HTTP --------------------------------------------------------------------------------
async def test_each_patch_type_over_http(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("p", app="x"))
    path = f"{NS}/configmaps/p"
    merged = await api.patch(path, {"data": {"k": None, "n": "1"}}, MERGE)
    assert merged.code == 200 and merged.body["data"] == {"n": "1"}
    patched = await api.patch(path, [{"op": "add", "path": "/data/m", "value": "2"}], JSON_PATCH)
    assert patched.body["data"] == {"n": "1", "m": "2"}
    failed = await api.patch(path, [{"op": "test", "path": "/data/m", "value": "9"}], JSON_PATCH)
    assert failed.code == 422 and failed.body["kind"] == "Status"
    strategic = await api.patch(path, {"metadata": {"labels": {"tier": "web"}}}, STRATEGIC)
    assert strategic.body["metadata"]["labels"] == {"app": "x", "tier": "web"}
    not_a_list = await api.patch(path, {"op": "add"}, JSON_PATCH)
    assert not_a_list.code == 400


async def test_unknown_patch_types_are_415(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("p"))
    for ctype in ("application/json", "text/plain", "application/xml"):
        resp = await api.patch(f"{NS}/configmaps/p", {"data": {}}, ctype)
        assert (resp.code, resp.body["reason"]) == (415, "UnsupportedMediaType"), ctype


async def test_custom_resources_refuse_strategic_merge(api: ApiServer) -> None:
    path = "/apis/kueue.x-k8s.io/v1beta1/clusterqueues"
    await api.create(path, {"metadata": {"name": "cq"}, "spec": {"cohort": "a"}})
    refused = await api.patch(f"{path}/cq", {"spec": {"cohort": "b"}}, STRATEGIC)
    assert refused.code == 415
    merged = await api.patch(f"{path}/cq", {"spec": {"cohort": "b"}}, MERGE)
    assert merged.code == 200 and merged.body["spec"] == {"cohort": "b"}


async def test_strategic_patch_of_a_pod_image_keeps_the_other_containers(api: ApiServer) -> None:
    body = pod_body("two")
    body["spec"]["containers"].append({"name": "side", "image": "busybox:1.36"})
    await api.create(f"{NS}/pods", body)
    resp = await api.patch(
        f"{NS}/pods/two",
        {"spec": {"containers": [{"name": "main", "image": "python:3.12"}]}},
        STRATEGIC,
    )
    assert resp.code == 200, resp.body
    containers = resp.body["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("main", "python:3.12"),
        ("side", "busybox:1.36"),
    ]
    assert resp.body["metadata"]["generation"] == 2


async def test_patch_preconditions_and_missing_objects(api: ApiServer) -> None:
    cm = await api.create(f"{NS}/configmaps", configmap_body("pre"))
    old_rv = cm["metadata"]["resourceVersion"]
    await api.patch(f"{NS}/configmaps/pre", {"data": {"a": "1"}}, MERGE)
    stale = await api.patch(
        f"{NS}/configmaps/pre", {"metadata": {"resourceVersion": old_rv}, "data": {"b": "2"}}, MERGE
    )
    assert (stale.code, stale.body["reason"]) == (409, "Conflict")
    missing = await api.patch(f"{NS}/configmaps/none", {"data": {}}, MERGE)
    assert missing.code == 404


async def test_status_patch_changes_only_status(api: ApiServer) -> None:
    await api.create(f"{NS}/pods", pod_body("sp"))
    resp = await api.patch(
        f"{NS}/pods/sp/status",
        {"status": {"phase": "Running"}, "spec": {"activeDeadlineSeconds": 5}},
        MERGE,
    )
    assert resp.body["status"]["phase"] == "Running"
    assert "activeDeadlineSeconds" not in resp.body["spec"]
    main = await api.patch(f"{NS}/pods/sp", {"status": {"phase": "Failed"}}, MERGE)
    assert main.body["status"]["phase"] == "Running"


async def test_server_side_apply_creates_then_merges(api: ApiServer) -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n"
    path = f"{NS}/configmaps/applied?fieldManager=test"
    created = await api.patch(path, manifest, APPLY)
    assert created.code == 201 and created.body["data"] == {"a": "1"}
    updated = await api.patch(path, manifest.replace("'1'", "'2'"), APPLY)
    assert updated.code == 200 and updated.body["data"] == {"a": "2"}
    no_manager = await api.patch(f"{NS}/configmaps/applied", manifest, APPLY)
    assert no_manager.code == 422


async def test_kubernetes_asyncio_patch_content_types(api: ApiServer, tmp_path: Path) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("k"))
    async with kube_client(api, tmp_path) as api_client:
        core = client.CoreV1Api(api_client)
        # a dict body goes as a strategic merge patch, a list as a JSON patch
        dict_patched = await core.patch_namespaced_config_map("k", "default", {"data": {"d": "1"}})
        assert dict_patched.data == {"k": "v", "d": "1"}
        list_patched = await core.patch_namespaced_config_map(
            "k", "default", [{"op": "remove", "path": "/data/k"}]
        )
        assert list_patched.data == {"d": "1"}
