"""The hub's rights = what its code calls: the chart's Role `hub` (written for kubespawner's
own calls) plus helm-values/manifests/12-hub-role.yaml in the servers' namespace, and
11-hub-clusterrole.yaml cluster-wide, grant the calls bunshin_rbac reads from the hub's code
(spawner, inventory) and from Bunshin's; 12-hub-role.yaml adds only what the chart's Role
lacks, and nothing is cluster-wide that the code does not do cluster-wide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from bunshin_rbac import Right, bunshin_rights, hub_calls, hub_rights, rules_rights
from test_helm_values import DEPLOYMENTS, rendered

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "helm-values" / "manifests"
RELEASE, NAMESPACE, _ = DEPLOYMENTS["site"]  # the servers' namespace is the release's
HUB_SUBJECT = {"kind": "ServiceAccount", "name": "hub", "namespace": NAMESPACE}


def manifest_objects() -> list[dict[str, Any]]:
    return [
        o
        for path in sorted(MANIFESTS.glob("*.yaml"))
        for o in yaml.safe_load_all(path.read_text())
        if o
    ]


def chart_role_rights() -> set[Right]:
    """The chart's Role `hub` in the release's namespace, bound to the hub's ServiceAccount."""
    chart = rendered("site")  # helm template of helm-values/values.yaml (skips without helm)
    (role,) = [o for o in chart if o["kind"] == "Role"]
    (binding,) = [o for o in chart if o["kind"] == "RoleBinding"]
    assert binding["subjects"] == [HUB_SUBJECT]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    return rules_rights(role["rules"])


def servers_needs() -> set[Right]:
    hub, unknown = hub_rights()
    assert unknown == []
    bunshin, unknown = bunshin_rights()
    assert unknown == []
    return hub["servers"] | bunshin["servers"]


def test_the_derivation_sees_the_spawners_and_the_inventorys_calls() -> None:
    """It reads what it should (not nothing): the spawner's Secret replacement, its log reads
    and its PriorityClass read, the inventory's informers."""
    hub, unknown = hub_rights()
    assert unknown == []
    assert {("", "secrets", "update"), ("", "pods/log", "get")} <= hub["servers"]
    assert {("", "secrets", "create"), ("", "secrets", "delete")} <= hub["servers"]
    assert ("scheduling.k8s.io", "priorityclasses", "get") in hub["cluster"]
    assert {("", "nodes", "watch"), ("", "pods", "list"), ("", "pods", "watch")} <= hub["cluster"]


def test_the_derivation_names_what_it_cannot_read() -> None:
    """A new call it cannot place fails the tests instead of going unnoticed."""
    source = """
from aiinfn_hub.kube.rest import KubeRest
class Spawner:
    async def work(self, core, other):
        await self.api.create_namespaced_config_map(self.namespace, {})
        await self.api.read_namespaced_pod("x", other)
        await self.api.list_namespaced_event(self.namespace)
        Informer("nodes", core.delete_node)
        Informer("services", core.list_service_for_all_namespaces)
"""
    found, unknown = hub_calls(source, "new.py")
    assert found == [
        ("servers", ("", "configmaps", "create")),
        ("cluster", ("", "services", "list")),
        ("cluster", ("", "services", "watch")),
    ]
    assert [u.split()[0] for u in unknown] == ["new.py:2", "new.py:6", "new.py:7", "new.py:8"]
    assert "KubeRest" in unknown[0] and "which namespace" in unknown[1]
    assert "ambiguous" in unknown[2] and "not called" in unknown[3]


def test_the_charts_role_and_ours_grant_the_servers_namespace_calls() -> None:
    needed = servers_needs()
    objects = manifest_objects()
    roles = [o for o in objects if o["kind"] == "Role" and o["metadata"]["namespace"] == NAMESPACE]
    (role,) = roles
    ours = rules_rights(role["rules"])
    chart = chart_role_rights()
    assert needed <= chart | ours
    # only what the chart's Role lacks, nothing the code does not call
    assert ours == needed - chart
    assert ours  # the chart's Role is not enough on its own (what issue 15 found)
    (binding,) = [
        o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == NAMESPACE
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [HUB_SUBJECT]


def test_cluster_wide_rights_are_only_the_cluster_wide_calls() -> None:
    hub, _ = hub_rights()
    bunshin, _ = bunshin_rights()
    objects = manifest_objects()
    (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    assert rules_rights(role["rules"]) == hub["cluster"] | bunshin["cluster"]
    # every cluster-wide right is a read
    assert {verb for _, _, verb in rules_rights(role["rules"])} <= {"get", "list", "watch"}
    (binding,) = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [HUB_SUBJECT]
    # no namespaced right of the servers' namespace is granted cluster-wide
    assert not rules_rights(role["rules"]) & servers_needs() - hub["cluster"]
