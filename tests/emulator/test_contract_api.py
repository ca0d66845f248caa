"""Contract tests of the emulator's REST API, written from the Kubernetes API documentation.

Each test states the documented behaviour it holds the emulator to (API concepts: "Efficient
detection of changes", "Retrieving large results sets in chunks", "Server-side field
validation", "Garbage collection", "Pod lifecycle"...).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from typing import Any

import pytest
from emulator_client import RawClient, wait_until
from kubernetes_asyncio import client, config

from aiinfn_hub.dev.emulator.cluster import ClusterSpec
from aiinfn_hub.dev.emulator.runtime import Emulator

NS = "/api/v1/namespaces/default"


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "spec": {"containers": [{"name": "main", "image": "python:3.11"}], **spec},
    }
    return body


def _cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def _nulls(obj: Any, path: str = "") -> list[str]:
    allowed = {"lastProbeTime", "eventTime"}  # the real API sends these as null
    if isinstance(obj, dict):
        out = []
        for key, value in obj.items():
            if value is None and key not in allowed:
                out.append(f"{path}.{key}")
            out.extend(_nulls(value, f"{path}.{key}"))
        return out
    if isinstance(obj, list):
        return [n for i, v in enumerate(obj) for n in _nulls(v, f"{path}[{i}]")]
    return []


# -- typed client round trips ---------------------------------------------------------------
async def test_kubernetes_asyncio_round_trip_deserialises_every_kind(emulator: Emulator) -> None:
    cfg = client.Configuration()
    await config.load_kube_config(
        config_file=str(emulator.write_kubeconfig()), client_configuration=cfg
    )
    async with client.ApiClient(configuration=cfg) as api:
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
        created = await core.create_namespaced_pod("default", _pod("round"))
        assert created.metadata.uid and created.status.phase == "Pending"
        assert created.spec.restart_policy == "Always"
        assert created.spec.scheduler_name == "default-scheduler"
        assert created.spec.containers[0].image_pull_policy == "IfNotPresent"

        def running() -> bool:
            return bool(emulator.objects("Pod", "default")[0]["status"].get("podIP"))

        wait_until(running, what="pod running")
        pod = await core.read_namespaced_pod("round", "default")
        assert pod.status.phase == "Running" and pod.status.container_statuses[0].ready
        nodes = await core.list_node()
        assert len(nodes.items) == 4 and nodes.items[0].status.allocatable["cpu"]
        events = await core.list_namespaced_event(
            "default", field_selector="involvedObject.kind=Pod"
        )
        reasons = {e.reason for e in events.items if e.involved_object.name == "round"}
        assert {"Scheduled", "Pulled", "Created", "Started"} <= reasons
        job = await batch.create_namespaced_job(
            "default",
            {
                "metadata": {"name": "j"},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {"name": "c", "image": "busybox:1.36", "command": ["true"]}
                            ],
                        }
                    }
                },
            },
        )
        assert job.spec.backoff_limit == 6 and job.spec.completions == 1
        assert job.spec.selector.match_labels == {
            "batch.kubernetes.io/controller-uid": job.metadata.uid
        }
        secret = await core.create_namespaced_secret(
            "default", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}}
        )
        assert secret.data == {"token": "YWJj"} and secret.type == "Opaque"
        service = await core.create_namespaced_service(
            "default", {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
        )
        assert service.spec.cluster_ip.startswith("10.") and service.spec.ports[0].target_port == 80


def test_objects_are_shaped_like_the_real_servers(raw: RawClient) -> None:
    status, pod, _ = raw.post(f"{NS}/pods", _pod("shape"))
    assert status == 201
    assert pod["kind"] == "Pod" and pod["apiVersion"] == "v1"
    assert _nulls(pod) == []
    assert "generation" in pod["metadata"] and pod["metadata"]["creationTimestamp"].endswith("Z")
    status, listing, _ = raw.get(f"{NS}/pods")
    assert status == 200 and listing["kind"] == "PodList" and listing["apiVersion"] == "v1"
    assert all("kind" not in item and "apiVersion" not in item for item in listing["items"])
    rv = int(listing["metadata"]["resourceVersion"])
    assert rv >= int(pod["metadata"]["resourceVersion"])
    raw.post(f"{NS}/configmaps", _cm("later"))
    _, again, _ = raw.get(f"{NS}/pods")
    assert int(again["metadata"]["resourceVersion"]) > rv  # one cluster-wide counter


def test_errors_are_status_objects(raw: RawClient) -> None:
    status, body, _ = raw.get(f"{NS}/pods/nope")
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "nope", "kind": "pods"},
    }
    assert raw.post(f"{NS}/configmaps", _cm("dup"))[0] == 201
    status, body, _ = raw.post(f"{NS}/configmaps", _cm("dup"))
    assert (status, body["reason"]) == (409, "AlreadyExists")
    status, body, _ = raw.post("/api/v1/namespaces/missing/configmaps", _cm("x"))
    assert (status, body["message"]) == (404, 'namespaces "missing" not found')
    status, body, _ = raw.get("/apis/batch/v1/namespaces/default/jobs/none")
    assert body["message"] == 'jobs.batch "none" not found'
    status, body, _ = raw.get("/api/v1/nothere")
    assert status == 404 and body["kind"] == "Status"


def test_update_with_a_stale_resource_version_conflicts(raw: RawClient) -> None:
    _, cm, _ = raw.post(f"{NS}/configmaps", _cm("c"))
    cm["data"] = {"k": "2"}
    status, updated, _ = raw.request("PUT", f"{NS}/configmaps/c", cm)
    assert status == 200 and updated["data"] == {"k": "2"}
    cm["data"] = {"k": "3"}  # still carries the old resourceVersion
    status, body, _ = raw.request("PUT", f"{NS}/configmaps/c", cm)
    assert (status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]


# -- list ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "b"]),
        ("tier==web", ["a", "b"]),
        ("tier!=web", ["c", "d"]),
        ("tier in (web,db)", ["a", "b", "c"]),
        ("tier notin (web)", ["c", "d"]),
        ("tier", ["a", "b", "c"]),
        ("!tier", ["d"]),
        ("tier=web,env=prod", ["a"]),
    ],
)
def test_label_selectors(raw: RawClient, selector: str, expected: list[str]) -> None:
    for name, labels in (
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "web"}),
        ("c", {"tier": "db"}),
        ("d", {}),
    ):
        raw.post(f"{NS}/configmaps", _cm(name, **labels))
    query = urllib.parse.quote(selector)
    status, body, _ = raw.get(f"{NS}/configmaps?labelSelector={query}")
    assert status == 200
    assert [i["metadata"]["name"] for i in body["items"]] == expected


def test_bad_selectors_are_400(raw: RawClient) -> None:
    status, body, _ = raw.get(f"{NS}/pods?labelSelector=" + urllib.parse.quote("a in ()"))
    assert status == 400 and body["reason"] == "BadRequest"
    status, body, _ = raw.get(f"{NS}/pods?fieldSelector=spec.image%3Dx")
    assert (status, body["message"]) == (400, "field label not supported: spec.image")
    assert raw.get(f"{NS}/pods?fieldSelector=")[0] == 200  # empty selectors are fine


def test_field_selectors(raw: RawClient, emulator: Emulator) -> None:
    raw.post(f"{NS}/pods", _pod("p1"))
    raw.post(f"{NS}/pods", _pod("p2", nodeSelector={"nowhere": "x"}))
    wait_until(lambda: raw.get(f"{NS}/pods/p1")[1]["status"].get("phase") == "Running")
    _, running, _ = raw.get("/api/v1/pods?fieldSelector=status.phase%3DRunning")
    assert [p["metadata"]["name"] for p in running["items"]] == ["p1"]
    _, pending, _ = raw.get(f"{NS}/pods?fieldSelector=status.phase!%3DRunning,metadata.name%3Dp2")
    assert [p["metadata"]["name"] for p in pending["items"]] == ["p2"]
    node = raw.get(f"{NS}/pods/p1")[1]["spec"]["nodeName"]
    _, on_node, _ = raw.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")
    assert [p["metadata"]["name"] for p in on_node["items"]] == ["p1"]
    _, events, _ = raw.get(f"{NS}/events?fieldSelector=involvedObject.name%3Dp2")
    assert {e["reason"] for e in events["items"]} == {"FailedScheduling"}


def test_limit_and_continue_page_through_a_consistent_list(raw: RawClient) -> None:
    for i in range(5):
        raw.post(f"{NS}/configmaps", _cm(f"cm{i}"))
    _, page1, _ = raw.get(f"{NS}/configmaps?limit=2")
    assert [i["metadata"]["name"] for i in page1["items"]] == ["cm0", "cm1"]
    assert page1["metadata"]["remainingItemCount"] == 3
    token = urllib.parse.quote(page1["metadata"]["continue"])
    _, page2, _ = raw.get(f"{NS}/configmaps?limit=2&continue={token}")
    assert [i["metadata"]["name"] for i in page2["items"]] == ["cm2", "cm3"]
    token = urllib.parse.quote(page2["metadata"]["continue"])
    _, page3, _ = raw.get(f"{NS}/configmaps?limit=2&continue={token}")
    assert [i["metadata"]["name"] for i in page3["items"]] == ["cm4"]
    assert "continue" not in page3["metadata"]
    assert page3["metadata"]["resourceVersion"] == page1["metadata"]["resourceVersion"]


# -- watch -----------------------------------------------------------------------------------
def test_watch_from_zero_sends_the_current_state_then_changes(raw: RawClient) -> None:
    raw.post(f"{NS}/configmaps", _cm("before"))

    def later() -> None:
        raw.post(f"{NS}/configmaps", _cm("after"))

    threading.Timer(0.3, later).start()
    events = raw.watch_lines(f"{NS}/configmaps?watch=True&resourceVersion=0&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "before"),
        ("ADDED", "after"),
    ]
    assert events[0]["object"]["kind"] == "ConfigMap"  # watch objects carry their kind


def test_watch_from_a_resource_version_sends_only_newer_events(raw: RawClient) -> None:
    _, first, _ = raw.post(f"{NS}/configmaps", _cm("one"))
    raw.post(f"{NS}/configmaps", _cm("two"))
    raw.request("DELETE", f"{NS}/configmaps/one")
    rv = first["metadata"]["resourceVersion"]
    events = raw.watch_lines(f"{NS}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "two"),
        ("DELETED", "one"),
    ]


def test_watch_from_a_compacted_version_gets_410_as_an_error_event(tmp_path: Any) -> None:
    with Emulator(ClusterSpec(), state_dir=tmp_path, history_size=4) as emu:
        raw = RawClient(emu.access)
        _, first, _ = raw.post(f"{NS}/configmaps", _cm("a"))
        for i in range(6):
            raw.post(f"{NS}/configmaps", _cm(f"b{i}"))
        rv = first["metadata"]["resourceVersion"]
        events = raw.watch_lines(f"{NS}/configmaps?watch=true&resourceVersion={rv}")
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410
        assert events[0]["object"]["reason"] == "Expired"


def test_watch_selector_transitions_and_bookmarks(raw: RawClient) -> None:
    _, cm, _ = raw.post(f"{NS}/configmaps", _cm("moving", tier="web"))
    rv = cm["metadata"]["resourceVersion"]
    moved = dict(cm, metadata={**cm["metadata"], "labels": {"tier": "db"}})
    raw.request("PUT", f"{NS}/configmaps/moving", moved)
    back = raw.get(f"{NS}/configmaps/moving")[1]
    back["metadata"]["labels"] = {"tier": "web"}
    raw.request("PUT", f"{NS}/configmaps/moving", back)
    events = raw.watch_lines(
        f"{NS}/configmaps?watch=1&labelSelector=tier%3Dweb&resourceVersion={rv}&timeoutSeconds=1"
    )
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]  # out of, then into, the selection
    plain = raw.watch_lines(f"{NS}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert all(e["type"] != "BOOKMARK" for e in plain)  # never unasked


# -- patches ---------------------------------------------------------------------------------
def test_merge_json_and_strategic_patches(raw: RawClient) -> None:
    raw.post(f"{NS}/configmaps", {"metadata": {"name": "p"}, "data": {"a": "1", "b": "2"}})
    status, body, _ = raw.request(
        "PATCH",
        f"{NS}/configmaps/p",
        {"data": {"a": None, "c": "3"}},
        content_type="application/merge-patch+json",
    )
    assert status == 200 and body["data"] == {"b": "2", "c": "3"}
    ops = [
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "20"},
    ]
    status, body, _ = raw.request(
        "PATCH", f"{NS}/configmaps/p", ops, content_type="application/json-patch+json"
    )
    assert status == 200 and body["data"]["b"] == "20"
    bad = [{"op": "test", "path": "/data/b", "value": "nope"}]
    status, body, _ = raw.request(
        "PATCH", f"{NS}/configmaps/p", bad, content_type="application/json-patch+json"
    )
    assert status == 422
    raw.post(
        f"{NS}/pods",
        _pod(
            "sp",
            containers=[
                {"name": "a", "image": "x:1", "env": [{"name": "A", "value": "1"}]},
                {"name": "b", "image": "y:1"},
            ],
        ),
    )
    patch = {"spec": {"containers": [{"name": "a", "image": "x:2"}]}}
    status, body, _ = raw.request(
        "PATCH", f"{NS}/pods/sp", patch, content_type="application/strategic-merge-patch+json"
    )
    assert status == 200, body
    containers = {c["name"]: c for c in body["spec"]["containers"]}
    assert containers["a"]["image"] == "x:2" and containers["a"]["env"] == [
        {"name": "A", "value": "1"}
    ]  # merged by name, not replaced
    assert containers["b"]["image"] == "y:1"
    status, _, _ = raw.request("PATCH", f"{NS}/configmaps/p", {}, content_type="text/plain")
    assert status == 415


def test_pod_spec_is_immutable_except_images(raw: RawClient) -> None:
    raw.post(f"{NS}/pods", _pod("imm"))
    patch = {"spec": {"restartPolicy": "Never"}}
    status, body, _ = raw.request(
        "PATCH", f"{NS}/pods/imm", patch, content_type="application/strategic-merge-patch+json"
    )
    assert status == 422 and "pod updates may not change fields" in body["message"]


# -- validation ------------------------------------------------------------------------------
def test_invalid_objects_get_422_worded_like_the_api_server(raw: RawClient) -> None:
    bad = _pod("noimage")
    del bad["spec"]["containers"][0]["image"]
    status, body, _ = raw.post(f"{NS}/pods", bad)
    assert status == 422 and body["reason"] == "Invalid"
    assert body["message"] == 'Pod "noimage" is invalid: spec.containers[0].image: Required value'
    assert body["details"]["causes"][0]["field"] == "spec.containers[0].image"
    status, body, _ = raw.post(f"{NS}/pods", _pod("Bad_Name"))
    assert status == 422 and "RFC 1123" in body["message"]
    job = {
        "metadata": {"name": "j"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "x"}]}
            }
        },
    }
    status, body, _ = raw.post("/apis/batch/v1/namespaces/default/jobs", job)
    assert status == 422 and "spec.template.spec.restartPolicy" in body["message"]
    assert raw.get(f"{NS}/pods/noimage")[0] == 404  # nothing was created


def test_unknown_fields_strict_400_default_warns_and_drops(raw: RawClient) -> None:
    pod = _pod("unknown")
    pod["spec"]["containers"][0]["gpus"] = 2
    status, body, _ = raw.post(f"{NS}/pods?fieldValidation=Strict", pod)
    assert status == 400
    assert body["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: '
        'strict decoding error: unknown field "spec.containers[0].gpus"'
    )
    status, body, headers = raw.post(f"{NS}/pods", pod)
    assert status == 201 and "gpus" not in body["spec"]["containers"][0]
    assert 'unknown field \\"spec.containers[0].gpus\\"' in headers.get("Warning", "") or (
        "spec.containers[0].gpus" in headers.get("Warning", "")
    )


def test_unknown_priority_class_is_forbidden(raw: RawClient) -> None:
    status, body, _ = raw.post(f"{NS}/pods", _pod("prio", priorityClassName="gold"))
    assert status == 403
    assert body["message"] == 'pods "prio" is forbidden: no PriorityClass with name gold was found'
    status, body, _ = raw.post(f"{NS}/pods", _pod("prio", priorityClassName="notebook"))
    assert status == 201 and body["spec"]["priority"] == 1000


# -- deletion --------------------------------------------------------------------------------
def test_pod_deletion_is_graceful_then_final(raw: RawClient, emulator: Emulator) -> None:
    raw.post(f"{NS}/pods", _pod("g"))
    wait_until(lambda: raw.get(f"{NS}/pods/g")[1]["status"].get("phase") == "Running")
    emulator.call(lambda: emulator.controllers.kubelet.startup_delay)  # loop is alive
    status, body, _ = raw.request("DELETE", f"{NS}/pods/g", {"gracePeriodSeconds": 30})
    assert status == 200 and body["kind"] == "Pod"  # pods answer with the object
    assert "deletionTimestamp" in body["metadata"]
    assert body["metadata"]["deletionGracePeriodSeconds"] == 30
    wait_until(lambda: raw.get(f"{NS}/pods/g")[0] == 404, what="the kubelet to remove the pod")
    raw.post(f"{NS}/pods", _pod("now"))
    status, _, _ = raw.request("DELETE", f"{NS}/pods/now?gracePeriodSeconds=0")
    assert status == 200 and raw.get(f"{NS}/pods/now")[0] == 404


def _job_with_pods(raw: RawClient, name: str) -> dict[str, Any]:
    job = {
        "metadata": {"name": name},
        "spec": {
            "parallelism": 2,
            "completions": 2,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]}
            },
        },
    }
    status, created, _ = raw.post("/apis/batch/v1/namespaces/default/jobs", job)
    assert status == 201, created
    wait_until(lambda: len(_job_pods(raw, name)) == 2, what="job pods")
    return created


def _job_pods(raw: RawClient, name: str) -> list[dict[str, Any]]:
    return raw.get(f"{NS}/pods?labelSelector=job-name%3D{name}")[1]["items"]


def test_jobs_orphan_their_pods_by_default(raw: RawClient) -> None:
    _job_with_pods(raw, "orphaner")
    status, body, _ = raw.request("DELETE", "/apis/batch/v1/namespaces/default/jobs/orphaner")
    assert status == 200 and body["status"] == "Success"
    pods = _job_pods(raw, "orphaner")
    assert len(pods) == 2 and all("ownerReferences" not in p["metadata"] for p in pods)


def test_background_and_foreground_propagation_delete_dependents(raw: RawClient) -> None:
    _job_with_pods(raw, "bg")
    raw.request("DELETE", "/apis/batch/v1/namespaces/default/jobs/bg?propagationPolicy=Background")
    wait_until(lambda: not _job_pods(raw, "bg"), what="dependents collected")
    _job_with_pods(raw, "fg")
    status, body, _ = raw.request(
        "DELETE", "/apis/batch/v1/namespaces/default/jobs/fg", {"propagationPolicy": "Foreground"}
    )
    assert status == 200 and "foregroundDeletion" in body["metadata"]["finalizers"]
    wait_until(
        lambda: raw.get("/apis/batch/v1/namespaces/default/jobs/fg")[0] == 404,
        what="the owner to go after its dependents",
    )
    assert not _job_pods(raw, "fg")


def test_owned_objects_are_collected_with_their_owner(raw: RawClient) -> None:
    _, pod, _ = raw.post(f"{NS}/pods", _pod("owner"))
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": pod["metadata"]["uid"]}
    raw.post(
        f"{NS}/services",
        {
            "metadata": {"name": "owned", "ownerReferences": [ref]},
            "spec": {"ports": [{"port": 8888}]},
        },
    )
    raw.request("DELETE", f"{NS}/pods/owner?gracePeriodSeconds=0")
    wait_until(lambda: raw.get(f"{NS}/services/owned")[0] == 404, what="garbage collection")


def test_finalizers_hold_an_object_until_removed(raw: RawClient) -> None:
    cm = _cm("held")
    cm["metadata"]["finalizers"] = ["example.com/hold"]
    raw.post(f"{NS}/configmaps", cm)
    status, body, _ = raw.request("DELETE", f"{NS}/configmaps/held")
    assert status == 200 and "deletionTimestamp" in body["metadata"]
    assert raw.get(f"{NS}/configmaps/held")[0] == 200
    patch = [{"op": "remove", "path": "/metadata/finalizers"}]
    raw.request("PATCH", f"{NS}/configmaps/held", patch, content_type="application/json-patch+json")
    assert raw.get(f"{NS}/configmaps/held")[0] == 404


def test_deleting_a_namespace_deletes_its_objects(raw: RawClient) -> None:
    raw.post("/api/v1/namespaces", {"metadata": {"name": "team"}})
    assert raw.get("/api/v1/namespaces/team/serviceaccounts/default")[0] == 200
    raw.post("/api/v1/namespaces/team/configmaps", _cm("x"))
    status, body, _ = raw.request("DELETE", "/api/v1/namespaces/team")
    assert status == 200 and body["status"]["phase"] == "Terminating"
    wait_until(lambda: raw.get("/api/v1/namespaces/team")[0] == 404, what="namespace removal")
    assert raw.get("/api/v1/namespaces/team/configmaps/x")[0] == 404


# -- discovery, custom resources, logs, faults ------------------------------------------------
def test_discovery_lists_every_served_group(raw: RawClient) -> None:
    _, version, _ = raw.get("/version")
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    _, core, _ = raw.get("/api")
    assert core["versions"] == ["v1"]
    _, groups, _ = raw.get("/apis")
    names = {g["name"]: [v["version"] for v in g["versions"]] for g in groups["groups"]}
    assert names["batch"] == ["v1"] and names["scheduling.k8s.io"] == ["v1"]
    assert names["kueue.x-k8s.io"] == ["v1beta1", "v1beta2"]
    _, resources, _ = raw.get("/api/v1")
    pods = next(r for r in resources["resources"] if r["name"] == "pods")
    assert pods["namespaced"] and "watch" in pods["verbs"] and pods["shortNames"] == ["po"]
    assert any(r["name"] == "pods/log" for r in resources["resources"])


def test_kueue_resources_are_served_at_both_versions(raw: RawClient) -> None:
    queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "LocalQueue",
        "metadata": {"name": "user-queue"},
        "spec": {"clusterQueue": "cluster-queue"},
    }
    path = "/apis/kueue.x-k8s.io/{}/namespaces/default/localqueues"
    status, body, _ = raw.post(path.format("v1beta1"), queue)
    assert status == 201
    status, body, _ = raw.get(path.format("v1beta2") + "/user-queue")
    assert status == 200 and body["apiVersion"] == "kueue.x-k8s.io/v1beta2"
    assert body["spec"] == {"clusterQueue": "cluster-queue"}
    status, _, _ = raw.request(
        "PATCH",
        path.format("v1beta2") + "/user-queue",
        {"spec": {}},
        content_type="application/strategic-merge-patch+json",
    )
    assert status == 415  # custom resources take no strategic merge, as on a real server


def test_pod_log_subresource(raw: RawClient, emulator: Emulator) -> None:
    raw.post(f"{NS}/pods", _pod("logger"))
    wait_until(lambda: raw.get(f"{NS}/pods/logger")[1]["status"].get("phase") == "Running")
    status, text, headers = raw.get(f"{NS}/pods/logger/log")
    assert status == 200 and "main" in text and headers["Content-Type"].startswith("text/plain")
    status, body, _ = raw.get(f"{NS}/pods/logger/log?container=other")
    assert status == 400 and body["message"] == "container other is not valid for pod logger"


def test_fault_injection(raw: RawClient, emulator: Emulator) -> None:
    emulator.call(lambda: emulator.faults.fail_next("list", "pods", count=2, code=500))
    assert raw.get(f"{NS}/pods")[0] == 500
    assert raw.get(f"{NS}/pods")[0] == 500
    assert raw.get(f"{NS}/pods")[0] == 200
    assert raw.get(f"{NS}/configmaps")[0] == 200  # other resources are untouched
    status, _, _ = raw.post(
        "/_emulator/faults",
        {"action": "fail_next", "verb": "create", "resource": "configmaps", "code": 409},
    )
    assert status == 200
    status, body, _ = raw.post(f"{NS}/configmaps", _cm("f"))
    assert (status, body["reason"]) == (409, "Conflict")

    result: list[list[dict[str, Any]]] = []
    reader = threading.Thread(
        target=lambda: result.append(
            raw.watch_lines(f"{NS}/pods?watch=1&timeoutSeconds=20", timeout=30)
        )
    )
    reader.start()

    def watching() -> bool:
        return emulator.call(lambda: len(emulator.store._watchers)) > 0

    wait_until(watching, what="the watch to open")
    emulator.call(lambda: emulator.faults.break_watches("pods", "gone"))
    reader.join(10)
    assert result and result[0][-1]["type"] == "ERROR" and result[0][-1]["object"]["code"] == 410


def test_table_output_for_kubectl(raw: RawClient) -> None:
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    _, body, _ = raw.get("/api/v1/nodes", headers=accept)
    assert body["kind"] == "Table"
    # kubectl shows the priority-0 columns; -o wide adds the others
    assert [c["name"] for c in body["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Status",
        "Roles",
        "Age",
        "Version",
    ]
    assert body["rows"][0]["cells"][1] == "Ready"
    assert body["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_healthz(emulator: Emulator) -> None:
    def get(path: str) -> bytes:
        request = urllib.request.Request(emulator.url + path, headers=emulator.auth_headers)
        with urllib.request.urlopen(request, context=emulator.access.ssl_context()) as resp:
            return bytes(resp.read())

    assert get("/healthz") == b"ok"
    assert json.loads(get("/api"))["kind"] == "APIVersions"
