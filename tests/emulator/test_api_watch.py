"""Watches (API concepts: "Efficient detection of changes", "Watch bookmarks") and the exact
request sequence of KubeSpawner's reflector (EMULATOR-NOTES.md, section 1)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_fixtures import (
    NS,
    ApiServer,
    configmap_body,
    kube_client,
    names,
    pod_body,
    running_api,
    wait_for,
)
from kubernetes_asyncio import client, watch

from aiinfn_hub.dev.emulator.api import watching


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def _patch_labels(api: ApiServer, name: str, labels: dict[str, str | None]) -> None:
    resp = await api.patch(
        f"{NS}/configmaps/{name}",
        {"metadata": {"labels": labels}},
        "application/merge-patch+json",
    )
    assert resp.code == 200, resp.body


async def test_watch_without_version_lists_then_follows(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("before"))
    reader = api.watch(f"{NS}/configmaps?watch=true&timeoutSeconds=5")
    first = await reader.next()
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "before"
    # objects in events carry kind and apiVersion, unlike list items
    assert (first["object"]["kind"], first["object"]["apiVersion"]) == ("ConfigMap", "v1")
    await api.create(f"{NS}/configmaps", configmap_body("after"))
    added = await reader.next()
    assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "after")
    await _patch_labels(api, "after", {"x": "1"})
    modified = await reader.next()
    assert modified["type"] == "MODIFIED" and modified["object"]["metadata"]["labels"] == {"x": "1"}
    assert (await api.delete(f"{NS}/configmaps/after")).code == 200
    deleted = await reader.next()
    assert deleted["type"] == "DELETED"
    assert int(deleted["object"]["metadata"]["resourceVersion"]) > int(
        modified["object"]["metadata"]["resourceVersion"]
    )


async def test_watch_from_zero_is_like_no_version(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("there"))
    events = await api.watch(
        f"{NS}/configmaps?watch=1&resourceVersion=0&timeoutSeconds=1"
    ).until_closed()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "there")]


async def test_watch_from_a_version_sends_only_newer_events(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("old"))
    rv = (await api.get(f"{NS}/configmaps")).body["metadata"]["resourceVersion"]
    await api.create(f"{NS}/configmaps", configmap_body("new"))
    events = await api.watch(
        f"{NS}/configmaps?watch=True&resourceVersion={rv}&timeoutSeconds=1"
    ).until_closed()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "new")]


async def test_watch_from_a_compacted_version_is_an_expired_error_event() -> None:
    async with running_api(history_size=3) as api:
        for i in range(6):
            await api.create(f"{NS}/configmaps", configmap_body(f"c{i}"))
        reader = api.watch(f"{NS}/configmaps?watch=true&resourceVersion=2")
        events = await reader.until_closed()
        response = await reader.done
    assert response.code == 200  # the error travels inside the stream
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith("too old resource version: 2 (")


async def test_timeout_seconds_ends_the_stream(api: ApiServer) -> None:
    began = time.monotonic()
    events = await api.watch(f"{NS}/pods?watch=true&timeoutSeconds=1").until_closed(5)
    elapsed = time.monotonic() - began
    assert events == [] and 0.9 <= elapsed < 3


async def test_selectors_turn_transitions_into_added_and_deleted(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("m"))
    reader = api.watch(f"{NS}/configmaps?watch=true&labelSelector=app%3Dweb&timeoutSeconds=5")
    await api.wait_watchers(1)
    await _patch_labels(api, "m", {"app": "web"})
    entered = await reader.next()
    assert (entered["type"], entered["object"]["metadata"]["name"]) == ("ADDED", "m")
    await _patch_labels(api, "m", {"other": "1"})
    modified = await reader.next()
    assert modified["type"] == "MODIFIED"
    await _patch_labels(api, "m", {"app": "db"})
    left = await reader.next()
    assert left["type"] == "DELETED" and left["object"]["metadata"]["labels"]["app"] == "db"
    await _patch_labels(api, "m", {"other": "2"})  # outside the selection: nothing
    await api.create(f"{NS}/configmaps", configmap_body("n", app="web"))
    nxt = await reader.next()
    assert (nxt["type"], nxt["object"]["metadata"]["name"]) == ("ADDED", "n")


async def test_field_selector_on_a_watch(api: ApiServer) -> None:
    reader = api.watch(
        f"{NS}/configmaps?watch=true&fieldSelector=metadata.name%3Dwanted&timeoutSeconds=5"
    )
    await api.wait_watchers(1)
    await api.create(f"{NS}/configmaps", configmap_body("unwanted"))
    await api.create(f"{NS}/configmaps", configmap_body("wanted"))
    event = await reader.next()
    assert event["object"]["metadata"]["name"] == "wanted"


async def test_bookmarks_only_when_asked(api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "BOOKMARK_INTERVAL", 0.05)
    plain = api.watch(f"{NS}/configmaps?watch=true&timeoutSeconds=5")
    asked = api.watch(f"{NS}/configmaps?watch=true&allowWatchBookmarks=True&timeoutSeconds=5")
    bookmark = await asked.next()
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"] == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(api.store.resource_version)},
    }
    await plain.expect_quiet(0.3)


async def test_send_initial_events_ends_with_an_annotated_bookmark(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("x"))
    reader = api.watch(
        f"{NS}/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
        "&resourceVersionMatch=NotOlderThan&timeoutSeconds=5"
    )
    assert (await reader.next())["type"] == "ADDED"
    end = await reader.next()
    assert end["type"] == "BOOKMARK"
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_legacy_watch_paths(api: ApiServer) -> None:
    await api.create(f"{NS}/configmaps", configmap_body("legacy"))
    await api.create(f"{NS}/configmaps", configmap_body("another"))
    base = "/api/v1/watch"
    namespaced = api.watch(f"{base}/namespaces/default/configmaps?timeoutSeconds=1")
    everywhere = api.watch(f"{base}/configmaps?timeoutSeconds=1")
    one = api.watch(f"{base}/namespaces/default/configmaps/legacy?timeoutSeconds=1")
    for reader, expected in (
        (namespaced, ["another", "legacy"]),
        (everywhere, ["another", "legacy"]),
        (one, ["legacy"]),
    ):
        events = await reader.until_closed()
        assert [e["object"]["metadata"]["name"] for e in events] == expected


async def test_watch_booleans_parse_like_go(api: ApiServer) -> None:
    readers = [
        api.watch(f"{NS}/configmaps?watch={value}&timeoutSeconds=1")
        for value in ("1", "t", "T", "true", "TRUE", "True")
    ]
    for reader in readers:  # all open at once: one second in total
        await reader.until_closed()
        response = await reader.done
        assert response.code == 200
        assert response.headers["Content-Type"] == "application/json"
    listed = await api.get(f"{NS}/configmaps?watch=false")
    assert listed.body["kind"] == "ConfigMapList"
    bad = await api.get(f"{NS}/configmaps?watch=yes")
    assert bad.code == 400
    assert bad.body["message"] == (
        'invalid value for watch: strconv.ParseBool: parsing "yes": invalid syntax'
    )


async def test_closing_the_store_watchers_ends_streams_at_once(api: ApiServer) -> None:
    readers = [api.watch(f"{NS}/pods?watch=true") for _ in range(3)]
    await api.wait_watchers(3)
    began = time.monotonic()
    api.store.close_watchers()
    for reader in readers:
        assert await reader.until_closed(2) == []
    assert time.monotonic() - began < 1
    assert api.store.open_watchers() == ()


@pytest.mark.parametrize(("mode", "code"), [("gone", 410), ("error", 500), ("close", None)])
async def test_broken_watches(api: ApiServer, mode: str, code: int | None) -> None:
    pods = api.watch(f"{NS}/pods?watch=true&timeoutSeconds=30")
    configmaps = api.watch(f"{NS}/configmaps?watch=true&timeoutSeconds=2")
    await api.wait_watchers(2)
    api.faults.break_watches("pods", mode)
    events = await pods.until_closed(2)
    if code is None:
        assert events == []
    else:
        assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", code)]
    # other resources' watches are untouched
    await api.create(f"{NS}/configmaps", configmap_body("still"))
    assert (await configmaps.next())["object"]["metadata"]["name"] == "still"


async def test_kubespawner_reflector_request_sequence(api: ApiServer, tmp_path: Path) -> None:
    """The calls of KubeSpawner 7.1's reflector, through kubernetes_asyncio, raw JSON."""
    selector = "component=singleuser-server"
    await api.create(f"{NS}/pods", pod_body("jupyter-a", labels={"component": "singleuser-server"}))
    await api.create(f"{NS}/pods", pod_body("other", labels={"component": "hub"}))
    async with kube_client(api, tmp_path) as api_client:
        core = client.CoreV1Api(api_client)
        # initial list: the empty field selector is sent too
        resp = await core.list_namespaced_pod(
            "default", label_selector=selector, field_selector="", _preload_content=False
        )
        listing = await resp.json()
        assert resp.status == 200 and names(listing["items"]) == ["jupyter-a"]
        # relist from "any version"
        resp = await core.list_namespaced_pod(
            "default",
            label_selector=selector,
            field_selector="",
            resource_version="0",
            resource_version_match="NotOlderThan",
            _preload_content=False,
        )
        relist = await resp.json()
        rv = relist["metadata"]["resourceVersion"]
        assert names(relist["items"]) == ["jupyter-a"]
        # the watch from the list's version: only later changes of selected pods
        w = watch.Watch()
        seen: list[tuple[str, str]] = []

        async def follow() -> None:
            method = functools.partial(core.list_namespaced_pod, _preload_content=False)
            async with w.stream(
                method,
                namespace="default",
                label_selector=selector,
                field_selector="",
                resource_version=rv,
                timeout_seconds=10,
                _request_timeout=60,
            ) as stream:
                async for event in stream:
                    seen.append((event["type"], event["raw_object"]["metadata"]["name"]))
                    if len(seen) == 2:
                        break

        task = asyncio.ensure_future(follow())
        await api.wait_watchers(1)
        await api.create(
            f"{NS}/pods", pod_body("jupyter-b", labels={"component": "singleuser-server"})
        )
        await api.create(f"{NS}/pods", pod_body("other-2", labels={"component": "hub"}))
        assert (await api.delete(f"{NS}/pods/jupyter-a?gracePeriodSeconds=0")).code == 200
        await asyncio.wait_for(task, 10)
    assert seen == [("ADDED", "jupyter-b"), ("DELETED", "jupyter-a")]


