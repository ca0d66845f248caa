"""One placement for every consumer: notebook pods, Bunshin jobs, the inventory and Kueue agree.

Each accelerator model puts a notebook, a job's pods and its Kueue flavour on the same node
labels, with the same tolerations, and the nodes the inventory counts for it are exactly those
such a pod can land on. The virtual-node taint a site configures is the one jobs tolerate, the
one Kueue's interLink flavour declares and the one that keeps the spawn form off those nodes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from aiinfn_hub.bunshin.job import job_manifest
from aiinfn_hub.bunshin.kueue import VIRTUAL_FLAVOR, kueue_objects
from aiinfn_hub.bunshin.policy import JobPlan
from aiinfn_hub.config import Accelerator, PlatformConfig, load_platform_config
from aiinfn_hub.dev.emulator.cluster import initial_objects, load_cluster_file
from aiinfn_hub.inventory.availability import accelerator_availability, node_usage
from aiinfn_hub.platform.entitlements import UserContext
from aiinfn_hub.spawner.options import validate_options
from aiinfn_hub.spawner.pod_settings import pod_settings

NOTHING_HELD = node_usage([])  # an empty cluster's usage
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = load_platform_config(EXAMPLES / "platform.yaml")
NODES = [
    o for o in initial_objects(load_cluster_file(EXAMPLES / "cluster.yaml")) if o["kind"] == "Node"
]
ADMIN = UserContext("ada", frozenset({"ml-infn"}))


def _job_plan(model: Accelerator | None, offload: bool = False) -> JobPlan:
    return JobPlan(
        user="ada", project="ml-infn", server="", source_pod="jupyter-ada", source_uid="u",
        image="harbor.cloud.infn.it/ai-infn/cuda-ml:2026.11", command=["x"], working_dir=None,
        env=[], cpu=1.0, memory="4Gi", accelerator=model, count=1 if model else 0,
        completions=1, parallelism=1, max_runtime_seconds=60, offload=offload, volumes=[],
        mounts=[], sandbox={}, security_context={}, supplemental_gids=[],
    )  # fmt: skip


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """Kubernetes' rule: a toleration matches a taint by key, effect and (Equal) value."""
    for t in tolerations:
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value") == taint.get("value"):
            return True
    return False


def _fits(labels: dict[str, str], terms: list[dict[str, Any]]) -> bool:
    return any(
        all(labels.get(e["key"]) in e["values"] for e in term["matchExpressions"]) for term in terms
    )


@pytest.mark.parametrize("model", CONFIG.accelerators, ids=lambda m: m.name)
def test_notebooks_jobs_kueue_and_the_inventory_place_a_model_alike(model: Accelerator) -> None:
    free = accelerator_availability(CONFIG, NODES, NOTHING_HELD)
    image = "base" if model.kind == "fpga" else "cuda-ml"
    choice = validate_options({"image": image, "accelerator": model.name}, CONFIG, ADMIN, free)
    notebook = pod_settings(choice, CONFIG, ADMIN, priority_class=None)
    job = job_manifest(_job_plan(model), CONFIG, "bunshin-ada-x")["spec"]["template"]["spec"]
    flavors = {
        o["metadata"]["name"]: o for o in kueue_objects(CONFIG) if o["kind"] == "ResourceFlavor"
    }
    flavor = flavors[f"{model.kind}-{model.name}"]
    # one set of node labels
    assert job.get("nodeSelector", {}) == flavor["spec"]["nodeLabels"] == model.node_selector
    affinity = notebook["node_affinity_required"]
    landing = {
        n["metadata"]["name"]
        for n in NODES
        if model.resource in n["status"].get("allocatable", {})
        and (not affinity or _fits(n["metadata"]["labels"], affinity))
    }
    counted = next(m for m in free if m.name == model.name)
    assert landing and {s.node for s in counted.servers} == landing
    # one set of tolerations for the model (a notebook adds its projects' reservations)
    model_tolerations = [t for t in notebook["tolerations"] if t["key"] != "reserved"]
    assert model_tolerations == job.get("tolerations", [])


def test_the_configured_virtual_node_taint_is_one_rule_everywhere() -> None:
    offload = CONFIG.jobs.offload.model_copy(
        update={"taint_key": "example.org/offsite", "node_selector": {"example.org/site": "leo"}}
    )
    site: PlatformConfig = CONFIG.model_copy(
        update={"jobs": CONFIG.jobs.model_copy(update={"offload": offload})}
    )
    job = job_manifest(_job_plan(None, offload=True), site, "bunshin-ada-y")
    spec = job["spec"]["template"]["spec"]
    flavors = {
        o["metadata"]["name"]: o for o in kueue_objects(site) if o["kind"] == "ResourceFlavor"
    }
    flavor = flavors[VIRTUAL_FLAVOR]
    taint = flavor["spec"]["nodeTaints"][0]
    assert taint["key"] == "example.org/offsite" and _tolerates(spec["tolerations"], taint)
    assert flavor["spec"]["nodeLabels"] == {"example.org/site": "leo"}
    # offloaded (local first): anywhere, local nodes preferred, the virtual ones allowed
    assert "nodeSelector" not in spec
    preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"] == [
        {"key": "example.org/site", "operator": "NotIn", "values": ["leo"]}
    ]
    # on virtual nodes only: the flavour's labels are the pods' node selector
    remote = site.model_copy(
        update={
            "jobs": site.jobs.model_copy(
                update={"offload": offload.model_copy(update={"local_first": False})}
            )
        }
    )
    spec = job_manifest(_job_plan(None, offload=True), remote, "bunshin-ada-z")["spec"]
    spec = spec["template"]["spec"]
    assert spec["nodeSelector"] == flavor["spec"]["nodeLabels"]
    assert _tolerates(spec["tolerations"], taint)
    # a node carrying that taint is never offered to notebooks
    virtual = copy.deepcopy(
        next(n for n in NODES if "nvidia.com/gpu" in n["status"]["allocatable"])
    )
    virtual["metadata"]["name"] = "vk-leo"
    virtual["spec"]["taints"] = [taint]
    before = {m.name: m.total for m in accelerator_availability(site, NODES, NOTHING_HELD)}
    after = {
        m.name: m.total for m in accelerator_availability(site, [*NODES, virtual], NOTHING_HELD)
    }
    assert before == after
    # and a notebook never tolerates it
    choice = validate_options({}, site, ADMIN, [])
    assert not _tolerates(
        pod_settings(choice, site, ADMIN, priority_class=None)["tolerations"], taint
    )
