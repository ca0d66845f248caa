"""Built-in objects sent as protobuf, as Go clients send them (client-go's typed clientsets since
Kubernetes 1.31: ``kubectl create namespace``, ``create secret``, ``create deployment``...).

Checked with the real kubectl on this machine: each generator's object reads back as kube-
apiserver would store it (unset plain fields left out, zeros that mean something kept, Go's
embedded structs flat, bytes in base64). Bodies with no schema here get 415 and malformed ones
400, both changing nothing. Hand-built bodies check what kubectl's generators never send.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_client import RawClient, wait_until
from stream_fixtures import KUBECTL, needs_kubectl

from aiinfn_hub.dev.emulator.cluster import ClusterSpec, NodeSpec
from aiinfn_hub.dev.emulator.protobuf import MEDIA_TYPE, Decoder, ProtobufError, UnknownKind
from aiinfn_hub.dev.emulator.protobuf.schemas import SchemaRegistry
from aiinfn_hub.dev.emulator.runtime import Emulator

JSON = dict[str, Any]
REGISTRY = SchemaRegistry()
needs_schemas = pytest.mark.skipif(
    not REGISTRY.available, reason="no Go client with Kubernetes' protobuf schemas on PATH"
)


# -- a protobuf writer for hand-built bodies -------------------------------------------------
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _body(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _len(1, api_version.encode()) + _len(2, kind.encode())
    return b"k8s\x00" + _len(1, type_meta) + _len(2, raw)


# -- the cluster ---------------------------------------------------------------------------
class Kubectl:
    def __init__(self, emulator: Emulator, home: Path) -> None:
        self.emulator = emulator
        self.raw = RawClient(emulator.access)
        self.env = {
            "HOME": str(home),
            "KUBECONFIG": str(emulator.write_kubeconfig()),
            "PATH": "/usr/bin:/bin",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, *args], capture_output=True, text=True, env=self.env, timeout=60, check=False
        )

    def create(self, *args: str) -> None:
        done = self.run("create", *args)
        assert done.returncode == 0, done.stderr

    def get(self, *args: str) -> JSON:
        done = self.run("get", *args, "-o", "json")
        assert done.returncode == 0, done.stderr
        result: JSON = json.loads(done.stdout)
        return result


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    cluster = ClusterSpec(nodes=[NodeSpec(name="node-1", capacity={"cpu": "8", "memory": "16Gi"})])
    emulator = Emulator(cluster, state_dir=tmp_path_factory.mktemp("protobuf")).start()
    try:
        yield Kubectl(emulator, tmp_path_factory.mktemp("home"))
    finally:
        emulator.stop()


def _sends_protobuf(kubectl: Kubectl) -> bool:
    done = kubectl.run("create", "namespace", "probe-encoding", "-v=8")
    assert done.returncode == 0, done.stderr
    return f"Content-Type: {MEDIA_TYPE}" in done.stderr


pytestmark = [needs_kubectl, needs_schemas]


def test_kubectl_sends_protobuf_and_the_namespace_is_created(kubectl: Kubectl) -> None:
    if not _sends_protobuf(kubectl):
        pytest.skip("this kubectl sends JSON (before 1.31): nothing of protobuf to check")
    namespace = kubectl.get("namespace", "probe-encoding")
    assert namespace["metadata"]["name"] == "probe-encoding"
    assert namespace["status"]["phase"] == "Active"
    assert set(namespace["metadata"]) == {
        "name",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "labels",
    }, namespace["metadata"]  # no empty generateName, selfLink, zero generation...


def test_config_maps_and_secrets_keep_every_value_empty_ones_too(kubectl: Kubectl) -> None:
    kubectl.create("configmap", "settings", "--from-literal=mode=fast", "--from-literal=empty=")
    assert kubectl.get("configmap", "settings")["data"] == {"mode": "fast", "empty": ""}
    kubectl.create("secret", "generic", "token", "--from-literal=key=s3cr3t")
    secret = kubectl.get("secret", "token")
    assert secret["type"] == "Opaque"
    assert secret["data"] == {"key": "czNjcjN0"}  # base64, as JSON carries bytes
    kubectl.create(
        "secret",
        "docker-registry",
        "pull",
        "--docker-server=registry.example.org",
        "--docker-username=u",
        "--docker-password=p",
    )
    pull = kubectl.get("secret", "pull")
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    assert "registry.example.org" in json.dumps(pull["data"]) or pull["data"][".dockerconfigjson"]


def test_a_deployment_keeps_zero_replicas_and_leaves_unset_fields_out(kubectl: Kubectl) -> None:
    kubectl.create("deployment", "web", "--image=nginx", "--port=80", "--replicas=0")
    spec = kubectl.get("deployment", "web")["spec"]
    assert spec["replicas"] == 0  # a pointer set to 0: meant
    assert spec["selector"] == {"matchLabels": {"app": "web"}}
    [container] = spec["template"]["spec"]["containers"]
    assert container["image"] == "nginx"
    assert container["ports"][0]["containerPort"] == 80
    assert "hostPort" not in container["ports"][0]  # a plain 0: unset
    for unset in ("stdin", "tty", "stdinOnce"):  # plain false: left out, as JSON does
        assert unset not in container
    assert "paused" not in spec and "minReadySeconds" not in spec


def test_a_job_created_as_protobuf_runs(kubectl: Kubectl) -> None:
    kubectl.create("job", "once", "--image=busybox", "--", "echo", "hi")
    job = kubectl.get("job", "once")
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["echo", "hi"]
    # the job controller reads it like any other: its pod comes, from the template
    pods = wait_until(
        lambda: kubectl.get("pods", "-l", "job-name=once")["items"], 60, "the job's pod"
    )
    assert pods[0]["spec"]["containers"][0]["command"] == ["echo", "hi"]


def test_services_rbac_budgets_and_priority_classes(kubectl: Kubectl) -> None:
    kubectl.create("service", "clusterip", "api", "--tcp=80:8080")
    kubectl.create("service", "nodeport", "open", "--tcp=80", "--node-port=30080")
    api, open_ = kubectl.get("service", "api"), kubectl.get("service", "open")
    assert api["spec"]["ports"][0]["targetPort"] == 8080
    assert "nodePort" not in api["spec"]["ports"][0]
    assert open_["spec"]["ports"][0]["nodePort"] == 30080
    kubectl.create("role", "reader", "--verb=get,list", "--resource=pods")
    kubectl.create("rolebinding", "readers", "--role=reader", "--serviceaccount=default:bot")
    binding = kubectl.get("rolebinding", "readers")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bot", "namespace": "default"}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "reader",
    }
    assert kubectl.get("role", "reader")["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    ]
    kubectl.create("pdb", "keep", "--selector=app=web", "--max-unavailable=0")
    assert kubectl.get("pdb", "keep")["spec"]["maxUnavailable"] == 0  # a pointer: meant
    kubectl.create("priorityclass", "zero", "--value=0", "--preemption-policy=Never")
    zero = kubectl.get("priorityclass", "zero")
    assert zero["value"] == 0 and zero["preemptionPolicy"] == "Never"


def test_an_ingress_rules_value_is_flat_as_in_json(kubectl: Kubectl) -> None:
    kubectl.create("ingress", "site", "--rule=foo.example.org/docs=docs:8080", "--class=nginx")
    [rule] = kubectl.get("ingress", "site")["spec"]["rules"]
    assert rule["host"] == "foo.example.org"
    [path] = rule["http"]["paths"]
    assert path["backend"] == {"service": {"name": "docs", "port": {"number": 8080}}}


def test_a_body_of_an_unknown_kind_gets_415_and_a_malformed_one_400(kubectl: Kubectl) -> None:
    raw = kubectl.raw
    path = "/api/v1/namespaces/default/configmaps"
    unknown = _body("v1", "NoSuchKind", _len(1, _len(1, b"x")))
    code, body, _ = raw.request("POST", path, raw=unknown, content_type=MEDIA_TYPE)
    assert code == 415, body
    assert body["reason"] == "UnsupportedMediaType"
    assert "no protobuf schema for NoSuchKind in v1" in body["message"]
    broken = b"k8s\x00" + _len(1, _len(2, b"ConfigMap"))[:-3]
    code, body, _ = raw.request("POST", path, raw=broken, content_type=MEDIA_TYPE)
    assert code == 400, body
    assert "malformed" in body["message"]
    code, body, _ = raw.request("POST", path, raw=b"{}", content_type="text/plain")
    assert code == 415, body
    code, body, _ = raw.request("POST", path, raw=b"[" * 100_000)  # JSON nesting too deep
    assert code == 400, body
    code, body, _ = raw.request(
        "POST", path, raw=b"k8s\x00" + b"\x00" * (3 * 1024 * 1024), content_type=MEDIA_TYPE
    )
    assert code == 413 and body["reason"] == "RequestEntityTooLarge", body
    code, listed, _ = raw.get(path)
    assert code == 200
    assert [item["metadata"]["name"] for item in listed["items"]] == ["settings"]


# -- the decoder on bodies kubectl's generators never send -----------------------------------
def test_times_maps_quantities_and_volume_sources_decode_as_their_json() -> None:
    meta = (
        _len(1, b"data-pod")
        + _len(8, _int(1, 1_700_000_000))  # creationTimestamp
        + _len(11, _len(1, b"app") + _len(2, b"x"))  # labels entry
    )
    empty_dir = _len(2, _len(1, b"") + _len(2, _len(1, b"1Gi")))  # emptyDir with sizeLimit
    volume = _len(1, b"scratch") + _len(2, empty_dir)  # the source is embedded in Volume
    resources = _len(2, _len(1, b"nvidia.com/gpu") + _len(2, _len(1, b"1")))  # requests
    security = _int(7, 0) + _int(2, 0)  # allowPrivilegeEscalation false, privileged false
    container = (
        _len(1, b"main")
        + _len(2, b"python")
        + _len(8, resources)
        + _len(15, security)
        + _int(16, 0)  # stdin false
    )
    spec = _len(1, volume) + _len(2, container) + _int(4, 0)  # terminationGrace 0
    pod = Decoder(REGISTRY).decode(_body("v1", "Pod", _len(1, meta) + _len(2, spec)))
    assert pod["kind"] == "Pod" and pod["apiVersion"] == "v1"
    assert pod["metadata"] == {
        "name": "data-pod",
        "creationTimestamp": "2023-11-14T22:13:20Z",
        "labels": {"app": "x"},
    }
    assert pod["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]
    [main] = pod["spec"]["containers"]
    assert main["resources"] == {"requests": {"nvidia.com/gpu": "1"}}
    assert main["securityContext"] == {"allowPrivilegeEscalation": False}
    assert "stdin" not in main
    assert pod["spec"]["terminationGracePeriodSeconds"] == 0


def test_embedded_references_are_flat_and_a_meant_empty_class_is_kept() -> None:
    """A key selector embeds LocalObjectReference (its ``name`` is the selector's own in JSON);
    a claim's ``storageClassName: ""`` means "no dynamic provisioning", unlike unset."""
    selector = _len(1, _len(1, b"db-secret")) + _len(2, b"password")
    env = _len(1, b"PW") + _len(3, _len(4, selector))  # valueFrom.secretKeyRef
    container = _len(1, b"main") + _len(2, b"python") + _len(7, env)
    pod = Decoder(REGISTRY).decode(_body("v1", "Pod", _len(2, _len(2, container))))
    [variable] = pod["spec"]["containers"][0]["env"]
    assert variable == {
        "name": "PW",
        "valueFrom": {"secretKeyRef": {"name": "db-secret", "key": "password"}},
    }
    claim_spec = _len(5, b"")  # storageClassName: ""
    claim = Decoder(REGISTRY).decode(_body("v1", "PersistentVolumeClaim", _len(2, claim_spec)))
    assert claim["spec"] == {"storageClassName": ""}


def test_the_decoder_refuses_what_it_cannot_read() -> None:
    decoder = Decoder(REGISTRY)
    with pytest.raises(ProtobufError, match="prefix"):
        decoder.decode(b'{"kind": "Pod"}')
    with pytest.raises(UnknownKind, match="no kubectl with Kubernetes' schemas found"):
        Decoder(SchemaRegistry([])).decode(_body("v1", "Pod", b""))
    whole = _body("v1", "Pod", _len(1, _len(1, b"cut-short")))
    with pytest.raises(ProtobufError, match="malformed"):
        decoder.decode(whole[:-4])
    with pytest.raises(ProtobufError, match="malformed"):  # a number where a message goes
        decoder.decode(_body("v1", "Pod", _int(1, 7)))
    with pytest.raises(ProtobufError, match="malformed"):  # a number where a name goes
        decoder.decode(_body("v1", "Pod", _len(1, _int(1, 5))))
    far = _len(8, _int(1, 2**62))  # a creationTimestamp past the year 9999
    with pytest.raises(ProtobufError, match="out of range"):
        decoder.decode(_body("v1", "Pod", _len(1, far)))
    bytes_time = _len(8, _len(1, b"zz"))  # a Time whose seconds are bytes
    with pytest.raises(ProtobufError, match="malformed"):
        decoder.decode(_body("v1", "Pod", _len(1, bytes_time)))
    deep = b"[" * 200_000  # a RawExtension nesting past the recursion limit
    revision = _len(1, _len(1, b"r1")) + _len(2, _len(1, deep))
    with pytest.raises(ProtobufError, match="malformed"):
        decoder.decode(_body("apps/v1", "ControllerRevision", revision))


def test_schemas_come_from_the_kubectl_on_this_machine() -> None:
    assert REGISTRY.for_kind("apps/v1", "Deployment") is not None
    assert REGISTRY.for_kind("rbac.authorization.k8s.io/v1", "Role") is not None
    assert REGISTRY.for_kind("v1", "DeleteOptions") is not None
    name = REGISTRY.for_kind("v1", "Namespace")
    assert name is not None and name.name == ".k8s.io.api.core.v1.Namespace"
    assert re.fullmatch(
        r"\.k8s\.io\.api\.batch\.v1\.Job", REGISTRY.for_kind("batch/v1", "Job").name
    )  # type: ignore[union-attr]
