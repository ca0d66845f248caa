"""The generated Kueue objects against Kueue's own CRDs (v0.19.2, ``tests/data/kueue-crds``,
Apache-2.0): the storage version's OpenAPI schema of each kind, as the API server checks it
at ``kubectl apply`` (the CEL rules are ``check_kueue``'s)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from aiinfn_hub.bunshin.kueue import (
    VIRTUAL_FLAVOR,
    check_kueue,
    kueue_objects,
    virtual_accelerator_flavor,
)
from aiinfn_hub.config import PlatformConfig, load_platform_config

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "data" / "kueue-crds"
CONFIG = load_platform_config(ROOT / "examples" / "platform.yaml")


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the OpenAPI schema the CRD serves for it."""
    found = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            found[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return found


SCHEMAS = _schemas()


def _with_offload(config: PlatformConfig, **update: Any) -> PlatformConfig:
    offload = config.jobs.offload.model_copy(update=update)
    return config.model_copy(update={"jobs": config.jobs.model_copy(update={"offload": offload})})


@pytest.mark.parametrize(
    "config",
    [CONFIG, _with_offload(CONFIG, accelerators={}), _with_offload(CONFIG, enabled=False)],
    ids=["example", "no-virtual-gpus", "no-offloading"],
)
def test_every_kueue_object_matches_its_crd(config: PlatformConfig) -> None:
    objects = [o for o in kueue_objects(config) if o["apiVersion"].startswith("kueue.x-k8s.io/")]
    assert {o["kind"] for o in objects} >= {"ResourceFlavor", "ClusterQueue", "LocalQueue"}
    for obj in objects:
        jsonschema.validate(obj, SCHEMAS[(obj["apiVersion"], obj["kind"])])
    assert check_kueue(kueue_objects(config)) == []


def test_the_schema_check_is_not_a_formality() -> None:
    pool = next(o for o in kueue_objects(CONFIG) if o["metadata"]["name"] == "pool")
    broken = copy.deepcopy(pool)
    broken["spec"]["queueingStrategy"] = "Whenever"
    with pytest.raises(jsonschema.ValidationError, match="Whenever"):
        jsonschema.validate(broken, SCHEMAS[(pool["apiVersion"], "ClusterQueue")])


def test_offloaded_gpu_work_falls_back_to_the_virtual_flavour_last() -> None:
    """Kueue tries a resource group's flavours in order: the local models, then the virtual
    nodes' flavour of that resource with the configured quota."""
    objects = kueue_objects(CONFIG)
    pool = next(o for o in objects if o["metadata"]["name"] == "pool")
    gpu = next(
        g for g in pool["spec"]["resourceGroups"] if g["coveredResources"] == ["nvidia.com/gpu"]
    )
    virtual = virtual_accelerator_flavor("nvidia.com/gpu")
    assert virtual == "interlink-nvidia-com-gpu"
    assert gpu["flavors"][-1] == {
        "name": virtual,
        "resources": [{"name": "nvidia.com/gpu", "nominalQuota": "4"}],
    }
    flavors = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ResourceFlavor"}
    assert flavors[virtual]["spec"] == flavors[VIRTUAL_FLAVOR]["spec"]
    assert flavors[virtual]["spec"]["nodeTaints"][0]["key"] == CONFIG.jobs.offload.taint_key
    # a resource the virtual nodes do not offer gets no virtual flavour
    fpga = next(
        g
        for g in pool["spec"]["resourceGroups"]
        if "nvidia.com/gpu" not in g["coveredResources"]
        and g["coveredResources"] != ["cpu", "memory"]
    )
    assert not any(f["name"].startswith(VIRTUAL_FLAVOR) for f in fpga["flavors"])
    # nor any resource without offloading
    off = kueue_objects(_with_offload(CONFIG, enabled=False))
    assert virtual not in {o["metadata"]["name"] for o in off if o["kind"] == "ResourceFlavor"}
