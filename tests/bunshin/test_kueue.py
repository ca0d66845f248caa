"""The platform's Kueue objects, generated from the configuration."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import requests
import yaml

from aiinfn_hub.bunshin.kueue import check_kueue, kueue_objects
from aiinfn_hub.config import PlatformConfigError, load_platform_config, validate_platform_config
from aiinfn_hub.dev.emulator.resources import collection_path
from aiinfn_hub.dev.emulator.runtime import Emulator

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_platform_config(ROOT / "examples" / "platform.yaml")


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_flavors_per_model_queues_per_project_and_a_pool() -> None:
    objects = kueue_objects(CONFIG)
    assert check_kueue(objects) == []
    flavors = by_kind(objects, "ResourceFlavor")
    assert flavors["gpu-t4"]["spec"]["nodeLabels"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert flavors["interlink"]["spec"]["nodeTaints"][0]["key"] == (
        "virtual-node.interlink/no-schedule"
    )
    assert {"mig-a100-1g-10gb", "fpga-u250", "default"} <= set(flavors)
    queues = by_kind(objects, "ClusterQueue")
    assert set(queues) == {"pool"} | {f"project-{p}" for p in CONFIG.projects}
    assert {q["spec"]["cohortName"] for q in queues.values()} == {"aiinfn"}
    gpu_group = next(
        g
        for g in queues["pool"]["spec"]["resourceGroups"]
        if g["coveredResources"] == ["nvidia.com/gpu"]
    )
    expected = [f"gpu-{a.name}" for a in CONFIG.accelerators if a.resource == "nvidia.com/gpu"]
    assert len(expected) == 4  # then the virtual nodes' (test_kueue_schema)
    assert [f["name"] for f in gpu_group["flavors"]] == [*expected, "interlink-nvidia-com-gpu"]
    local = by_kind(objects, "LocalQueue")
    assert local["cms"]["spec"]["clusterQueue"] == "project-cms"
    assert local["cms"]["metadata"]["namespace"] == CONFIG.jobs.namespace
    (priority,) = by_kind(objects, "PriorityClass").values()
    assert priority["value"] < 0 and priority["preemptionPolicy"] == "Never"
    kubernetes_validate.validate(copy.deepcopy(priority), "1.33.0", strict=True)


def test_check_finds_what_kueue_would_refuse() -> None:
    objects = kueue_objects(CONFIG)
    pool = by_kind(objects, "ClusterQueue")["pool"]
    pool["spec"]["resourceGroups"][0]["flavors"][0]["resources"].reverse()
    pool["spec"]["resourceGroups"][1]["flavors"][0]["resources"][0]["nominalQuota"] = "lots"
    by_kind(objects, "LocalQueue")["cms"]["spec"]["clusterQueue"] = "nowhere"
    objects.append(copy.deepcopy(pool))
    gpu = next(
        g for g in pool["spec"]["resourceGroups"] if "nvidia.com/gpu" in g["coveredResources"]
    )
    gpu["flavors"].append(copy.deepcopy(pool["spec"]["resourceGroups"][0]["flavors"][0]))
    problems = check_kueue(objects)
    assert any("a flavor is in two resource groups" in p for p in problems)
    assert any("must list exactly ['cpu', 'memory']" in p for p in problems)
    assert any("nominalQuota 'lots'" in p for p in problems)
    assert any("unknown ClusterQueue nowhere" in p for p in problems)
    assert any("ClusterQueue/pool: defined twice" in p for p in problems)


def test_the_emulated_api_server_accepts_every_object(example_cluster: Any, tmp_path: Path) -> None:
    with Emulator(example_cluster, state_dir=tmp_path) as emulator:
        requests.post(
            f"{emulator.url}/api/v1/namespaces",
            json={
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": CONFIG.jobs.namespace},
            },
            headers=emulator.auth_headers,
            verify=emulator.ca_file,
            timeout=10,
        )
        for obj in kueue_objects(CONFIG):
            if obj["kind"] == "PriorityClass":
                continue  # the example cluster defines it already
            path = collection_path(obj)
            assert path is not None, (
                f"the emulator does not serve {obj['apiVersion']} {obj['kind']}"
            )
            response = requests.post(
                f"{emulator.url}{path}",
                json=obj,
                headers=emulator.auth_headers,
                verify=emulator.ca_file,
                timeout=10,
            )
            assert response.status_code == 201, (obj["metadata"]["name"], response.text)


def test_the_command_prints_yaml_or_the_errors(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "aiinfn_hub.cli", "render-kueue"]
    done = subprocess.run(
        [*command, str(ROOT / "examples" / "platform.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(yaml.safe_load_all(done.stdout)) == kueue_objects(CONFIG)
    bad = tmp_path / "platform.yaml"
    data = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
    data["jobs"] = {"poolCpu": "many"}
    bad.write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [*command, str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1 and "nominalQuota 'many'" in done.stderr


def _with_jobs(**jobs: Any) -> Any:
    """The example platform with some ``jobs`` keys set (as a document would)."""
    data = yaml.safe_load((ROOT / "examples" / "platform.yaml").read_text())
    data["jobs"] = {**data["jobs"], **jobs}
    return validate_platform_config(data)


def test_the_pool_queue_is_named_by_the_configuration() -> None:
    """A second deployment on the cluster (an event) names its pool and cohort apart, so
    applying its objects does not replace the site's quota."""
    assert CONFIG.jobs.pool_queue == "pool"  # the default: the shipped manifests keep it
    event = _with_jobs(poolQueue="hackathon-pool", cohort="hackathon", poolAccelerators={"t4": 1})
    objects = kueue_objects(event)
    assert check_kueue(objects) == []
    queues = by_kind(objects, "ClusterQueue")
    assert "pool" not in queues
    assert set(queues) == {"hackathon-pool"} | {f"project-{p}" for p in event.projects}
    assert {q["spec"]["cohortName"] for q in queues.values()} == {"hackathon"}
    (t4,) = [
        f
        for g in queues["hackathon-pool"]["spec"]["resourceGroups"]
        for f in g["flavors"]
        if f["name"] == "gpu-t4"
    ]
    assert t4["resources"] == [{"name": "nvidia.com/gpu", "nominalQuota": "1"}]
    # the project queues lend nothing of their own: only the named pool does
    project = queues["project-cms"]["spec"]["resourceGroups"]
    assert {r["nominalQuota"] for g in project for f in g["flavors"] for r in f["resources"]} == {
        "0"
    }


def test_a_pool_queue_named_like_a_project_queue_is_refused() -> None:
    objects = kueue_objects(_with_jobs(poolQueue="project-cms"))
    assert "ClusterQueue/project-cms: defined twice" in check_kueue(objects)


def test_a_pool_queue_name_must_be_a_kubernetes_name() -> None:
    with pytest.raises(PlatformConfigError, match="poolQueue"):
        _with_jobs(poolQueue="Pool_Queue")
