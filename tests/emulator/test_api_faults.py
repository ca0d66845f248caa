"""Fault injection: the unhappy paths clients must survive (STYLE.md, "Fakes with fault hooks").

Broken watches are covered with the other watch tests (test_api_watch.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from api_fixtures import NS, ApiServer, configmap_body, running_api

from aiinfn_hub.dev.emulator.api.faults import Faults


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def test_fail_next_fails_that_many_matching_requests(api: ApiServer) -> None:
    api.faults.fail_next("list", "pods", count=2, code=503)
    first = await api.get(f"{NS}/pods")
    assert first.code == 503
    assert first.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "injected fault: list pods",
        "reason": "ServiceUnavailable",
        "code": 503,
    }
    assert (await api.get(f"{NS}/configmaps")).code == 200  # another resource
    assert (await api.get(f"{NS}/pods/x")).code == 404  # another verb
    assert (await api.get(f"{NS}/pods")).code == 503
    assert (await api.get(f"{NS}/pods")).code == 200


async def test_wildcards_namespaces_and_messages(api: ApiServer) -> None:
    api.faults.fail_next("*", "*", code=409, message="try again", namespace="kube-system")
    assert (await api.post(f"{NS}/configmaps", configmap_body("ok"))).code == 201
    failed = await api.post("/api/v1/namespaces/kube-system/configmaps", configmap_body("x"))
    assert (failed.code, failed.body["reason"], failed.body["message"]) == (
        409,
        "Conflict",
        "try again",
    )
    api.faults.fail_next("create", "configmaps", count=5, code=500)
    api.faults.clear()
    assert (await api.post(f"{NS}/configmaps", configmap_body("after-clear"))).code == 201


async def test_latency_delays_matching_requests(api: ApiServer) -> None:
    api.faults.add_latency("get", "configmaps", 0.3)
    await api.create(f"{NS}/configmaps", configmap_body("slow"))
    began = time.monotonic()
    assert (await api.get(f"{NS}/configmaps/slow")).code == 200
    assert time.monotonic() - began >= 0.3
    began = time.monotonic()
    assert (await api.get(f"{NS}/configmaps")).code == 200  # a list is another verb
    assert time.monotonic() - began < 0.3
    api.faults.add_latency("get", "configmaps", 0)
    began = time.monotonic()
    await api.get(f"{NS}/configmaps/slow")
    assert time.monotonic() - began < 0.3


async def test_faults_over_http(api: ApiServer) -> None:
    ok = await api.post(
        "/_emulator/faults",
        {"action": "fail_next", "verb": "create", "resource": "configmaps", "code": 500},
    )
    assert (ok.code, ok.body) == (200, {"ok": True})
    assert (await api.post(f"{NS}/configmaps", configmap_body("x"))).code == 500
    assert (
        await api.post(
            "/_emulator/faults",
            {"action": "add_latency", "verb": "*", "resource": "*", "seconds": 0.01},
        )
    ).code == 200
    assert (await api.post("/_emulator/faults", {"action": "clear"})).code == 200
    reader = api.watch(f"{NS}/pods?watch=true&timeoutSeconds=10")
    await api.wait_watchers(1)
    assert (
        await api.post("/_emulator/faults", {"action": "break_watches", "resource": "pods"})
    ).code == 200
    events = await reader.until_closed(2)
    assert events[0]["object"]["code"] == 410
    for bad in (
        {"action": "explode"},
        {"action": "fail_next", "verb": "create"},
        {"action": "fail_next", "verb": "smash", "resource": "pods"},
        {"action": "break_watches", "resource": "pods", "mode": "loudly"},
        [1, 2],
    ):
        resp = await api.post("/_emulator/faults", bad)
        assert resp.code == 400 and resp.body["kind"] == "Status", bad
    assert (await api.post("/_emulator/faults", "{oops")).code == 400


def test_faults_need_a_store_to_break_watches() -> None:
    with pytest.raises(RuntimeError):
        Faults().break_watches("pods")
    with pytest.raises(ValueError):
        Faults().fail_next("list", "pods", count=0)
