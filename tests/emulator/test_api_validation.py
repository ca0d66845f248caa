"""Validation: the official schema (API concepts: "Field validation") and the API server's own
checks, with messages worded as kube-apiserver words them (``Pod "x" is invalid: ...``)."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from api_fixtures import NS, ApiServer, configmap_body, job_body, pod_body, running_api

from aiinfn_hub.dev.emulator.api import validation
from aiinfn_hub.dev.emulator.api.openapi_schema import library
from aiinfn_hub.dev.emulator.resources import PODS

JSON = dict[str, Any]
JOBS = "/apis/batch/v1/namespaces/default/jobs"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def test_a_missing_image_is_invalid_with_the_real_wording(api: ApiServer) -> None:
    body = pod_body("noimg")
    del body["spec"]["containers"][0]["image"]
    resp = await api.post(f"{NS}/pods", body)
    assert resp.code == 422
    assert (
        resp.body["message"] == 'Pod "noimg" is invalid: spec.containers[0].image: Required value'
    )
    assert resp.body["reason"] == "Invalid"
    assert resp.body["details"] == {
        "name": "noimg",
        "kind": "Pod",
        "causes": [
            {
                "reason": "FieldValueRequired",
                "message": "Required value",
                "field": "spec.containers[0].image",
            }
        ],
    }


async def test_several_errors_are_listed_in_brackets(api: ApiServer) -> None:
    body = pod_body("multi", restartPolicy="Sometimes")
    body["spec"]["containers"].append({"name": "main", "image": "x:1"})
    resp = await api.post(f"{NS}/pods", body)
    assert resp.code == 422
    assert resp.body["message"] == (
        'Pod "multi" is invalid: [spec.containers[1].name: Duplicate value: "main", '
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"]'
    )


async def test_no_containers(api: ApiServer) -> None:
    resp = await api.post(f"{NS}/pods", pod_body("empty", containers=[]))
    assert resp.body["message"] == 'Pod "empty" is invalid: spec.containers: Required value'


async def test_names_must_be_dns_names_of_the_kinds_flavour(api: ApiServer) -> None:
    resp = await api.post(f"{NS}/configmaps", configmap_body("Bad_Name"))
    assert resp.code == 422
    assert resp.body["message"] == (
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        + SUBDOMAIN_MESSAGE
    )
    # subdomains may contain dots; services need DNS-1035 labels, namespaces RFC 1123 labels
    assert (await api.post(f"{NS}/configmaps", configmap_body("a.b"))).code == 201
    svc = await api.post(
        f"{NS}/services", {"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert svc.code == 422 and "a DNS-1035 label must consist of" in svc.body["message"]
    ns = await api.post("/api/v1/namespaces", {"metadata": {"name": "a.b"}})
    assert ns.code == 422 and "a lowercase RFC 1123 label must consist of" in ns.body["message"]
    long_name = "x" * 254
    too_long = await api.post(f"{NS}/configmaps", configmap_body(long_name))
    assert "must be no more than 253 characters" in too_long.body["message"]


async def test_label_keys_and_values(api: ApiServer) -> None:
    bad_key = await api.post(f"{NS}/configmaps", configmap_body("l", **{"bad key": "v"}))
    assert bad_key.code == 422
    assert (
        'metadata.labels: Invalid value: "bad key": name part must consist of'
        in (bad_key.body["message"])
    )
    bad_value = await api.post(f"{NS}/configmaps", configmap_body("l", ok="not ok"))
    assert (
        'metadata.labels: Invalid value: "not ok": a valid label must be an empty string'
        in (bad_value.body["message"])
    )
    fine = configmap_body("l", **{"example.com/team": "a_b.c-d", "empty": ""})
    assert (await api.post(f"{NS}/configmaps", fine)).code == 201


async def test_job_pod_templates_cannot_restart_always(api: ApiServer) -> None:
    body = job_body("always")
    del body["spec"]["template"]["spec"]["restartPolicy"]  # defaulted to Always, then refused
    resp = await api.post(JOBS, body)
    assert resp.code == 422
    assert resp.body["message"] == (
        'Job.batch "always" is invalid: spec.template.spec.restartPolicy: Unsupported value: '
        '"Always": supported values: "OnFailure", "Never"'
    )
    assert resp.body["details"]["group"] == "batch"


async def test_resource_requests_against_limits(api: ApiServer) -> None:
    body = pod_body("res")
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    resp = await api.post(f"{NS}/pods", body)
    assert resp.body["message"] == (
        'Pod "res" is invalid: spec.containers[0].resources.requests: Invalid value: "2": must be '
        "less than or equal to cpu limit of 1"
    )
    body["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": "1"}}
    gpu = await api.post(f"{NS}/pods", body)
    assert (
        gpu.code == 422
        and "Limit must be set for non overcommitable resources" in gpu.body["message"]
    )
    body["spec"]["containers"][0]["resources"] = {
        "requests": {"nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpu": "2"},
    }
    unequal = await api.post(f"{NS}/pods", body)
    assert "must be equal to nvidia.com/gpu limit of 2" in unequal.body["message"]


async def test_volume_mounts_must_name_a_volume(api: ApiServer) -> None:
    body = pod_body("vm")
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "home", "mountPath": "/home"}]
    resp = await api.post(f"{NS}/pods", body)
    assert (
        resp.body["message"]
        == 'Pod "vm" is invalid: spec.containers[0].volumeMounts[0].name: Not found: "home"'
    )


async def test_unknown_fields_by_field_validation_mode(api: ApiServer) -> None:
    body = pod_body("uf")
    body["spec"]["containers"][0]["gpus"] = 2
    body["spec"]["bogus"] = True
    strict = await api.post(f"{NS}/pods?fieldValidation=Strict", body)
    assert (strict.code, strict.body["reason"]) == (400, "BadRequest")
    assert strict.body["message"] == (  # in the order of the body, as Go's decoder finds them
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field '
        '"spec.containers[0].gpus", unknown field "spec.bogus"'
    )
    # the server default is Warn: accepted, the fields dropped, one warning each
    warned = await api.post(f"{NS}/pods", body)
    assert warned.code == 201
    assert "bogus" not in warned.body["spec"] and "gpus" not in warned.body["spec"]["containers"][0]
    assert sorted(warned.warnings) == [
        '299 - "unknown field \\"spec.bogus\\""',
        '299 - "unknown field \\"spec.containers[0].gpus\\""',
    ]
    body["metadata"]["name"] = "uf2"
    ignored = await api.post(f"{NS}/pods?fieldValidation=Ignore", body)
    assert ignored.code == 201 and ignored.warnings == []
    wrong_mode = await api.post(f"{NS}/pods?fieldValidation=Loud", body)
    assert wrong_mode.code == 400


async def test_decoding_errors_are_bad_requests(api: ApiServer) -> None:
    wrong_type = pod_body("wt")
    wrong_type["spec"]["containers"] = "main"
    resp = await api.post(f"{NS}/pods", wrong_type)
    assert resp.code == 400
    assert resp.body["message"].startswith(
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go'
    )
    bad_quantity = pod_body("bq")
    bad_quantity["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "lots"}}
    resp = await api.post(f"{NS}/pods", bad_quantity)
    assert (
        resp.code == 400 and "quantities must match the regular expression" in resp.body["message"]
    )
    bad_base64 = await api.post(
        f"{NS}/secrets", {"metadata": {"name": "s"}, "data": {"k": "not base64!"}}
    )
    assert (
        bad_base64.code == 400
        and "illegal base64 data at input byte 3" in bad_base64.body["message"]
    )


async def test_pod_updates_may_change_only_images_and_a_few_fields(api: ApiServer) -> None:
    await api.create(f"{NS}/pods", pod_body("im"))
    image = await api.patch(
        f"{NS}/pods/im",
        {"spec": {"containers": [{"name": "main", "image": "python:3.12"}]}},
        STRATEGIC,
    )
    assert image.code == 200
    deadline = await api.patch(f"{NS}/pods/im", {"spec": {"activeDeadlineSeconds": 100}}, MERGE)
    assert deadline.code == 200
    forbidden = await api.patch(f"{NS}/pods/im", {"spec": {"restartPolicy": "Never"}}, MERGE)
    assert forbidden.code == 422
    assert forbidden.body["message"].startswith(
        'Pod "im" is invalid: spec: Forbidden: pod updates may not change fields other than '
        "`spec.containers[*].image`"
    )
    labels = await api.patch(f"{NS}/pods/im", {"metadata": {"labels": {"x": "y"}}}, MERGE)
    assert labels.code == 200
    dropped = await api.patch(f"{NS}/pods/im", {"spec": {"tolerations": []}}, MERGE)
    assert dropped.code == 422 and "spec.tolerations: Forbidden" in dropped.body["message"]


async def test_job_selector_and_template_are_immutable_unless_suspended(api: ApiServer) -> None:
    await api.create(JOBS, job_body("run"))
    selector = await api.patch(
        f"{JOBS}/run", {"spec": {"selector": {"matchLabels": {"a": "b"}}}}, MERGE
    )
    assert selector.code == 422 and "spec.selector: Invalid value" in selector.body["message"]
    template = {"spec": {"template": {"spec": {"nodeSelector": {"gpu": "a100"}}}}}
    running = await api.patch(f"{JOBS}/run", template, STRATEGIC)
    assert running.code == 422 and "spec.template: Invalid value" in running.body["message"]
    await api.create(JOBS, job_body("held", suspend=True))
    suspended = await api.patch(f"{JOBS}/held", template, STRATEGIC)
    assert suspended.code == 200
    assert suspended.body["spec"]["template"]["spec"]["nodeSelector"] == {"gpu": "a100"}
    image = {"spec": {"template": {"spec": {"containers": [{"name": "work", "image": "other:1"}]}}}}
    assert (await api.patch(f"{JOBS}/held", image, STRATEGIC)).code == 422
    unsuspend = await api.patch(f"{JOBS}/held", {"spec": {"suspend": False}}, MERGE)
    assert unsuspend.code == 200


async def test_immutable_config_maps(api: ApiServer) -> None:
    body = configmap_body("frozen")
    body["immutable"] = True
    await api.create(f"{NS}/configmaps", body)
    resp = await api.patch(f"{NS}/configmaps/frozen", {"data": {"k": "2"}}, MERGE)
    assert resp.code == 422
    assert resp.body["message"] == (
        'ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    )


async def test_custom_resources_are_stored_as_given(api: ApiServer) -> None:
    anything = {"metadata": {"name": "wl"}, "spec": {"whatever": [1, {"x": None}]}}
    created = await api.create(
        "/apis/kueue.x-k8s.io/v1beta2/namespaces/default/workloads", anything
    )
    assert created["spec"] == {"whatever": [1, {"x": None}]}


async def test_without_validation_the_schema_is_not_checked() -> None:
    async with running_api(validate=False) as api:
        body = pod_body("free")
        body["spec"]["bogus"] = 1
        del body["spec"]["containers"][0]["image"]
        resp = await api.post(f"{NS}/pods?fieldValidation=Strict", body)
        assert resp.code == 201 and resp.body["spec"]["bogus"] == 1


def test_status_writes_fill_required_scalars_with_zero_values() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"},
        "status": {
            "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "image": "i"}]
        },
    }
    decoded = validation.decode(PODS, pod, "Strict")
    assert validation.validate_object(PODS, pod, decoded) == []
    assert pod["status"]["containerStatuses"][0]["imageID"] == ""


def test_schema_validation_is_cheap() -> None:
    """Compiled schemas: a pod costs well under a millisecond (kubernetes_validate: ~2-18 ms)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nb", "namespace": "u", "labels": {"component": "singleuser-server"}},
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": "jupyter/base:2024",
                    "args": ["--ip=$(POD_IP)"],
                    "env": [
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                    ],
                    "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                    "resources": {"limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}},
                    "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
                    "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": False},
                }
            ],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}],
            "restartPolicy": "OnFailure",
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "gpu", "operator": "In", "values": ["t4"]}
                                ]
                            }
                        ]
                    }
                }
            },
        },
    }
    library().problems("Pod", "v1", pod)  # compile once
    rounds = 200
    began = time.perf_counter()
    for _ in range(rounds):
        body = copy.deepcopy(pod)
        decoded = validation.decode(PODS, body, "Strict")
        assert validation.validate_object(PODS, body, decoded) == []
    per_object = (time.perf_counter() - began) / rounds
    assert per_object < 0.002, f"{per_object * 1000:.2f} ms per pod"


