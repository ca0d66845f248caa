"""Pure rules of the controllers as matrices: requests, taints, affinity, fit, scores, messages."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import make_node
from kubernetes_asyncio.client import ApiClient

from aiinfn_hub.dev.emulator.controllers import scheduling
from aiinfn_hub.dev.emulator.controllers.addresses import PodAddressPool
from aiinfn_hub.dev.emulator.controllers.environment import (
    ConfigError,
    command_line,
    container_environment,
    expand,
)
from aiinfn_hub.dev.emulator.controllers.events import build_event
from aiinfn_hub.dev.emulator.controllers.job_pods import (
    build_job_pod,
    format_indexes,
    parse_indexes,
)
from aiinfn_hub.dev.emulator.controllers.outcomes import Outcome
from aiinfn_hub.dev.emulator.controllers.pod_worker import go_duration
from aiinfn_hub.dev.emulator.controllers.podstatus import image_id, normalize_image
from aiinfn_hub.dev.emulator.controllers.scheduler import num_feasible_nodes_to_find

JSON = dict[str, Any]


# -- requests ----------------------------------------------------------------------------------
def _c(name: str, requests: JSON | None = None, limits: JSON | None = None, **kw: Any) -> JSON:
    return {"name": name, "resources": {"requests": requests or {}, "limits": limits or {}}, **kw}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"containers": [_c("a")]}, {"pods": 1}),
        (
            {"containers": [_c("a", {"cpu": "500m", "memory": "1Gi"}), _c("b", {"cpu": "1.5"})]},
            {"cpu": 2, "memory": 2**30, "pods": 1},
        ),
        # extended resources requested through limits only
        (
            {"containers": [_c("a", limits={"nvidia.com/gpu": "2"})]},
            {"nvidia.com/gpu": 2, "pods": 1},
        ),
        # the largest init container wins over the app sum
        (
            {"initContainers": [_c("i", {"cpu": "3"})], "containers": [_c("a", {"cpu": "1"})]},
            {"cpu": 3, "pods": 1},
        ),
        # a sidecar (restartable init container) adds to the app sum and to later inits
        (
            {
                "initContainers": [
                    _c("side", {"cpu": "1"}, restartPolicy="Always"),
                    _c("i", {"cpu": "2"}),
                ],
                "containers": [_c("a", {"cpu": "1"})],
            },
            {"cpu": 3, "pods": 1},
        ),
        (
            {"containers": [_c("a", {"cpu": "1"})], "overhead": {"cpu": "250m", "memory": "64Mi"}},
            {"cpu": Fraction(5, 4), "memory": 64 * 2**20, "pods": 1},
        ),
        (
            {"containers": [_c("a", limits={"nvidia.com/mig-1g.10gb": "1", "cpu": "2"})]},
            {"nvidia.com/mig-1g.10gb": 1, "pods": 1},
        ),
    ],
)
def test_pod_requests(spec: JSON, expected: JSON) -> None:
    assert scheduling.pod_requests(spec) == expected


def test_amounts_round_cpu_up_to_millicores() -> None:
    assert scheduling.to_amounts({"cpu": Fraction(1, 3000), "memory": "1Ki", "x": "0"}) == {
        "cpu": 1,
        "memory": 1024,
    }


# -- taints and tolerations ------------------------------------------------------------------------
RESERVED = {"key": "reserved", "value": "cms", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"key": "reserved", "operator": "Equal", "value": "cms"}, RESERVED, True),
        ({"key": "reserved", "value": "cms"}, RESERVED, True),  # Equal is the default
        ({"key": "reserved", "operator": "Equal", "value": "atlas"}, RESERVED, False),
        ({"key": "reserved", "operator": "Exists"}, RESERVED, True),
        ({"key": "reserved", "operator": "Exists", "effect": "NoExecute"}, RESERVED, False),
        ({"key": "reserved", "operator": "Exists", "effect": "NoSchedule"}, RESERVED, True),
        ({"operator": "Exists"}, RESERVED, True),  # empty key + Exists tolerates everything
        ({"operator": "Exists", "effect": "NoExecute"}, RESERVED, False),
        ({"key": "other", "operator": "Exists"}, RESERVED, False),
        ({"key": "k", "operator": "Equal"}, {"key": "k", "effect": "NoSchedule"}, True),
    ],
)
def test_toleration_matrix(toleration: JSON, taint: JSON, expected: bool) -> None:
    assert scheduling.tolerates([toleration], taint) is expected


# -- node affinity ---------------------------------------------------------------------------------
LABELS = {"gpu": "a100", "count": "4", "zone": "x"}


@pytest.mark.parametrize(
    ("operator", "key", "values", "expected"),
    [
        ("In", "gpu", ["t4", "a100"], True),
        ("In", "gpu", ["t4"], False),
        ("In", "missing", ["a"], False),
        ("NotIn", "gpu", ["t4"], True),
        ("NotIn", "gpu", ["a100"], False),
        ("NotIn", "missing", ["a"], True),
        ("Exists", "gpu", [], True),
        ("Exists", "missing", [], False),
        ("DoesNotExist", "missing", [], True),
        ("DoesNotExist", "gpu", [], False),
        ("Gt", "count", ["3"], True),
        ("Gt", "count", ["4"], False),
        ("Lt", "count", ["5"], True),
        ("Lt", "count", ["4"], False),
        ("Gt", "gpu", ["1"], False),  # not a number
        ("Gt", "missing", ["1"], False),
    ],
)
def test_match_expression_matrix(
    operator: str, key: str, values: list[str], expected: bool
) -> None:
    expr = {"key": key, "operator": operator, "values": values}
    assert scheduling.match_expression(expr, LABELS) is expected


def _required(*terms: JSON) -> JSON:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    }


def test_node_selection_terms_are_ored_and_expressions_anded() -> None:
    node = make_node("n1", labels=LABELS)
    a100 = {"key": "gpu", "operator": "In", "values": ["a100"]}
    zone_y = {"key": "zone", "operator": "In", "values": ["y"]}
    assert scheduling.matches_node_selection(_required({"matchExpressions": [a100]}), node)
    assert not scheduling.matches_node_selection(
        _required({"matchExpressions": [a100, zone_y]}), node
    )
    assert scheduling.matches_node_selection(
        _required({"matchExpressions": [zone_y]}, {"matchExpressions": [a100]}), node
    )
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    assert scheduling.matches_node_selection(_required(by_name), node)
    not_name = {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}
    assert not scheduling.matches_node_selection(_required(not_name), node)
    assert not scheduling.matches_node_selection(_required({}), node)  # empty term: nothing
    assert scheduling.matches_node_selection({"nodeSelector": {"gpu": "a100"}}, node)
    assert not scheduling.matches_node_selection({"nodeSelector": {"gpu": "t4"}}, node)


def test_preferred_affinity_sums_matching_weights() -> None:
    node = make_node("n1", labels=LABELS)
    spec = {
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 30,
                        "preference": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                    },
                    {
                        "weight": 5,
                        "preference": {
                            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]
                        },
                    },
                    {
                        "weight": 60,
                        "preference": {
                            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["y"]}]
                        },
                    },
                ]
            }
        }
    }
    assert scheduling.preferred_affinity_score(spec, node) == 35


# -- the filter as kube-scheduler words it -----------------------------------------------------
@pytest.mark.parametrize(
    ("node_kw", "spec", "reasons", "resolvable"),
    [
        ({}, {}, [], True),
        ({"unschedulable": True}, {}, ["node(s) were unschedulable"], False),
        (
            {"unschedulable": True},
            {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]},
            [],
            True,
        ),
        ({"taints": [RESERVED]}, {}, ["node(s) had untolerated taint {reserved: cms}"], False),
        ({"taints": [{"key": "soft", "effect": "PreferNoSchedule"}]}, {}, [], True),
        (
            {"taints": [{"key": "evict", "effect": "NoExecute"}]},
            {},
            ["node(s) had untolerated taint {evict: }"],
            False,
        ),
        (
            {"ready": False},
            {},
            ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"],
            False,
        ),
        (
            {},
            {"nodeSelector": {"gpu": "t4"}},
            ["node(s) didn't match Pod's node affinity/selector"],
            False,
        ),
        # taints are checked before affinity, like the default plugin order
        (
            {"taints": [RESERVED]},
            {"nodeSelector": {"gpu": "t4"}},
            ["node(s) had untolerated taint {reserved: cms}"],
            False,
        ),
        (
            {},
            {"containers": [_c("a", {"cpu": "6", "memory": "40Gi"}, {"nvidia.com/gpu": "1"})]},
            ["Insufficient cpu", "Insufficient memory", "Insufficient nvidia.com/gpu"],
            False,
        ),
        ({"capacity": {"pods": "2"}}, {}, ["Too many pods"], True),
    ],
)
def test_filter_reasons(node_kw: JSON, spec: JSON, reasons: list[str], resolvable: bool) -> None:
    capacity = node_kw.pop("capacity", {})
    node = make_node("n1", {"cpu": "8", "memory": "32Gi", **capacity}, **node_kw)
    spec = {"containers": [_c("a")], **spec}
    used = {"cpu": 4, "memory": "1Gi", "pods": 2}
    assert scheduling.filter_reasons(spec, node, used, scheduling.pod_requests(spec)) == reasons
    verdict = scheduling.filter_node(
        spec,
        scheduling.to_amounts(scheduling.pod_requests(spec)),
        node,
        scheduling.node_allocatable(node),
        scheduling.to_amounts(used),
    )
    assert verdict.fits is (not reasons)
    assert verdict.resolvable is resolvable


def test_resources_freed_by_others_count_and_bigger_than_node_is_unresolvable() -> None:
    node = make_node("n1", {"nvidia.com/gpu": "2"})
    spec = {"containers": [_c("a", limits={"nvidia.com/gpu": "1"})]}
    requests = scheduling.to_amounts(scheduling.pod_requests(spec))
    alloc = scheduling.node_allocatable(node)
    assert scheduling.filter_node(spec, requests, node, alloc, {"nvidia.com/gpu": 1}).fits
    full = scheduling.filter_node(spec, requests, node, alloc, {"nvidia.com/gpu": 2})
    assert full.reasons == ("Insufficient nvidia.com/gpu",) and full.resolvable
    huge = {"nvidia.com/gpu": 3, "pods": 1}
    assert not scheduling.filter_node(spec, huge, node, alloc, {}).resolvable


def test_scores_prefer_untainted_then_affinity_then_free_room() -> None:
    spec: JSON = {"containers": [_c("a", {"cpu": "1", "memory": "1Gi"})]}
    requests = scheduling.to_amounts(scheduling.pod_requests(spec))
    plain = make_node("a")
    soft = make_node("b", taints=[{"key": "s", "effect": "PreferNoSchedule"}])
    alloc = scheduling.node_allocatable(plain)
    empty = scheduling.node_score(spec, requests, plain, alloc, {})
    busy = scheduling.node_score(spec, requests, plain, alloc, {"cpu": 4000, "memory": 16 * 2**30})
    tainted = scheduling.node_score(spec, requests, soft, alloc, {})
    assert empty > busy > tainted
    assert scheduling.least_allocated_score(requests, alloc, {}) == 91  # (87 + 96) // 2
    # pods without requests are scored with the non-zero defaults (100m, 200Mi)
    assert scheduling.least_allocated_score({"pods": 1}, alloc, {}) == 98


def test_unschedulable_message_is_sorted_like_the_fit_error() -> None:
    reasons = Counter(
        {
            "node(s) didn't match Pod's node affinity/selector": 2,
            "Insufficient nvidia.com/gpu": 1,
            "node(s) had untolerated taint {reserved: cms}": 1,
        }
    )
    message = scheduling.unschedulable_message(
        4, reasons, scheduling.preemption_message(4, not_helpful=4, no_victims=0)
    )
    assert message == (
        "0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint "
        "{reserved: cms}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 "
        "nodes are available: 4 Preemption is not helpful for scheduling."
    )
    assert scheduling.preemption_message(3, 1, 2) == (
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod."
    )


@pytest.mark.parametrize(
    ("nodes", "expected"), [(1, 1), (99, 99), (100, 100), (500, 230), (5000, 500), (50000, 2500)]
)
def test_sample_size_for_large_clusters(nodes: int, expected: int) -> None:
    assert num_feasible_nodes_to_find(nodes) == expected


# -- environment -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "a"),
        ("x-$(A)-$(B)", "x-a-$(B)"),  # undefined stays as written
        ("$$(A)", "$(A)"),  # $$ escapes
        ("$$$(A)", "$a"),
        ("cost $5", "cost $5"),
        ("tail $", "tail $"),
        ("$(A", "$(A"),  # unclosed reference stays, scanning goes on
        ("$(A$(A)", "$(A$(A)"),
        ("$()", "$()"),
    ],
)
def test_expansion_matrix(text: str, expected: str) -> None:
    assert expand(text, {"A": "a"}) == expected


def _pod_for_env() -> JSON:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u-1",
            "labels": {"app": "nb"},
            "annotations": {"note": "hi"},
        },
        "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
        "status": {"podIP": "127.0.0.9", "podIPs": [{"ip": "127.0.0.9"}], "hostIP": "127.1.0.1"},
    }


def test_environment_from_fields_resources_secrets_and_config_maps() -> None:
    objects = {
        ("Secret", "ns", "s"): {"kind": "Secret", "data": {"token": "c2VjcmV0"}},
        ("ConfigMap", "ns", "cm"): {"kind": "ConfigMap", "data": {"MODE": "fast", "bad key": "x"}},
    }
    container = {
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "NOTE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}},
            },
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {
                "name": "REQ_M",
                "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
            },
            {
                "name": "GPU",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.nvidia.com/gpu"}},
            },
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}},
            },
            {"name": "URL", "value": "http://$(IP):8888/$(CM_MODE)/$(OPT)"},
        ],
        "command": ["serve", "--ip=$(IP)"],
        "args": ["$(NAME)", "$$(NAME)"],
    }
    env = container_environment(
        _pod_for_env(),
        container,
        lambda kind, ns, name: objects.get((kind, ns, name)),
        {"nvidia.com/gpu": "4"},
    )
    assert env == {
        "CM_MODE": "fast",
        "NAME": "p",
        "NS": "ns",
        "UID": "u-1",
        "APP": "nb",
        "NOTE": "hi",
        "NODE": "n1",
        "SA": "sa",
        "IP": "127.0.0.9",
        "IPS": "127.0.0.9",
        "HOST": "127.1.0.1",
        "CPU": "2",
        "MEM_MI": "1024",
        "REQ_M": "500",
        "GPU": "4",  # an unset limit reads as the node's allocatable
        "TOKEN": "secret",
        "URL": "http://127.0.0.9:8888/fast/$(OPT)",
    }
    assert command_line(container, env) == ["serve", "--ip=127.0.0.9", "p", "$(NAME)"]
    # no image entrypoint here: args alone are the command line, nothing at all is nothing
    assert command_line({"args": ["run", "$(NAME)"]}, env) == ["run", "p"]
    assert command_line({}, env) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
        ({"configMapKeyRef": {"name": "cm", "key": "k"}}, "couldn't find key k in ConfigMap ns/cm"),
    ],
)
def test_missing_references_are_config_errors(env: JSON, message: str) -> None:
    objects = {("ConfigMap", "ns", "cm"): {"kind": "ConfigMap", "data": {}}}
    container = {"env": [{"name": "X", "valueFrom": env}]}
    with pytest.raises(ConfigError, match=re.escape(message)):
        container_environment(_pod_for_env(), container, lambda k, ns, n: objects.get((k, ns, n)))


# -- small builders ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "normalized"),
    [
        ("python:3.11", "docker.io/library/python:3.11"),
        ("busybox", "docker.io/library/busybox:latest"),
        ("jupyter/base-notebook:2024", "docker.io/jupyter/base-notebook:2024"),
        ("harbor.example.org/ai/nb:1", "harbor.example.org/ai/nb:1"),
        ("localhost:5000/nb", "localhost:5000/nb:latest"),
    ],
)
def test_image_names_are_normalized_like_the_runtime(image: str, normalized: str) -> None:
    assert normalize_image(image) == normalized
    assert re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", image_id(image))


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (0.25, "250ms"), (1.5, "1.5s"), (61, "1m1s"), (2, "2s")]
)
def test_durations_print_like_go(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_outcomes_from_annotations() -> None:
    key = "emulator.aiinfn.dev/outcome"
    assert Outcome.from_annotations({}) is None
    assert Outcome.from_annotations({key: "bogus"}) is None
    fail = Outcome.from_annotations(
        {
            key: "fail",
            "emulator.aiinfn.dev/outcome-after": "1.5",
            "emulator.aiinfn.dev/exit-code": "7",
        }
    )
    assert fail == Outcome("fail", 1.5, 7) and fail.code == 7 and fail.ends
    assert Outcome("succeed").code == 0 and Outcome("fail").code == 1
    assert not Outcome("run").ends
    with pytest.raises(ValueError, match="unknown outcome"):
        Outcome("explode")


def test_pod_addresses_are_unique_loopback_addresses(tmp_path: Path) -> None:
    pool = PodAddressPool(tmp_path)
    addresses = [pool.allocate(f"pod-{i}") for i in range(600)]
    assert len(set(addresses)) == 600
    assert addresses[0] == f"127.{pool.network}.0.1"
    assert all(not a.endswith((".0", ".255")) for a in addresses)
    assert all(not a.startswith(("127.0.", "127.1.")) for a in addresses)  # host's, nodes'
    assert pool.allocate("pod-3") == addresses[3]  # stable per owner
    pool.release("pod-3")
    assert len(pool) == 599 and pool.allocate("again") not in addresses[:600]
    pool.close()


def test_emulators_side_by_side_never_share_a_pod_network(tmp_path: Path) -> None:
    """Each live pool holds its /16 (a lock another process sees too); a closed one frees it."""
    first, second = PodAddressPool(tmp_path), PodAddressPool(tmp_path)
    assert first.network != second.network
    claim = (
        "import sys; from pathlib import Path; "
        "from aiinfn_hub.dev.emulator.controllers.addresses import PodAddressPool; "
        "print(PodAddressPool(Path(sys.argv[1])).network)"
    )
    other = subprocess.run(
        [sys.executable, "-c", claim, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert int(other.stdout) not in (first.network, second.network)
    taken = first.network
    first.close()
    again = [PodAddressPool(tmp_path) for _ in range(3)]
    assert taken in {p.network for p in again}  # given back: claimable again
    for pool in (second, *again):
        pool.close()


def test_completed_indexes_round_trip() -> None:
    assert format_indexes({5, 0, 1, 2, 7, 8}) == "0-2,5,7-8"
    assert format_indexes(set()) == ""
    assert parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert parse_indexes(None) == set()


def test_job_pods_carry_owner_labels_finalizer_and_index() -> None:
    job: JSON = {
        "metadata": {"name": "train", "namespace": "ml", "uid": "j-1"},
        "spec": {
            "template": {
                "metadata": {"labels": {"job-name": "train"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            }
        },
    }
    pod = build_job_pod(job, 2)
    meta = pod["metadata"]
    assert meta["generateName"] == "train-2-" and meta["namespace"] == "ml"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "train",
            "uid": "j-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    assert meta["annotations"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert meta["labels"] == {"job-name": "train", "batch.kubernetes.io/job-completion-index": "2"}
    assert pod["spec"]["hostname"] == "train-2"
    assert pod["spec"]["containers"][0]["env"][0]["name"] == "JOB_COMPLETION_INDEX"
    assert "env" not in job["spec"]["template"]["spec"]["containers"][0]  # template untouched
    assert build_job_pod(job, None)["metadata"]["generateName"] == "train-"


async def test_events_are_built_like_the_recorder_and_fit_the_client_model() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nb", "namespace": "hub", "uid": "u-1", "resourceVersion": "42"},
    }
    event = build_event(
        pod,
        reason="Started",
        message="Started container notebook",
        component="kubelet",
        host="server-1",
        field_path="spec.containers{notebook}",
    )
    assert re.fullmatch(r"nb\.[0-9a-f]{16}", event["metadata"]["name"])
    assert event["metadata"]["namespace"] == "hub"
    assert event["involvedObject"] == {
        "kind": "Pod",
        "namespace": "hub",
        "name": "nb",
        "uid": "u-1",
        "apiVersion": "v1",
        "resourceVersion": "42",
        "fieldPath": "spec.containers{notebook}",
    }
    assert event["source"] == {"component": "kubelet", "host": "server-1"}
    assert event["count"] == 1 and event["eventTime"] is None and event["type"] == "Normal"
    assert event["firstTimestamp"] == event["lastTimestamp"]
    assert (event["reportingComponent"], event["reportingInstance"]) == ("kubelet", "server-1")
    node_event = build_event(
        {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1", "uid": "x"}},
        reason="R",
        message="m",
        component="c",
    )
    assert node_event["metadata"]["namespace"] == "default"  # cluster-scoped objects
    stored = {**event, "metadata": {**event["metadata"], "uid": "e", "resourceVersion": "1"}}
    async with ApiClient() as api:
        typed = api._ApiClient__deserialize(stored, "CoreV1Event")
    assert typed.involved_object.field_path == "spec.containers{notebook}"