async def test_failed_list_has_a_message_the_reflector_can_log(
    api: ApiServer, tmp_path: Path
) -> None:
    api.faults.fail_next("list", "pods", code=500, message="etcd is on fire")
    async with kube_client(api, tmp_path) as api_client:
        core = client.CoreV1Api(api_client)
        resp = await core.list_namespaced_pod("default", _preload_content=False)
        assert resp.status == 500
        assert (await resp.json())["message"] == "etcd is on fire"


async def test_typed_watch_through_kubernetes_asyncio(api: ApiServer, tmp_path: Path) -> None:
    async with kube_client(api, tmp_path) as api_client:
        core = client.CoreV1Api(api_client)
        w = watch.Watch()
        got: list[client.V1Pod] = []

        async def follow() -> None:
            async with w.stream(core.list_namespaced_pod, "default", timeout_seconds=5) as stream:
                async for event in stream:
                    got.append(event["object"])
                    break

        task = asyncio.ensure_future(follow())
        await api.wait_watchers(1)
        await api.create(f"{NS}/pods", pod_body("typed"))
        await asyncio.wait_for(task, 5)
    assert isinstance(got[0], client.V1Pod) and got[0].metadata.name == "typed"
    await wait_for(lambda: api.store.open_watchers() == (), what="watch closed")
