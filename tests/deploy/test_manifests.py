"""helm-values/manifests/: what an operator applies with `kubectl apply -f` before installing
the chart. Every object passes strict Kubernetes schema validation for the chart's minimum
Kubernetes version, the Kueue objects pass Kueue's CRDs and are what `aiinfn-hub render-kueue`
makes now, the RBAC rules grant exactly what the code calls (bunshin_rbac derives it from the
code), and the emulated API server accepts the kinds it serves."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from bunshin_rbac import bunshin_rights, hub_cluster_rights, rules_rights
from test_helm_values import rendered

from aiinfn_hub.config import load_platform_config
from aiinfn_hub.dev.emulator.cluster import load_cluster_file
from aiinfn_hub.dev.emulator.runtime import Emulator

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "helm-values" / "manifests"
KUEUE_FILE = MANIFESTS / "30-kueue.yaml"
PLATFORM = ROOT / "examples" / "platform.yaml"
CRDS = ROOT / "tests" / "data" / "kueue-crds"
CHART = ROOT / "tests" / "data" / "z2jh-chart-4.4.0"
CONFIG = load_platform_config(PLATFORM)
HUB_NAMESPACE, HUB_ACCOUNT = "aiinfn", "hub"  # helm-values/values.yaml's release namespace
FILES = sorted(MANIFESTS.glob("*.yaml")) + sorted((MANIFESTS / "examples").glob("*.yaml"))


def min_kube_version() -> str:
    spec = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    found = re.fullmatch(r">=\s*(\d+\.\d+\.\d+)(-0)?", spec)
    assert found, f"unexpected kubeVersion {spec!r}"
    return found.group(1)


def objects(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def every_object() -> list[dict[str, Any]]:
    return [o for path in FILES for o in objects(path)]


def one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in every_object() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_manifests_are_there() -> None:
    kinds = {o["kind"] for o in every_object()}
    assert {"Namespace", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} <= kinds
    assert {"NetworkPolicy", "PriorityClass", "StorageClass", "LocalQueue"} <= kinds
    assert (MANIFESTS / "README.md").exists()


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_every_object_passes_strict_kubernetes_validation(path: Path) -> None:
    version = min_kube_version()
    assert version == "1.28.0"
    for obj in objects(path):
        if obj["apiVersion"].startswith("kueue.x-k8s.io/"):
            continue  # Kueue's CRDs: the next test
        kubernetes_validate.validate(copy.deepcopy(obj), version, strict=True)


def test_kueue_objects_pass_kueue_crds() -> None:
    schemas = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    kueue = [o for o in objects(KUEUE_FILE) if o["apiVersion"].startswith("kueue.x-k8s.io/")]
    assert {o["kind"] for o in kueue} >= {"ResourceFlavor", "ClusterQueue", "LocalQueue"}
    for obj in kueue:
        jsonschema.validate(obj, schemas[(obj["apiVersion"], obj["kind"])])


def test_the_jobs_priority_class_is_written_once() -> None:
    """30-kueue.yaml is generated from the values' platform document (its freshness is
    tests/deploy/test_kueue_manifest.py's); the jobs' PriorityClass is only there."""
    classes = [o for o in every_object() if o["kind"] == "PriorityClass"]
    assert [c["metadata"]["name"] for c in classes] == [CONFIG.jobs.priority_class]
    assert classes[0]["value"] == -100 and classes[0]["preemptionPolicy"] == "Never"


def test_the_jobs_namespace_is_the_platforms_with_pod_security_labels() -> None:
    namespace = one("Namespace", CONFIG.jobs.namespace)
    labels = namespace["metadata"]["labels"]
    offload = CONFIG.jobs.offload
    # offloaded jobs get a privileged JuiceFS sidecar and, with cvmfs "site", a hostPath volume:
    # `baseline` would refuse their pods (see 00-namespace.yaml)
    needs_privileged = offload.enabled and (offload.juicefs is not None or offload.cvmfs == "site")
    expected = "privileged" if needs_privileged else "baseline"
    assert labels["pod-security.kubernetes.io/enforce"] == expected
    assert labels["pod-security.kubernetes.io/warn"] == "baseline"
    assert labels["pod-security.kubernetes.io/audit"] == "baseline"
    namespaced = [o for o in every_object() if o["metadata"].get("namespace")]
    assert {o["metadata"]["namespace"] for o in namespaced} == {
        CONFIG.jobs.namespace,
        HUB_NAMESPACE,
    }
    in_hubs = {o["kind"] for o in namespaced if o["metadata"]["namespace"] == HUB_NAMESPACE}
    assert in_hubs == {"Role", "RoleBinding"}  # what the chart's Role lacks (12-hub-role.yaml)
    hubs = one("Namespace", HUB_NAMESPACE)["metadata"]["labels"]
    assert hubs["pod-security.kubernetes.io/enforce"] == "privileged"


def test_bunshins_role_grants_exactly_what_its_code_calls() -> None:
    needed, unknown = bunshin_rights()
    assert unknown == []
    role = one("Role", "aiinfn-bunshin")
    assert rules_rights(role["rules"]) == needed["jobs"]
    # the derivation sees the calls it should (it is not reading nothing)
    assert {("batch", "jobs", "create"), ("", "pods", "watch")} <= needed["jobs"]
    binding = one("RoleBinding", "aiinfn-bunshin")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "aiinfn-bunshin",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": HUB_ACCOUNT, "namespace": HUB_NAMESPACE}
    ]


def test_the_servers_namespace_rights_come_from_the_charts_role() -> None:
    """Bunshin reads the user's server pod in the servers' namespace (the hub's, in
    values.yaml): the chart's Role there must grant it, since no manifest here does."""
    needed, _ = bunshin_rights()
    chart = rendered("site")  # helm template of helm-values/values.yaml (skips without helm)
    (role,) = [o for o in chart if o["kind"] == "Role"]
    (binding,) = [o for o in chart if o["kind"] == "RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": HUB_ACCOUNT, "namespace": HUB_NAMESPACE}
    ]
    assert needed["servers"] <= rules_rights(role["rules"])


