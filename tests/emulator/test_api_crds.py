"""CustomResourceDefinitions: Kueue's real CRDs (v0.19.2, tests/data/kueue-crds/) applied with
kubectl, then the platform's generated Kueue objects (helm-values/manifests/30-kueue.yaml).

What a real API server does with them (apiextensions-apiserver): the CRD gets NamesAccepted
and Established, its kinds appear in discovery, objects are pruned of undeclared fields,
defaulted from the schema and checked against it (422 Invalid with kube-openapi's wording),
and deleting the CRD deletes its objects and the kind. Every wait is on a condition
(``kubectl wait``, ``kubectl delete`` waiting for the deletion, ``wait_for``), never a sleep.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_fixtures import (
    KUBECTL,
    ApiServer,
    kube_client,
    running_api,
    wait_for,
    wait_for_async,
)

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on PATH")

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "data" / "kueue-crds"
MANIFESTS = ROOT / "helm-values" / "manifests"
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
CQ_CRD = "clusterqueues.kueue.x-k8s.io"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
JSON = dict[str, Any]


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with running_api() as server:
        yield server


async def kubectl_ok(api: ApiServer, home: Path, *args: str, stdin: str | None = None) -> str:
    code, out, err = await api.kubectl(home, *args, stdin=stdin)
    assert code == 0, err
    return out


async def install_crds(api: ApiServer, home: Path) -> None:
    """``kubectl apply`` the CRDs and wait for them as an operator would."""
    await kubectl_ok(api, home, "apply", "-f", str(CRDS))
    await kubectl_ok(
        api, home, "wait", "--for=condition=Established", "--timeout=20s", "-f", str(CRDS)
    )


def cluster_queue(name: str, **spec: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


async def test_applied_crds_are_established_and_served(api: ApiServer, tmp_path: Path) -> None:
    out = await kubectl_ok(api, tmp_path, "apply", "-f", str(CRDS))
    assert f"customresourcedefinition.apiextensions.k8s.io/{CQ_CRD} created" in out
    await kubectl_ok(
        api, tmp_path, "wait", "--for=condition=Established", "--timeout=20s", "-f", str(CRDS)
    )
    crd = (await api.get(f"{CRD_PATH}/{CQ_CRD}")).body
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert (conditions["NamesAccepted"]["status"], conditions["NamesAccepted"]["reason"]) == (
        "True",
        "NoConflicts",
    )
    assert conditions["NamesAccepted"]["message"] == "no conflicts found"
    assert (conditions["Established"]["status"], conditions["Established"]["reason"]) == (
        "True",
        "InitialNamesAccepted",
    )
    assert crd["status"]["storedVersions"] == ["v1beta2"]
    assert crd["status"]["acceptedNames"]["shortNames"] == ["cq"]
    assert crd["spec"]["conversion"] == {"strategy": "None"}
    listed = await kubectl_ok(api, tmp_path, "api-resources", "--api-group=kueue.x-k8s.io")
    rows = {line.split()[0]: line.split() for line in listed.splitlines()[1:]}
    # the short name "wpc" exists only in the CRD: the kind is served from it now
    assert rows["workloadpriorityclasses"][1] == "wpc"
    assert rows["clusterqueues"][1:] == ["cq", "kueue.x-k8s.io/v1beta2", "false", "ClusterQueue"]
    group = (await api.get("/apis/kueue.x-k8s.io")).body
    assert group["preferredVersion"]["version"] == "v1beta2"
    again = await kubectl_ok(api, tmp_path, "apply", "-f", str(CRDS))
    assert again.splitlines() == [
        f"customresourcedefinition.apiextensions.k8s.io/{p.stem.split('_')[1]}.kueue.x-k8s.io "
        "unchanged"
        for p in sorted(CRDS.glob("*.yaml"))
    ]


async def test_the_platforms_kueue_objects_are_accepted_and_defaulted(
    api: ApiServer, tmp_path: Path
) -> None:
    await install_crds(api, tmp_path)
    await kubectl_ok(api, tmp_path, "apply", "-f", str(MANIFESTS / "00-namespace.yaml"))
    out = await kubectl_ok(api, tmp_path, "apply", "-f", str(MANIFESTS / "30-kueue.yaml"))
    assert "clusterqueue.kueue.x-k8s.io/pool created" in out
    assert "localqueue.kueue.x-k8s.io/cms created" in out
    pool = json.loads(await kubectl_ok(api, tmp_path, "get", "cq", "pool", "-o", "json"))
    spec = pool["spec"]
    # the defaults Kueue's CRD declares, filled in by the API server
    assert spec["flavorFungibility"] == {
        "whenCanBorrow": "MayStopSearch",
        "whenCanPreempt": "TryNextFlavor",
    }
    assert spec["preemption"] == {
        "borrowWithinCohort": {"policy": "Never"},
        "reclaimWithinCohort": "Never",
        "withinClusterQueue": "Never",
    }
    assert spec["stopPolicy"] == "None"
    assert spec["queueingStrategy"] == "BestEffortFIFO"  # given in the file, kept
    # stored at the storage version, served at both
    v1beta1 = (await api.get("/apis/kueue.x-k8s.io/v1beta1/clusterqueues/pool")).body
    assert v1beta1["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    assert v1beta1["spec"] == spec
    out = await kubectl_ok(api, tmp_path, "apply", "-f", str(MANIFESTS / "30-kueue.yaml"))
    assert "clusterqueue.kueue.x-k8s.io/pool unchanged" in out
    # the CRD's printer columns, "-o wide" adding the priority-1 ones
    out = await kubectl_ok(api, tmp_path, "get", "cq", "pool")
    assert [line.split() for line in out.splitlines()] == [
        ["NAME", "COHORT", "PENDING", "WORKLOADS"],
        ["pool", "aiinfn"],  # no status yet: a null cell, printed empty
    ]
    out = await kubectl_ok(api, tmp_path, "get", "cq", "pool", "-o", "wide")
    assert out.splitlines()[0].split() == [
        "NAME",
        "COHORT",
        "STRATEGY",
        "PENDING",
        "WORKLOADS",
        "ADMITTED",
        "WORKLOADS",
    ]
    assert out.splitlines()[1].split() == ["pool", "aiinfn", "BestEffortFIFO"]


async def test_a_wrong_type_gets_the_real_422(api: ApiServer, tmp_path: Path) -> None:
    await install_crds(api, tmp_path)
    code, _out, err = await api.kubectl(
        tmp_path, "apply", "-f", "-", stdin=cluster_queue("bad", namespaceSelector=5)
    )
    assert code != 0
    assert err.strip() == (
        'The ClusterQueue "bad" is invalid: spec.namespaceSelector: Invalid value: "integer": '
        'spec.namespaceSelector in body must be of type object: "integer"'
    )
    response = await api.post(
        f"{KUEUE}/clusterqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": "b"},
            "spec": {"namespaceSelector": 5},
        },
    )
    assert response.code == 422
    assert response.body["reason"] == "Invalid"
    assert response.body["details"] == {
        "name": "b",
        "group": "kueue.x-k8s.io",
        "kind": "ClusterQueue",
        "causes": [
            {
                "reason": "FieldValueTypeInvalid",
                "message": 'Invalid value: "integer": spec.namespaceSelector in body must be '
                'of type object: "integer"',
                "field": "spec.namespaceSelector",
            }
        ],
    }


async def test_required_enum_and_limits_are_checked(api: ApiServer, tmp_path: Path) -> None:
    await install_crds(api, tmp_path)
    no_value = (
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: WorkloadPriorityClass\nmetadata:\n  name: p\n"
    )
    code, _out, err = await api.kubectl(tmp_path, "apply", "-f", "-", stdin=no_value)
    assert code != 0
    assert err.strip() == 'The WorkloadPriorityClass "p" is invalid: value: Required value'
    strategy = cluster_queue("s", queueingStrategy="Random")
    code, _out, err = await api.kubectl(tmp_path, "apply", "-f", "-", stdin=strategy)
    assert code != 0
    assert (
        'spec.queueingStrategy: Unsupported value: "Random": supported values: '
        '"StrictFIFO", "BestEffortFIFO"' in err
    )
    empty_group = cluster_queue(
        "g", resourceGroups=[{"coveredResources": [], "flavors": [{"name": "f", "resources": []}]}]
    )
    code, _out, err = await api.kubectl(tmp_path, "apply", "-f", "-", stdin=empty_group)
    assert code != 0
    assert (
        "spec.resourceGroups[0].coveredResources: Invalid value: 0: "
        "spec.resourceGroups[0].coveredResources in body should have at least 1 items" in err
    )


async def test_unknown_fields_are_refused_when_strict_and_pruned_otherwise(
    api: ApiServer, tmp_path: Path
) -> None:
    await install_crds(api, tmp_path)
    extra = cluster_queue("x", cohortName="c", gpus=4)
    code, _out, err = await api.kubectl(tmp_path, "apply", "-f", "-", stdin=extra)
    assert code != 0  # kubectl asks for fieldValidation=Strict
    assert (
        'ClusterQueue in version "v1beta2" cannot be handled as a ClusterQueue: strict decoding '
        'error: unknown field "spec.gpus"' in err
    )
    code, _out, err = await api.kubectl(
        tmp_path, "apply", "--validate=warn", "-f", "-", stdin=extra
    )
    assert code == 0, err
    assert 'unknown field "spec.gpus"' in err
    stored = (await api.get(f"{KUEUE}/clusterqueues/x")).body
    assert stored["spec"]["cohortName"] == "c"
    assert "gpus" not in stored["spec"]
    # ClusterQueue's status is declared field by field: a status write is pruned too
    stored["status"] = {"pendingWorkloads": 1, "madeUp": True}
    response = await api.put(f"{KUEUE}/clusterqueues/x/status?fieldValidation=Ignore", stored)
    assert response.code == 200, response.body
    assert response.body["status"]["pendingWorkloads"] == 1
    assert "madeUp" not in response.body["status"]


async def test_patches_are_validated_and_defaulted_too(api: ApiServer, tmp_path: Path) -> None:
    await install_crds(api, tmp_path)
    await kubectl_ok(api, tmp_path, "apply", "-f", "-", stdin=cluster_queue("p", cohortName="a"))
    code, _out, err = await api.kubectl(
        tmp_path, "patch", "cq", "p", "--type=merge", "-p", '{"spec":{"stopPolicy":"Later"}}'
    )
    assert code != 0
    assert 'spec.stopPolicy: Unsupported value: "Later"' in err
    await kubectl_ok(
        api,
        tmp_path,
        "patch",
        "cq",
        "p",
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/spec/preemption"}]',
    )
    patched = (await api.get(f"{KUEUE}/clusterqueues/p")).body
    assert patched["spec"]["preemption"]["withinClusterQueue"] == "Never"  # defaulted again


async def test_the_builtin_kueue_kinds_accept_anything_until_a_crd_replaces_them(
    api: ApiServer, tmp_path: Path
) -> None:
    """Without Kueue's CRDs the emulator serves Kueue's kinds schema-less (what the local
    platform and many tests rely on); a CRD applied over the API takes over."""
    loose = cluster_queue("loose", namespaceSelector=5)
    await kubectl_ok(api, tmp_path, "apply", "-f", "-", stdin=loose)
    assert (await api.get(f"{KUEUE}/clusterqueues/loose")).body["spec"] == {"namespaceSelector": 5}
    await install_crds(api, tmp_path)
    code, _out, err = await api.kubectl(
        tmp_path, "apply", "-f", "-", stdin=cluster_queue("strict", namespaceSelector=5)
    )
    assert code != 0 and "must be of type object" in err


async def test_deleting_a_crd_removes_its_objects_and_its_kind(
    api: ApiServer, tmp_path: Path
) -> None:
    await install_crds(api, tmp_path)
    await kubectl_ok(api, tmp_path, "apply", "-f", "-", stdin=cluster_queue("gone", cohortName="a"))
    out = await kubectl_ok(api, tmp_path, "delete", "crd", CQ_CRD)  # waits for the deletion
    assert out.strip() == f'customresourcedefinition.apiextensions.k8s.io "{CQ_CRD}" deleted'
    assert (await api.get(f"{CRD_PATH}/{CQ_CRD}")).code == 404
    assert (await api.get(f"{KUEUE}/clusterqueues/gone")).code == 404
    listed = await kubectl_ok(api, tmp_path, "api-resources", "--api-group=kueue.x-k8s.io")
    assert "clusterqueues" not in listed and "localqueues" in listed
    code, _out, err = await api.kubectl(tmp_path, "get", "clusterqueues")
    assert code != 0
    assert 'the server doesn\'t have a resource type "clusterqueues"' in err


async def test_a_terminating_crd_refuses_new_objects_until_its_objects_are_gone(
    api: ApiServer, tmp_path: Path
) -> None:
    await install_crds(api, tmp_path)
    held = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
        "spec": {},
    }
    await api.create(f"{KUEUE}/clusterqueues", held)
    await kubectl_ok(api, tmp_path, "delete", "crd", CQ_CRD, "--wait=false")

    async def terminating_reason() -> str:
        crd = (await api.get(f"{CRD_PATH}/{CQ_CRD}")).body
        found = [c for c in crd["status"]["conditions"] if c["type"] == "Terminating"]
        return str(found[0]["reason"]) if found else ""

    async def deleting_instances() -> bool:
        return await terminating_reason() == "InstanceDeletionInProgress"

    await wait_for_async(deleting_instances, what="the Terminating condition")
    crd = (await api.get(f"{CRD_PATH}/{CQ_CRD}")).body
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    response = await api.post(f"{KUEUE}/clusterqueues", {**held, "metadata": {"name": "new"}})
    assert response.code == 405
    assert response.body["message"] == (
        "create not allowed while custom resource definition is terminating"
    )
    await api.patch(
        f"{KUEUE}/clusterqueues/held",
        {"metadata": {"finalizers": None}},
        "application/merge-patch+json",
    )
    await kubectl_ok(api, tmp_path, "wait", "--for=delete", f"crd/{CQ_CRD}", "--timeout=20s")
    await wait_for(lambda: not api.store.kinds.get("kueue.x-k8s.io", "clusterqueues"))


async def test_kubernetes_asyncio_reads_crds_and_custom_objects(
    api: ApiServer, tmp_path: Path
) -> None:
    """The typed CRD model deserialises our status; CustomObjectsApi sees the defaults."""
    from kubernetes_asyncio import client

    await install_crds(api, tmp_path)
    async with kube_client(api, tmp_path) as api_client:
        crd = await client.ApiextensionsV1Api(api_client).read_custom_resource_definition(CQ_CRD)
        assert crd.status.accepted_names.kind == "ClusterQueue"
        assert [c.type for c in crd.status.conditions] == ["NamesAccepted", "Established"]
        objects = client.CustomObjectsApi(api_client)
        body: JSON = {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": "typed"},
            "spec": {"cohortName": "a"},
        }
        created = await objects.create_cluster_custom_object(
            "kueue.x-k8s.io", "v1beta2", "clusterqueues", body
        )
        assert created["spec"]["stopPolicy"] == "None"
        with pytest.raises(client.ApiException) as refused:
            await objects.create_cluster_custom_object(
                "kueue.x-k8s.io",
                "v1beta2",
                "clusterqueues",
                {**body, "metadata": {"name": "t2"}, "spec": {"cohortName": 7}},
            )
        assert refused.value.status == 422
        assert "spec.cohortName in body must be of type string" in refused.value.body


WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"x-kubernetes-int-or-string": True},
                                    "replicas": {"type": "integer", "minimum": 1, "default": 1},
                                    "code": {"type": "string", "pattern": "^[a-z]+$"},
                                    "label": {"type": "string", "maxLength": 3},
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}
WIDGET_PATH = "/apis/example.com/v1/namespaces/default/widgets"


def widget(name: str, **spec: Any) -> JSON:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }


async def test_a_new_groups_kind_follows_its_schema(api: ApiServer, tmp_path: Path) -> None:
    await api.create(CRD_PATH, WIDGETS)
    await kubectl_ok(
        api, tmp_path, "wait", "--for=condition=Established", "crd/widgets.example.com"
    )
    ok = await api.create(WIDGET_PATH, widget("a", size="2Gi", extra={"any": {"thing": 1}}))
    assert ok["spec"] == {"size": "2Gi", "replicas": 1, "extra": {"any": {"thing": 1}}}
    assert (await api.post(WIDGET_PATH, widget("b", size=3))).code == 201
    response = await api.post(
        WIDGET_PATH, widget("c", size=True, replicas=0, code="A1", label="long")
    )
    assert response.code == 422
    assert response.body["message"] == (
        'Widget.example.com "c" is invalid: ['
        'spec.size: Invalid value: "boolean": spec.size in body must be of type integer,string: '
        '"boolean", '
        "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal "
        "to 1, "
        "spec.code: Invalid value: \"A1\": spec.code in body should match '^[a-z]+$', "
        "spec.label: Too long: may not be more than 3 bytes]"
    )
    missing = await api.post(WIDGET_PATH, widget("d"))
    assert missing.code == 422
    assert missing.body["message"] == 'Widget.example.com "d" is invalid: spec.size: Required value'
    out = await kubectl_ok(api, tmp_path, "get", "wd", "-n", "default", "-o", "name")
    assert out.split() == ["widget.example.com/a", "widget.example.com/b"]


async def test_an_invalid_crd_is_refused(api: ApiServer) -> None:
    wrong = json.loads(json.dumps(WIDGETS))
    wrong["metadata"]["name"] = "gadgets.example.com"
    wrong["spec"]["versions"][0]["storage"] = False
    del wrong["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"]
    response = await api.post(CRD_PATH, wrong)
    assert response.code == 422
    fields = [c["field"] for c in response.body["details"]["causes"]]
    assert fields == [
        "metadata.name",
        "spec.versions",
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
    ]
    assert 'must be spec.names.plural+"."+spec.group' in response.body["message"]
    assert "must have exactly one version marked as storage version" in response.body["message"]
    assert (await api.get("/apis/example.com/v1")).code == 404


async def test_defaults_are_applied_on_read_to_objects_stored_before(
    api: ApiServer, tmp_path: Path
) -> None:
    """A built-in Kueue object stored before the CRD replaced the kind shows the CRD's
    defaults when read, as objects written before a default was added do on a real server."""
    await api.create(
        f"{KUEUE}/clusterqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": "old"},
            "spec": {},
        },
    )
    await install_crds(api, tmp_path)
    read = (await api.get(f"{KUEUE}/clusterqueues/old")).body
    assert read["spec"]["stopPolicy"] == "None"
    listed = (await api.get(f"{KUEUE}/clusterqueues")).body["items"]
    assert listed[0]["spec"]["stopPolicy"] == "None"
    stored = api.store.get(api.store.kinds.get("kueue.x-k8s.io", "clusterqueues"), None, "old")
    assert stored is not None and stored["spec"] == {}


def test_an_emulator_started_with_crds_serves_them(tmp_path: Path) -> None:
    from aiinfn_hub.dev.emulator.cluster import ClusterSpec, load_crds
    from aiinfn_hub.dev.emulator.runtime import Emulator

    queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "at-start"},
        "spec": {"cohortName": "a"},
    }
    cluster = ClusterSpec(crds=load_crds(CRDS), objects=[queue])
    with Emulator(cluster, state_dir=tmp_path) as emulator:
        (stored,) = emulator.objects("ClusterQueue")
        assert stored["spec"]["stopPolicy"] == "None"
        names = {c["metadata"]["name"] for c in emulator.objects("CustomResourceDefinition")}
        assert CQ_CRD in names


def test_the_command_line_takes_crd_folders_and_refuses_other_files(tmp_path: Path) -> None:
    from aiinfn_hub.dev.cli import build_parser
    from aiinfn_hub.dev.emulator.cluster import load_crds

    args = build_parser().parse_args(["emulator", "--crds", str(CRDS), "--crds", "x.yaml"])
    assert args.crds == [CRDS, Path("x.yaml")]
    assert [c["metadata"]["name"] for c in load_crds(CRDS)][:1] == [CQ_CRD]
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(ValueError, match="not a CustomResourceDefinition but ConfigMap"):
        load_crds(tmp_path)
