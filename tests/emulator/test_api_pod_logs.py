"""The pods ``log`` subresource (API reference: "read log of the specified Pod")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_fixtures import NS, ApiServer, kube_client, pod_body, running_api, wait_for
from kubernetes_asyncio import client
from tornado.httpclient import HTTPRequest

MERGE = "application/merge-patch+json"


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        await server.create(f"{NS}/pods", pod_body("one"))
        two = pod_body("two")
        two["spec"]["containers"].append({"name": "side", "image": "busybox:1.36"})
        two["spec"]["initContainers"] = [{"name": "setup", "image": "busybox:1.36"}]
        await server.create(f"{NS}/pods", two)
        yield server


async def test_log_is_plain_text(api: ApiServer) -> None:
    api.store.logs[("default", "one", "main")] = "line 1\nline 2\nline 3\n"
    resp = await api.get(f"{NS}/pods/one/log")
    assert resp.code == 200 and resp.body == "line 1\nline 2\nline 3\n"
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert (await api.get(f"{NS}/pods/one/log?tailLines=2")).body == "line 2\nline 3\n"
    assert (await api.get(f"{NS}/pods/one/log?tailLines=0")).body == ""
    assert (await api.get(f"{NS}/pods/one/log?limitBytes=4")).body == "line"
    assert (await api.get(f"{NS}/pods/one/log?tailLines=-1")).code == 422


async def test_logs_from_a_file(api: ApiServer, tmp_path: Path) -> None:
    log_file = tmp_path / "main.log"
    log_file.write_text("from a process\n")
    api.store.logs[("default", "one", "main")] = log_file
    assert (await api.get(f"{NS}/pods/one/log")).body == "from a process\n"


async def test_container_must_be_named_when_there_are_several(api: ApiServer) -> None:
    resp = await api.get(f"{NS}/pods/two/log")
    assert resp.code == 400
    assert resp.body["message"] == (
        "a container name must be specified for pod two, choose one of: [main side] or one of "
        "the init containers: [setup]"
    )
    unknown = await api.get(f"{NS}/pods/two/log?container=nope")
    assert unknown.body["message"] == "container nope is not valid for pod two"
    api.store.logs[("default", "two", "side")] = "side car\n"
    assert (await api.get(f"{NS}/pods/two/log?container=side")).body == "side car\n"


async def test_no_log_before_the_container_starts(api: ApiServer) -> None:
    resp = await api.get(f"{NS}/pods/one/log")
    assert resp.code == 400
    assert resp.body["message"] == (
        'container "main" in pod "one" is waiting to start: ContainerCreating'
    )
    missing = await api.get(f"{NS}/pods/none/log")
    assert missing.code == 404


async def test_follow_streams_until_the_pod_finishes(api: ApiServer) -> None:
    key = ("default", "one", "main")
    api.store.logs[key] = "start\n"
    chunks: list[bytes] = []
    request = HTTPRequest(
        f"{api.url}{NS}/pods/one/log?follow=true",
        headers=api.auth_headers,
        ssl_options=api.ssl_context,
        streaming_callback=chunks.append,
        request_timeout=10,
    )
    fetch = asyncio.ensure_future(api.http.fetch(request))
    await wait_for(lambda: b"".join(chunks) == b"start\n", what="the first lines")
    api.store.logs[key] = "start\nmore\n"
    await wait_for(lambda: b"".join(chunks) == b"start\nmore\n", what="the appended line")
    assert not fetch.done()  # still following
    pod = (await api.get(f"{NS}/pods/one")).body
    pod["status"] = {"phase": "Succeeded"}
    api.store.logs[key] = "start\nmore\nlast\n"
    assert (await api.put(f"{NS}/pods/one/status", pod)).code == 200
    response = await asyncio.wait_for(fetch, 5)
    assert response.code == 200 and b"".join(chunks) == b"start\nmore\nlast\n"


async def test_log_through_kubernetes_asyncio(api: ApiServer, tmp_path: Path) -> None:
    api.store.logs[("default", "one", "main")] = "hello\n"
    async with kube_client(api, tmp_path) as api_client:
        text = await client.CoreV1Api(api_client).read_namespaced_pod_log("one", "default")
    assert text == "hello\n"


async def test_a_sidecar_has_its_log_like_any_container(api: ApiServer) -> None:
    body = pod_body("jobpod")
    body["spec"]["initContainers"] = [
        {"name": "jfs", "image": "juicedata/mount:ce-v1.2", "restartPolicy": "Always"}
    ]
    await api.create(f"{NS}/pods", body)
    api.store.logs[("default", "jobpod", "jfs")] = "mounted /jfs\n"
    resp = await api.get(f"{NS}/pods/jobpod/log?container=jfs")
    assert resp.code == 200 and resp.body == "mounted /jfs\n"
