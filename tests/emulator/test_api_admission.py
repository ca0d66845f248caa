"""Defaulting and admission on create, as the API reference documents each field's default and
the admission plugins (ServiceAccount, Priority, DefaultTolerationSeconds, NamespaceLifecycle)
describe what they add."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
from api_fixtures import NS, ApiServer, job_body, pod_body, running_api

from aiinfn_hub.dev.emulator.api.admission import qos_class

JSON = dict[str, Any]
JOBS = "/apis/batch/v1/namespaces/default/jobs"
PCS = "/apis/scheduling.k8s.io/v1/priorityclasses"


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def test_pod_defaults(api: ApiServer) -> None:
    body = pod_body("d")
    body["spec"]["containers"][0]["ports"] = [{"containerPort": 8888}]
    body["spec"]["containers"][0]["env"] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    ]
    body["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "c"}}]
    pod = await api.create(f"{NS}/pods", body)
    spec = pod["spec"]
    assert {
        k: spec[k]
        for k in (
            "restartPolicy",
            "dnsPolicy",
            "schedulerName",
            "terminationGracePeriodSeconds",
            "securityContext",
            "enableServiceLinks",
            "serviceAccountName",
            "serviceAccount",
            "priority",
            "preemptionPolicy",
        )
    } == {
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30,
        "securityContext": {},
        "enableServiceLinks": True,
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority",
    }
    assert spec["tolerations"] == [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]
    container = spec["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"] == {}
    assert container["ports"] == [{"containerPort": 8888, "protocol": "TCP"}]
    assert container["env"][0]["valueFrom"]["fieldRef"] == {
        "apiVersion": "v1",
        "fieldPath": "status.podIP",
    }
    assert spec["volumes"][0]["configMap"]["defaultMode"] == 420
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("python", "Always"),
        ("python:latest", "Always"),
        ("registry:5000/team/python", "Always"),
        ("registry:5000/team/python:3.11", "IfNotPresent"),
        ("python@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
async def test_image_pull_policy_defaults_from_the_tag(
    api: ApiServer, image: str, policy: str
) -> None:
    body = pod_body("img")
    body["spec"]["containers"][0]["image"] = image
    pod = await api.create(f"{NS}/pods", body)
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


async def test_given_tolerations_of_the_defaults_are_kept(api: ApiServer) -> None:
    own = {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 10,
    }
    pod = await api.create(f"{NS}/pods", pod_body("t", tolerations=[own]))
    assert pod["spec"]["tolerations"][0] == own
    assert [t["key"] for t in pod["spec"]["tolerations"]] == [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]


def _resources(
    requests: dict[str, str] | None = None, limits: dict[str, str] | None = None
) -> JSON:
    out: JSON = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ([{}], "BestEffort"),
        ([_resources(limits={"nvidia.com/gpu": "1"})], "BestEffort"),  # GPUs do not count
        ([_resources(requests={"cpu": "1"})], "Burstable"),
        ([_resources(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),  # requests = limits
        (
            [_resources({"cpu": "1000m", "memory": "1Gi"}, {"cpu": "1", "memory": "1024Mi"})],
            "Guaranteed",
        ),
        (
            [_resources({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
            "Burstable",
        ),
        ([_resources(limits={"cpu": "1", "memory": "1Gi"}), {}], "Burstable"),
        ([_resources(limits={"cpu": "1"})], "Burstable"),
    ],
)
async def test_qos_class_as_kubernetes_computes_it(
    api: ApiServer, resources: list[JSON], expected: str
) -> None:
    containers = [
        {"name": f"c{i}", "image": "busybox:1.36", "resources": r} for i, r in enumerate(resources)
    ]
    pod = await api.create(f"{NS}/pods", pod_body("q", containers=containers))
    assert pod["status"]["qosClass"] == expected
    assert qos_class(pod["spec"]) == expected


async def test_requests_default_to_limits(api: ApiServer) -> None:
    body = pod_body("r")
    body["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "2", "cpu": "2"}}
    pod = await api.create(f"{NS}/pods", body)
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {
        "nvidia.com/gpu": "2",
        "cpu": "2",
    }


async def test_priority_comes_from_the_priority_class(api: ApiServer) -> None:
    await api.create(
        PCS, {"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"}
    )
    pod = await api.create(f"{NS}/pods", pod_body("hp", priorityClassName="high"))
    assert (pod["spec"]["priority"], pod["spec"]["preemptionPolicy"]) == (1000, "Never")
    unknown = await api.post(f"{NS}/pods", pod_body("x", priorityClassName="nope"))
    assert (unknown.code, unknown.body["reason"]) == (403, "Forbidden")
    assert (
        unknown.body["message"]
        == 'pods "x" is forbidden: no PriorityClass with name nope was found'
    )
    forged = await api.post(f"{NS}/pods", pod_body("y", priority=5))
    assert forged.code == 403 and "must not be provided in pod spec" in forged.body["message"]


async def test_the_global_default_priority_class_applies_to_pods_without_one(
    api: ApiServer,
) -> None:
    created = await api.create(
        PCS, {"metadata": {"name": "normal"}, "value": 100, "globalDefault": True}
    )
    assert created["preemptionPolicy"] == "PreemptLowerPriority"
    pod = await api.create(f"{NS}/pods", pod_body("gd"))
    assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == ("normal", 100)


async def test_job_defaults_selector_and_template_labels(api: ApiServer) -> None:
    job = await api.create(JOBS, job_body("train"))
    uid, spec = job["metadata"]["uid"], job["spec"]
    assert {
        k: spec[k]
        for k in (
            "completions",
            "parallelism",
            "backoffLimit",
            "completionMode",
            "suspend",
            "podReplacementPolicy",
        )
    } == {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "suspend": False,
        "podReplacementPolicy": "TerminatingOrFailed",
    }
    assert "manualSelector" not in spec
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": uid,
        "controller-uid": uid,
        "batch.kubernetes.io/job-name": "train",
        "job-name": "train",
    }
    template_spec = spec["template"]["spec"]
    assert (
        template_spec["dnsPolicy"] == "ClusterFirst" and template_spec["restartPolicy"] == "Never"
    )
    assert job["status"] == {}
    parallel = await api.create(JOBS, job_body("par", parallelism=3))
    assert parallel["spec"]["parallelism"] == 3 and "completions" not in parallel["spec"]


async def test_service_defaults_and_cluster_ip(api: ApiServer) -> None:
    svc = await api.create(
        f"{NS}/services",
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    spec = svc["spec"]
    assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert (spec["type"], spec["sessionAffinity"]) == ("ClusterIP", "None")
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    other = await api.create(
        f"{NS}/services", {"metadata": {"name": "api"}, "spec": {"ports": [{"port": 81}]}}
    )
    assert other["spec"]["clusterIP"] != spec["clusterIP"]
    headless = await api.create(
        f"{NS}/services", {"metadata": {"name": "hl"}, "spec": {"clusterIP": "None"}}
    )
    assert headless["spec"]["clusterIPs"] == ["None"]


async def test_secrets_fold_string_data(api: ApiServer) -> None:
    secret = await api.create(
        f"{NS}/secrets",
        {"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "y"}},
    )
    assert secret["data"] == {"a": "eA==", "b": "eQ=="} and secret["type"] == "Opaque"
    assert "stringData" not in secret


async def test_namespaces_get_a_default_service_account_label_and_phase(api: ApiServer) -> None:
    ns = await api.create("/api/v1/namespaces", {"metadata": {"name": "team-b"}})
    assert ns["status"] == {"phase": "Active"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-b"}
    sa = await api.get("/api/v1/namespaces/team-b/serviceaccounts/default")
    assert sa.code == 200


async def test_pvcs_start_pending(api: ApiServer) -> None:
    pvc = await api.create(
        f"{NS}/persistentvolumeclaims",
        {
            "metadata": {"name": "home"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    assert pvc["status"] == {"phase": "Pending"} and pvc["spec"]["volumeMode"] == "Filesystem"


async def test_events_carry_null_timestamps_like_go_encodes_them(api: ApiServer) -> None:
    event = await api.create(
        f"{NS}/events",
        {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R"},
    )
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        assert key in event and event[key] is None
    assert event["source"] == {} and event["reportingComponent"] == ""


async def test_updates_are_defaulted_too(api: ApiServer) -> None:
    job = await api.create(JOBS, job_body("upd", suspend=True))
    job["spec"].pop("backoffLimit")
    job["spec"].pop("suspend")  # unset on update means the default (false): the Job starts
    resp = await api.put(f"{JOBS}/upd", job)
    assert resp.code == 200, resp.body
    assert resp.body["spec"]["backoffLimit"] == 6 and resp.body["spec"]["suspend"] is False
    svc = await api.create(
        f"{NS}/services", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    )
    hand_written = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    resp = await api.put(f"{NS}/services/s", hand_written)
    assert resp.code == 200 and resp.body["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
