"""The event overlay (helm-values/event.yaml) next to the site on one cluster: the command its
header gives makes the event's copies of helm-values/manifests/ (run here with the real sed),
and they, its Kueue objects and its platform document share no name, uid range or folder with
the site's that would let one deployment replace or reach the other's."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from bunshin_rbac import rules_rights
from test_helm_values import DEPLOYMENTS, min_kube_version
from test_kueue_manifest import values_platform
from test_manifests import kubectl

from aiinfn_hub.bunshin.kueue import kueue_objects
from aiinfn_hub.config import validate_platform_config
from aiinfn_hub.dev.emulator.cluster import load_cluster_file
from aiinfn_hub.dev.emulator.runtime import Emulator

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "helm-values" / "manifests"
VALUES = ROOT / "helm-values" / "values.yaml"
EVENT = ROOT / "helm-values" / "event.yaml"
SITE_NAMESPACE = DEPLOYMENTS["site"][1]
EVENT_NAMESPACE = DEPLOYMENTS["event"][1]
Key = tuple[str, str, str]  # kind, namespace ("" when cluster-wide), name


def header_command() -> str:
    """The shell command of event.yaml's header making the manifests, without `| kubectl
    apply -f -` (so it prints them)."""
    header = "".join(line[1:] + "\n" for line in EVENT.read_text().splitlines() if line[:1] == "#")
    found = re.search(r"^ +(for f in .*?)\| kubectl apply -f -$", header, re.M | re.S)
    assert found, "event.yaml's header no longer gives the command making the manifests"
    return found.group(1)


def test_the_deploy_guide_gives_the_same_command() -> None:
    """docs/deploy.md section 11.3 shows the command the header gives (and this file runs)."""
    doc = (ROOT / "docs" / "deploy.md").read_text().split("### 11.3", 1)[1]
    assert " ".join(header_command().split()) in " ".join(doc.split())


def key(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


@cache
def site_objects() -> list[dict[str, Any]]:
    return [
        o
        for path in sorted(MANIFESTS.glob("[0-2]*.yaml"))
        for o in yaml.safe_load_all(path.read_text())
        if o
    ]


@cache
def event_objects() -> list[dict[str, Any]]:
    if shutil.which("sed") is None or shutil.which("bash") is None:
        pytest.skip("sed and bash are needed")
    done = subprocess.run(
        ["bash", "-c", header_command()], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return [o for o in yaml.safe_load_all(done.stdout) if o]


def event_platform() -> dict[str, Any]:
    return values_platform(EVENT)


def test_the_event_gets_a_copy_of_every_manifest_under_its_own_names() -> None:
    site, event = site_objects(), event_objects()
    assert len(event) == len(site) and [o["kind"] for o in event] == [o["kind"] for o in site]
    # nothing of the event's replaces an object of the site's
    assert not {key(o) for o in event} & {key(o) for o in site}
    jobs_namespace = event_platform()["jobs"]["namespace"]
    namespaces = {o["metadata"]["name"] for o in event if o["kind"] == "Namespace"}
    assert namespaces == {EVENT_NAMESPACE, jobs_namespace}
    assert {o["metadata"]["namespace"] for o in event if "namespace" in o["metadata"]} <= namespaces
    for obj in event:
        kubernetes_validate.validate(copy.deepcopy(obj), min_kube_version(), strict=True)


def test_the_event_grants_its_own_hub_what_the_site_grants_its_hub() -> None:
    site, event = site_objects(), event_objects()
    names = {key(o) for o in event}
    for theirs, ours in zip(site, event, strict=True):
        if "rules" in theirs:
            assert rules_rights(ours["rules"]) == rules_rights(theirs["rules"])
        if "subjects" in theirs:
            assert ours["subjects"] == [
                {"kind": "ServiceAccount", "name": "hub", "namespace": EVENT_NAMESPACE}
            ]
            ref = ours["roleRef"]
            namespace = "" if ref["kind"] == "ClusterRole" else ours["metadata"]["namespace"]
            assert (ref["kind"], namespace, ref["name"]) in names
        if theirs["kind"] == "Namespace":
            assert ours["metadata"]["labels"] == theirs["metadata"]["labels"]


def test_the_events_job_pods_reach_neither_hub() -> None:
    (egress,) = [
        o
        for o in event_objects()
        if o["kind"] == "NetworkPolicy" and "Egress" in o["spec"]["policyTypes"]
    ]
    excluded = {
        value
        for rule in egress["spec"]["egress"]
        for peer in rule["to"]
        for expression in peer.get("namespaceSelector", {}).get("matchExpressions", [])
        if expression["operator"] == "NotIn"
        for value in expression["values"]
    }
    assert {SITE_NAMESPACE, EVENT_NAMESPACE} <= excluded


def test_the_events_kueue_objects_leave_the_sites_alone() -> None:
    site = {key(o): o for o in kueue_objects(validate_platform_config(values_platform(VALUES)))}
    event = kueue_objects(validate_platform_config(event_platform()))
    for obj in event:
        if key(obj) in site:  # shared cluster-wide objects must be the very same
            assert obj == site[key(obj)], key(obj)
            assert obj["kind"] in {"ResourceFlavor", "PriorityClass", "WorkloadPriorityClass"}
    queues = [o for o in event if o["kind"] == "ClusterQueue"]
    site_cohorts = {o["spec"]["cohortName"] for o in site.values() if o["kind"] == "ClusterQueue"}
    assert queues and not {o["spec"]["cohortName"] for o in queues} & site_cohorts


def test_the_events_users_share_no_uid_or_folder_with_the_sites() -> None:
    site, event = values_platform(VALUES)["storage"], event_platform()["storage"]
    assert site["nfs"]["server"] == event["nfs"]["server"]  # the same export...
    # ...its own folders (neither inside the other's)
    site_dirs = [site["nfs"]["homesDir"], site["nfs"]["projectsDir"], site["shared"]["dir"]]
    event_dirs = [event["nfs"]["homesDir"], event["nfs"]["projectsDir"], event["shared"]["dir"]]
    for mine in event_dirs:
        for theirs in site_dirs:
            assert not (f"{mine}/".startswith(f"{theirs}/") or f"{theirs}/".startswith(f"{mine}/"))
    # the environments are the site's, but nobody at the event may write them
    assert event["environments"]["dir"] == site["environments"]["dir"]
    assert not event["environments"].get("maintainersGroup")
    # uids apart: the event numbers its users from 1 (its own database)
    assert event["home"]["uidBase"] >= site["home"]["uidBase"] + 100000


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on PATH")
def test_both_apply_to_one_cluster_and_the_site_keeps_its_rights(tmp_path: Path) -> None:
    """The site's manifests, then the event's (as the header's command pipes them) into the
    emulated API server: all created, and the site's bindings still name the site's hub."""
    cluster = load_cluster_file(ROOT / "examples" / "cluster.yaml")
    event = "---\n".join(yaml.safe_dump(o) for o in event_objects())
    with Emulator(cluster, state_dir=tmp_path / "state") as emulator:
        for path in sorted(MANIFESTS.glob("[0-2]*.yaml")):
            kubectl(emulator, tmp_path, "apply", "-f", str(path))
        applied = kubectl(emulator, tmp_path, "apply", "-f", "-", stdin=event)
        assert [line.split()[-1] for line in applied.splitlines()] == ["created"] * len(
            event_objects()
        )
        for obj in site_objects():
            if "subjects" not in obj:
                continue
            kind, namespace, name = key(obj)
            where = ["-n", namespace] if namespace else []
            served = json.loads(
                kubectl(emulator, tmp_path, "get", kind.lower(), name, *where, "-o", "json")
            )
            assert served["subjects"] == obj["subjects"]