_SAMPLES: list[tuple[str, JSON]] = [
    ("valid pod", pod_body("ok")),
    ("valid job", job_body("ok")),
    ("unknown field", {**pod_body("x"), "spec": {**pod_body("x")["spec"], "bogus": 1}}),
    ("wrong type", {**pod_body("x"), "spec": {"containers": "main"}}),
    ("missing container name", {**pod_body("x"), "spec": {"containers": [{"image": "i"}]}}),
    ("enum", {**pod_body("x"), "spec": {**pod_body("x")["spec"], "restartPolicy": "Sometimes"}}),
    (
        "int or string",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": "http"}]},
        },
    ),
    (
        "port as string",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"ports": [{"port": "80"}]},
        },
    ),
    (
        "unknown metadata field",
        {
            **configmap_body("c"),
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "labelz": {}},
        },
    ),
]


@pytest.mark.parametrize(("case", "obj"), _SAMPLES, ids=[c for c, _ in _SAMPLES])
def test_compiled_schemas_agree_with_kubernetes_validate(case: str, obj: JSON) -> None:
    """The compiled checks accept and refuse what the package's own validator does."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    try:
        kubernetes_validate.validate(copy.deepcopy(obj), "1.33.0", strict=True)
        reference_ok = True
    except kubernetes_validate.ValidationError:
        reference_ok = False
    problems = library().problems(obj["kind"], obj["apiVersion"], obj)
    assert problems is not None
    assert (problems == []) == reference_ok, (case, problems)


# -- native sidecars (KEP-753) and probes ------------------------------------------------------
def _with_init(name: str, *init: JSON, **container_fields: Any) -> JSON:
    body = pod_body(name)
    body["spec"]["containers"][0].update(container_fields)
    body["spec"]["initContainers"] = list(init)
    return body


async def test_init_container_restart_policy_may_only_be_always(api: ApiServer) -> None:
    never = {"name": "setup", "image": "busybox:1.36", "restartPolicy": "Never"}
    resp = await api.post(f"{NS}/pods", _with_init("never", never))
    assert resp.code == 422
    assert resp.body["message"] == (
        'Pod "never" is invalid: spec.initContainers[0].restartPolicy: Unsupported value: '
        '"Never": supported values: "Always"'
    )
    assert resp.body["details"]["causes"][0]["reason"] == "FieldValueNotSupported"
    job = job_body("never")
    job["spec"]["template"]["spec"]["initContainers"] = [never]
    resp = await api.post(JOBS, job)
    assert resp.body["message"] == (
        'Job.batch "never" is invalid: spec.template.spec.initContainers[0].restartPolicy: '
        'Unsupported value: "Never": supported values: "Always"'
    )


async def test_restart_policy_is_forbidden_on_regular_containers(api: ApiServer) -> None:
    resp = await api.post(f"{NS}/pods", _with_init("regular", restartPolicy="Always"))
    assert resp.code == 422
    assert resp.body["message"] == (
        'Pod "regular" is invalid: spec.containers[0].restartPolicy: Forbidden: may not be set '
        "for non-init containers"
    )


async def test_probes_and_hooks_only_on_sidecars_among_init_containers(api: ApiServer) -> None:
    probe = {"exec": {"command": ["mountpoint", "-q", "/jfs"]}}
    plain = {
        "name": "setup",
        "image": "busybox:1.36",
        "startupProbe": probe,
        "readinessProbe": probe,
        "lifecycle": {"preStop": {"exec": {"command": ["umount", "/jfs"]}}},
    }
    resp = await api.post(f"{NS}/pods", _with_init("plain", plain))
    reason = "Forbidden: may not be set for init containers without restartPolicy=Always"
    assert resp.body["message"] == (
        f'Pod "plain" is invalid: [spec.initContainers[0].lifecycle: {reason}, '
        f"spec.initContainers[0].readinessProbe: {reason}, "
        f"spec.initContainers[0].startupProbe: {reason}]"
    )
    sidecar = {**plain, "name": "jfs", "restartPolicy": "Always"}
    created = await api.post(f"{NS}/pods", _with_init("sidecar", sidecar))
    assert created.code == 201
    stored = created.body["spec"]["initContainers"][0]
    assert stored["restartPolicy"] == "Always"
    assert stored["startupProbe"]["periodSeconds"] == 10  # defaulted like any probe


async def test_probe_handlers_and_thresholds(api: ApiServer) -> None:
    sidecar = {
        "name": "jfs",
        "image": "busybox:1.36",
        "restartPolicy": "Always",
        "startupProbe": {"periodSeconds": 1, "successThreshold": 2},
        "livenessProbe": {"exec": {"command": []}, "tcpSocket": {"port": 80}},
    }
    resp = await api.post(f"{NS}/pods", _with_init("probes", sidecar))
    assert resp.body["message"] == (
        'Pod "probes" is invalid: [spec.initContainers[0].livenessProbe.exec.command: '
        "Required value, spec.initContainers[0].livenessProbe.tcpSocket: Forbidden: may not "
        "specify more than 1 handler type, "
        "spec.initContainers[0].startupProbe: Required value: must specify a handler type, "
        "spec.initContainers[0].startupProbe.successThreshold: Invalid value: 2: must be 1]"
    )


async def test_mount_propagation(api: ApiServer) -> None:
    body = pod_body("prop", volumes=[{"name": "jfs", "emptyDir": {}}])
    mount = {"name": "jfs", "mountPath": "/jfs", "mountPropagation": "Bidirectional"}
    body["spec"]["containers"][0]["volumeMounts"] = [mount]
    resp = await api.post(f"{NS}/pods", body)
    assert resp.body["message"] == (
        'Pod "prop" is invalid: spec.containers[0].volumeMounts.mountPropagation: Forbidden: '
        "Bidirectional mount propagation is available only to privileged containers"
    )
    mount["mountPropagation"] = "Sometimes"
    resp = await api.post(f"{NS}/pods", body)
    assert resp.body["message"].endswith(
        'Unsupported value: "Sometimes": supported values: "Bidirectional", "HostToContainer", '
        '"None"'
    )
    mount["mountPropagation"] = "Bidirectional"
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    assert (await api.post(f"{NS}/pods", body)).code == 201


async def test_an_init_container_sharing_a_name_is_the_duplicate(api: ApiServer) -> None:
    twin = {"name": "main", "image": "busybox:1.36", "restartPolicy": "Always"}
    resp = await api.post(f"{NS}/pods", _with_init("twin", twin))
    assert resp.body["message"] == (
        'Pod "twin" is invalid: spec.initContainers[0].name: Duplicate value: "main"'
    )