def test_the_only_cluster_wide_rights_are_what_the_hub_and_bunshin_list() -> None:
    hub, unknown = hub_cluster_rights()
    assert unknown == []
    bunshin, _ = bunshin_rights()
    assert hub >= {("", "nodes", "list"), ("", "pods", "watch")}
    (role,) = [o for o in every_object() if o["kind"] == "ClusterRole"]
    assert rules_rights(role["rules"]) == hub | bunshin["cluster"]
    (binding,) = [o for o in every_object() if o["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": HUB_ACCOUNT, "namespace": HUB_NAMESPACE}
    ]


def test_job_pods_take_no_connections_and_do_not_reach_the_hubs_namespace() -> None:
    policies = [o for o in every_object() if o["kind"] == "NetworkPolicy"]
    ingress = [p for p in policies if "Ingress" in p["spec"]["policyTypes"]]
    assert ingress and all(
        p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in ingress
    )
    (egress,) = [p for p in policies if "Egress" in p["spec"]["policyTypes"]]
    assert egress["spec"]["podSelector"] == {}
    for rule in egress["spec"]["egress"]:
        for peer in rule["to"]:
            if "namespaceSelector" in peer:
                (expression,) = peer["namespaceSelector"]["matchExpressions"]
                assert expression["key"] == "kubernetes.io/metadata.name"
                assert expression["operator"] == "NotIn"
                assert HUB_NAMESPACE in expression["values"]
            else:
                assert peer["ipBlock"]["except"], "the pod network must be left out"


def kubectl(emulator: Emulator, home: Path, *args: str, stdin: str = "") -> str:
    """Run kubectl against the emulator (its own kubeconfig and discovery cache)."""
    kubeconfig = emulator.write_kubeconfig(home / "kubeconfig")
    done = subprocess.run(
        ["kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"HOME": str(home), "KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on PATH")
def test_the_emulated_api_server_accepts_the_kinds_it_serves(tmp_path: Path) -> None:
    """What the README says an operator runs, against the emulator: Kueue's CRDs, then
    `kubectl apply -f helm-values/manifests/` and its examples, then the chart rendered with
    our values. Every object is created (or configured, for what the example cluster has
    already) and passes the server's checks: the Kueue objects are validated against the CRDs
    and get their defaults."""
    cluster = load_cluster_file(ROOT / "examples" / "cluster.yaml")
    with Emulator(cluster, state_dir=tmp_path / "state") as emulator:
        kubectl(emulator, tmp_path, "apply", "-f", str(CRDS))
        kubectl(
            emulator,
            tmp_path,
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "-f",
            str(CRDS),
        )
        applied = kubectl(emulator, tmp_path, "apply", "-f", str(MANIFESTS))
        applied += kubectl(emulator, tmp_path, "apply", "-f", str(MANIFESTS / "examples"))
        expected = {f"{o['kind'].lower()}/{o['metadata']['name']}" for o in every_object()}
        done = set()
        for line in applied.splitlines():
            resource, name = line.split()[0].split("/", 1)
            done.add(f"{resource.split('.')[0]}/{name}")  # role.rbac.authorization.k8s.io/x
        assert done == expected
        assert all(
            line.endswith((" created", " configured", " unchanged"))
            for line in applied.splitlines()
        )
        queue = json.loads(kubectl(emulator, tmp_path, "get", "clusterqueue", "pool", "-o", "json"))
        assert queue["spec"]["stopPolicy"] == "None"  # a default of Kueue's CRD
        assert queue["spec"]["flavorFungibility"]["whenCanBorrow"] == "MayStopSearch"
        served = kubectl(emulator, tmp_path, "get", "roles,networkpolicies", "-n", "bunshin")
        assert "role.rbac.authorization.k8s.io/aiinfn-bunshin" in served

        # then the chart itself, as `helm upgrade --install` would send it
        chart = rendered("site")
        chart_file = tmp_path / "chart.yaml"
        chart_file.write_text(yaml.safe_dump_all(chart))
        applied = kubectl(emulator, tmp_path, "apply", "-n", HUB_NAMESPACE, "-f", str(chart_file))
        assert len(applied.splitlines()) == len(chart)
        assert all(line.endswith(" created") for line in applied.splitlines()), applied
        hub = json.loads(
            kubectl(
                emulator, tmp_path, "get", "deployment", "hub", "-n", HUB_NAMESPACE, "-o", "json"
            )
        )
        assert hub["spec"]["template"]["spec"]["serviceAccountName"] == HUB_ACCOUNT
