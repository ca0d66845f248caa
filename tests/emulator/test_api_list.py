"""Lists: label and field selectors, paging, resourceVersion semantics (API concepts:
"Labels and Selectors", "Field Selectors", "Retrieving large results sets in chunks",
"Resource versions")."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from api_fixtures import NS, ApiServer, configmap_body, names, pod_body, query, running_api

from aiinfn_hub.dev.emulator.resources import PODS


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        for name, labels in (
            ("a", {"tier": "web", "env": "prod"}),
            ("b", {"tier": "web"}),
            ("c", {"tier": "db", "env": "dev"}),
            ("d", {}),
        ):
            await server.create(f"{NS}/configmaps", configmap_body(name, **labels))
        yield server


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "b"]),
        ("tier==web", ["a", "b"]),
        ("tier!=web", ["c", "d"]),  # objects without the label match !=
        ("tier in (web,db)", ["a", "b", "c"]),
        ("tier in ( web , db )", ["a", "b", "c"]),
        ("tier notin (web)", ["c", "d"]),
        ("tier", ["a", "b", "c"]),
        ("!tier", ["d"]),
        ("tier=web,env=prod", ["a"]),
        ("tier,!env", ["b"]),
        ("env in (prod,dev),tier!=db", ["a"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
async def test_label_selector_operators(api: ApiServer, selector: str, expected: list[str]) -> None:
    resp = await api.get(f"{NS}/configmaps" + query(labelSelector=selector))
    assert resp.code == 200
    assert names(resp.body["items"]) == expected


@pytest.mark.parametrize(
    "selector", ["tier in ()", "tier in (web", "=web", "tier=web=db", "!tier=web", "a b", "x!y"]
)
async def test_bad_label_selectors_are_400(api: ApiServer, selector: str) -> None:
    resp = await api.get(f"{NS}/configmaps" + query(labelSelector=selector))
    assert resp.code == 400, selector
    assert resp.body["reason"] == "BadRequest" and resp.body["kind"] == "Status"
    assert (
        "unable to parse requirement" in resp.body["message"] or "invalid" in (resp.body["message"])
    )


async def test_field_selectors_on_supported_labels(api: ApiServer) -> None:
    await api.create(f"{NS}/pods", pod_body("p1"))
    await api.create(f"{NS}/pods", pod_body("p2"))
    await api.create("/api/v1/namespaces/kube-system/pods", pod_body("p3"))
    bound = api.store.get(PODS, "default", "p2")
    assert bound is not None
    api.store.update(PODS, {**bound, "spec": {**bound["spec"], "nodeName": "node-a"}})

    async def selected(path: str, selector: str) -> list[str]:
        resp = await api.get(path + query(fieldSelector=selector))
        assert resp.code == 200, resp.body
        return names(resp.body["items"])

    assert await selected(f"{NS}/pods", "metadata.name=p1") == ["p1"]
    assert await selected(f"{NS}/pods", "metadata.name!=p1") == ["p2"]
    assert await selected(f"{NS}/pods", "spec.nodeName==node-a") == ["p2"]
    assert await selected(f"{NS}/pods", "spec.nodeName=") == ["p1"]  # unset is ""
    assert await selected(f"{NS}/pods", "status.phase=Pending,metadata.name=p2") == ["p2"]
    assert await selected("/api/v1/pods", "metadata.namespace=kube-system") == ["p3"]
    assert await selected("/api/v1/pods", "spec.restartPolicy=Always") == ["p1", "p2", "p3"]
    assert await selected("/api/v1/nodes", "metadata.name=node-b") == ["node-b"]
    assert await selected("/api/v1/namespaces", "status.phase=Active") == [
        "default",
        "kube-system",
    ]


async def test_event_field_selectors_used_by_kubespawner(api: ApiServer) -> None:
    for name, kind in (("e-pod", "Pod"), ("e-node", "Node")):
        await api.create(
            f"{NS}/events",
            {
                "metadata": {"name": name},
                "involvedObject": {"kind": kind, "name": "x", "namespace": "default"},
                "reason": "Test",
                "source": {"component": "kubelet"},
            },
        )
    resp = await api.get(f"{NS}/events?fieldSelector=involvedObject.kind%3DPod")
    assert names(resp.body["items"]) == ["e-pod"]
    resp = await api.get(f"{NS}/events?fieldSelector=source%3Dkubelet")
    assert names(resp.body["items"]) == ["e-node", "e-pod"]


async def test_unsupported_field_labels_are_400_and_empty_selectors_fine(api: ApiServer) -> None:
    resp = await api.get(f"{NS}/pods?fieldSelector=spec.image%3Dx")
    assert (resp.code, resp.body["message"]) == (400, "field label not supported: spec.image")
    resp = await api.get(f"{NS}/configmaps?fieldSelector=status.phase%3DX")
    assert resp.body["message"] == "field label not supported: status.phase"
    resp = await api.get(f"{NS}/pods?fieldSelector=metadata.name")
    assert resp.code == 400
    assert (await api.get(f"{NS}/pods?fieldSelector=&labelSelector=")).code == 200


async def test_limit_and_continue_page_through_one_snapshot_version(api: ApiServer) -> None:
    first = (await api.get(f"{NS}/configmaps?limit=3")).body
    assert names(first["items"]) == ["a", "b", "c"]
    assert first["metadata"]["remainingItemCount"] == 1
    token = first["metadata"]["continue"]
    await api.create(f"{NS}/configmaps", configmap_body("e"))
    second = (await api.get(f"{NS}/configmaps" + query(limit="3", **{"continue": token}))).body
    assert names(second["items"]) == ["d", "e"]
    assert "continue" not in second["metadata"]
    # every page reports the resourceVersion of the first one
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    whole = (await api.get(f"{NS}/configmaps?limit=500")).body
    assert "continue" not in whole["metadata"] and len(whole["items"]) == 5
    bad = await api.get(f"{NS}/configmaps?continue=garbage")
    assert bad.code == 400 and bad.body["reason"] == "BadRequest"


async def test_paging_across_namespaces_follows_namespace_then_name(api: ApiServer) -> None:
    await api.create("/api/v1/namespaces/kube-system/configmaps", configmap_body("a"))
    seen: list[tuple[str, str]] = []
    path = "/api/v1/configmaps?limit=2"
    while True:
        page = (await api.get(path)).body
        seen += [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        path = "/api/v1/configmaps" + query(limit="2", **{"continue": token})
    assert seen == [("default", n) for n in "abcd"] + [("kube-system", "a")]


async def test_resource_version_match(api: ApiServer) -> None:
    current = str(api.store.resource_version)
    ok = await api.get(f"{NS}/configmaps?resourceVersion=0&resourceVersionMatch=NotOlderThan")
    assert ok.code == 200 and len(ok.body["items"]) == 4
    exact = await api.get(
        f"{NS}/configmaps" + query(resourceVersion=current, resourceVersionMatch="Exact")
    )
    assert exact.code == 200
    older = await api.get(f"{NS}/configmaps?resourceVersion=2&resourceVersionMatch=Exact")
    assert (older.code, older.body["reason"]) == (410, "Expired")
    alone = await api.get(f"{NS}/configmaps?resourceVersionMatch=NotOlderThan")
    assert alone.code == 422
    wrong = await api.get(f"{NS}/configmaps?resourceVersion=1&resourceVersionMatch=Newest")
    assert wrong.code == 422
    not_a_number = await api.get(f"{NS}/configmaps?resourceVersion=abc")
    assert not_a_number.code == 400
    future = await api.get(f"{NS}/configmaps?resourceVersion=999999")
    assert (future.code, future.body["reason"]) == (504, "Timeout")
