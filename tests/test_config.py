"""PlatformConfig: strict camelCase YAML, errors that name the bad key as written, cross-checks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from aiinfn_hub.config import (
    Accelerator,
    PlatformConfig,
    PlatformConfigError,
    Resources,
    format_loc,
    load_platform_config,
    parse_memory,
    validate_platform_config,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE = EXAMPLES / "platform.yaml"
T4 = {
    "name": "t4",
    "description": "NVIDIA Tesla T4 16 GB",
    "kind": "gpu",
    "resource": "nvidia.com/gpu",
    "nodeSelector": {"nvidia.com/gpu.product": "Tesla-T4"},
    "memoryGiB": 16,
}
BASE = {"name": "base", "image": "harbor.example.org/ai/base:1.0", "description": "Base"}
MINIMAL: dict[str, Any] = {"images": [BASE]}


def _with(**sections: Any) -> dict[str, Any]:
    return {**MINIMAL, **sections}


def _errors(data: object) -> list[str]:
    """The error lines for ``data`` written as YAML and loaded like a file's text."""
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config(yaml.safe_dump(data, sort_keys=False))
    return exc.value.lines


def _accelerator_errors(**change: Any) -> list[str]:
    return _errors(_with(accelerators=[{**T4, **change}]))


def _load(data: dict[str, Any]) -> PlatformConfig:
    return load_platform_config(yaml.safe_dump(data, sort_keys=False))


# -- the example -----------------------------------------------------------------------------
def test_the_example_describes_the_papers_servers() -> None:
    config = load_platform_config(EXAMPLE)
    by_kind = {
        kind: sorted(a.name for a in config.accelerators if a.kind == kind)
        for kind in ("gpu", "mig", "fpga")
    }
    assert by_kind == {
        "gpu": ["a100", "a30", "rtx5000", "t4"],
        "mig": ["a100-1g-10gb", "a100-3g-40gb"],
        "fpga": ["u250", "u50", "v70"],
    }
    a100 = config.accelerator("a100")
    assert a100 is not None and (a100.memory_gib, a100.max_per_server) == (80.0, 2)
    assert config.accelerator("h100") is None
    assert config.default_image().name == "base"
    qml = config.image("qml")
    assert qml is not None and qml.groups == ["qml"] and qml.gpu
    assert config.projects["cms"].limits.max_gpus == 1
    assert config.projects["cms"].limits.accelerators == ["t4", "rtx5000", "a30", "a100-1g-10gb"]
    assert config.projects["fpga-lab"].storage.shared_folder is False
    assert config.projects["ml-infn"].storage.quota == "2Ti"
    assert config.resources.guarantee_fraction == 0.5


def test_the_example_summary() -> None:
    assert load_platform_config(EXAMPLE).summary().splitlines() == [
        "accelerators: 9 (4 gpu, 2 mig, 3 fpga)",
        "images: 3 (base (default), cuda-ml (CUDA), qml (CUDA; projects: qml))",
        "cpu choices: 1, 2, 4, 8, 16 (default 2)",
        "memory choices: 4Gi, 8Gi, 16Gi, 32Gi, 64Gi (default 8Gi)",
        "projects: 5 (cms, fpga-lab, lhcb-flashsim, ml-infn, qml)",
        "storage: homes and project folders on nfs.aiinfn-storage.svc.cluster.local:/exports, "
        "environments, shared, scratch (nvme-local, 10Gi, 50Gi, 200Gi), cvmfs (3 repositories), "
        "buckets (sidecar)",
        "jobs: namespace bunshin, queue {project}, offloading past "
        "virtual-node.interlink/no-schedule with JuiceFS for home, project, environments, shared "
        "and the sites' CVMFS",
    ]


def test_a_minimal_configuration_gets_the_documented_defaults() -> None:
    config = _load(MINIMAL)
    assert config.accelerators == [] and config.projects == {}
    assert config.resources.cpu_choices == [1, 2, 4, 8]
    assert config.resources.memory_choices == ["4Gi", "8Gi", "16Gi", "32Gi"]
    assert config.resources.guarantee_fraction == 1.0
    assert config.summary().splitlines()[0] == "accelerators: 0"
    assert config.summary().splitlines()[-3:] == [
        "projects: 0",
        "storage: none",
        "jobs: namespace bunshin, queue {project}, offloading past "
        "virtual-node.interlink/no-schedule without storage",
    ]
    model = _load(_with(accelerators=[T4])).accelerators[0]
    assert (model.preference_weight, model.max_per_server, model.tolerations) == (0, 1, [])


def test_example_node_selectors_match_the_example_cluster() -> None:
    """Every catalogue model is carried by a node of examples/cluster.yaml, and only by it."""
    config = load_platform_config(EXAMPLE)
    cluster = yaml.safe_load((EXAMPLES / "cluster.yaml").read_text())
    for model in config.accelerators:
        carriers = [
            node["name"]
            for node in cluster["nodes"]
            if model.resource in node["capacity"]
            and all(node.get("labels", {}).get(k) == v for k, v in model.node_selector.items())
        ]
        assert carriers, f"no example node carries {model.name}"


# -- accelerators ----------------------------------------------------------------------------
RESOURCE_EXPECTED = (
    'accelerators[0].resource: expected an extended resource name like "nvidia.com/gpu": a '
    "domain, '/' and a name, not cpu, memory or a kubernetes.io resource (got {})"
)


@pytest.mark.parametrize(
    "resource",
    [
        "nvidia.com/gpu",
        "nvidia.com/mig-1g.10gb",
        "nvidia.com/mig-3g.40gb",
        "xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_4_1-0",
        "amd.com/xilinx_u50_gen3x16_xdma_base_5-0",
        "gpu.intel.com/i915",
        "example.org/A_b.c",
    ],
)
def test_extended_resource_names_kubernetes_accepts(resource: str) -> None:
    assert _load(_with(accelerators=[{**T4, "resource": resource}])).accelerators[0].resource == (
        resource
    )


@pytest.mark.parametrize(
    "resource",
    [
        "gpu",
        "cpu",
        "memory",
        "kubernetes.io/gpu",
        "node.kubernetes.io/gpu",
        "requests.nvidia.com/gpu",
        "nvidia.com/",
        "/gpu",
        "NVIDIA.com/gpu",
        "nvidia.com/gpu/0",
        "nvidia.com/-gpu",
        "nvidia.com/" + "g" * 64,
        "nvidia_com/gpu",
    ],
)
def test_extended_resource_names_kubernetes_rejects(resource: str) -> None:
    assert _accelerator_errors(resource=resource) == [RESOURCE_EXPECTED.format(f'"{resource}"')]


def test_the_resource_error_reads_as_documented() -> None:
    lines = _errors(_with(accelerators=[T4, {**T4, "name": "a30"}, {**T4, "resource": "gpu"}]))
    assert lines == [RESOURCE_EXPECTED.replace("[0]", "[2]").format('"gpu"')]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"name": "T4"},
            "accelerators[0].name: expected a lowercase name of letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters, like "
            '"a100-1g-10gb" (got "T4")',
        ),
        ({"name": "-t4"}, "accelerators[0].name: expected a lowercase name"),
        ({"name": "t4_pcie"}, "accelerators[0].name: expected a lowercase name"),
        ({"name": "a" * 64}, "accelerators[0].name: expected a lowercase name"),
        ({"name": 4}, "accelerators[0].name: expected a string (got 4); quote it in YAML"),
        ({"description": ""}, 'accelerators[0].description: expected a non-empty string (got "")'),
        (
            {"kind": "tpu"},
            'accelerators[0].kind: expected "gpu", "mig" or "fpga" (got "tpu")',
        ),
        ({"memoryGiB": 0}, "accelerators[0].memoryGiB: expected a number greater than 0 (got 0)"),
        ({"memoryGiB": -8}, "accelerators[0].memoryGiB: expected a number greater than 0 (got -8)"),
        ({"memoryGiB": "80"}, 'accelerators[0].memoryGiB: expected a number (got "80")'),
        ({"memoryGiB": True}, "accelerators[0].memoryGiB: expected a number (got true)"),
        (
            {"preferenceWeight": 1.5},
            "accelerators[0].preferenceWeight: expected a whole number (got 1.5)",
        ),
        ({"maxPerServer": 0}, "accelerators[0].maxPerServer: expected a number at least 1 (got 0)"),
        (
            {"nodeSelector": ["nvidia.com/gpu.product"]},
            "accelerators[0].nodeSelector: expected a mapping of keys to values (got "
            '["nvidia.com/gpu.product"])',
        ),
        (
            {"nodeSelector": {"bad key!": "x"}},
            'accelerators[0].nodeSelector["bad key!"]: invalid key: expected a Kubernetes label '
            "key like \"nvidia.com/gpu.product\": an optional DNS subdomain and '/', then at most "
            "63 letters, digits, '-', '_' or '.' (got \"bad key!\")",
        ),
        (
            {"nodeSelector": {"Nvidia.com/gpu": "x"}},
            'accelerators[0].nodeSelector["Nvidia.com/gpu"]: invalid key: expected a Kubernetes',
        ),
        (
            {"nodeSelector": {"nvidia.com/gpu.product": "Tesla T4"}},
            'accelerators[0].nodeSelector["nvidia.com/gpu.product"]: expected a Kubernetes label '
            "value like \"NVIDIA-A100-SXM4-80GB\": at most 63 letters, digits, '-', '_' or "
            "'.', starting and ending with a letter or digit (got \"Tesla T4\")",
        ),
        (
            {"nodeSelector": {"gpu": "x" * 64}},
            "accelerators[0].nodeSelector.gpu: expected a Kubernetes label value",
        ),
        (
            {"nodeSelector": {"nvidia.com/gpu.present": True}},
            'accelerators[0].nodeSelector["nvidia.com/gpu.present"]: expected a string '
            '(got true); quote it in YAML, e.g. "true" or "1.0"',
        ),
    ],
)
def test_accelerator_fields(change: dict[str, Any], expected: str) -> None:
    lines = _accelerator_errors(**change)
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_label_syntax_that_kubernetes_accepts() -> None:
    long_prefix = ".".join(["p" * 62] * 4)  # 251 characters: a DNS subdomain may have 253
    selector = {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb",
        "gpu": "",
        "a.b-c.example/x_Y.z": "v_1.2-3",
        f"{long_prefix}/{'n' * 63}": "v" * 63,
    }
    model = _load(_with(accelerators=[{**T4, "nodeSelector": selector}])).accelerators[0]
    assert model.node_selector == selector


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        (
            {"key": "nvidia.com/gpu", "operator": "Exists", "value": "x"},
            [
                'accelerators[0].tolerations[0].value: must be empty when operator is "Exists" '
                '(got "x")'
            ],
        ),
        (
            {"operator": "Equal", "value": "x"},
            [
                'accelerators[0].tolerations[0].operator: expected "Exists" when key is empty (an '
                "empty key tolerates every taint)"
            ],
        ),
        (
            {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 30},
            [
                "accelerators[0].tolerations[0].tolerationSeconds: only applies to effect "
                '"NoExecute" (effect is "NoSchedule")'
            ],
        ),
        (
            {"key": "k", "operator": "In"},
            ['accelerators[0].tolerations[0].operator: expected "Exists" or "Equal" (got "In")'],
        ),
        (
            {"key": "k", "effect": "NoRun"},
            [
                'accelerators[0].tolerations[0].effect: expected "NoSchedule", "PreferNoSchedule", '
                '"NoExecute" or "" (got "NoRun")'
            ],
        ),
        (
            {"key": "k", "effect": "NoExecute", "tolerationSeconds": -1},
            [
                "accelerators[0].tolerations[0].tolerationSeconds: expected a number at least 0 "
                "(got -1)"
            ],
        ),
        (
            {"key": "bad key"},
            [
                "accelerators[0].tolerations[0].key: expected a Kubernetes label key like "
                "\"nvidia.com/gpu.product\": an optional DNS subdomain and '/', then at most 63 "
                "letters, digits, '-', '_' or '.' (got \"bad key\")"
            ],
        ),
    ],
)
def test_tolerations_follow_kubernetes_rules(
    toleration: dict[str, Any], expected: list[str]
) -> None:
    assert _accelerator_errors(tolerations=[toleration]) == expected


def test_valid_tolerations_keep_pod_keys() -> None:
    tolerations = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "reserved", "value": "cms", "effect": "NoExecute", "tolerationSeconds": 600},
        {"operator": "Exists"},
    ]
    model = _load(_with(accelerators=[{**T4, "tolerations": tolerations}])).accelerators[0]
    assert [t.model_dump(by_alias=True, exclude_defaults=True) for t in model.tolerations] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "reserved", "value": "cms", "effect": "NoExecute", "tolerationSeconds": 600},
        {"operator": "Exists"},
    ]
    assert model.tolerations[1].operator == "Equal"


def test_models_sharing_a_resource_need_selectors_that_tell_them_apart() -> None:
    a30 = {**T4, "name": "a30", "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A30"}}
    anywhere = {**T4, "name": "any-gpu", "nodeSelector": {}}
    same = {**T4, "name": "t4-again"}
    lines = _errors(_with(accelerators=[T4, a30, anywhere, same]))
    assert lines == [
        'accelerators[2].nodeSelector: matches the nodes of accelerators[0] ("t4") too, which '
        'uses the same resource "nvidia.com/gpu": models sharing a resource need nodeSelectors '
        "that tell them apart (got {})",
        'accelerators[3].nodeSelector: matches the nodes of accelerators[0] ("t4") too, which '
        'uses the same resource "nvidia.com/gpu": models sharing a resource need nodeSelectors '
        'that tell them apart (got {"nvidia.com/gpu.product": "Tesla-T4"})',
    ]
    mig = {**T4, "name": "mig", "kind": "mig", "resource": "nvidia.com/mig-1g.10gb"}
    assert len(_load(_with(accelerators=[T4, a30, {**mig, "nodeSelector": {}}])).accelerators) == 3


# -- images ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "image",
    [
        "ubuntu",
        "quay.io/jupyter/scipy-notebook:2025-01-06",
        "harbor.cloud.infn.it/ai-infn/cuda-ml:2026.11",
        "localhost:5000/a/b_c__d-e.f:v1.0_rc",
        "registry.example.org/ml/torch@sha256:" + "a" * 64,
        "registry.example.org/ml/torch:2.5@sha256:" + "0" * 64,
    ],
)
def test_image_references_accepted(image: str) -> None:
    assert _load(_with(images=[{**BASE, "image": image}])).images[0].image == image


@pytest.mark.parametrize(
    "image",
    ["", " ubuntu", "ubuntu ", "my image:1", "harbor.example/AI/Base:1", "x:", "x@sha256:zz", "a/"],
)
def test_image_references_rejected(image: str) -> None:
    assert _errors(_with(images=[{**BASE, "image": image}])) == [
        "images[0].image: expected an OCI image reference like "
        '"harbor.cloud.infn.it/ai-infn/cuda-ml:2026.11" (registry, lowercase path, optional '
        f':tag and @digest; got "{image}")'
    ]


def test_image_defaults_and_groups() -> None:
    cuda = {**BASE, "name": "cuda", "gpu": True}
    assert _load(_with(images=[BASE, cuda])).default_image().name == "base"
    assert _load(_with(images=[BASE, {**cuda, "default": True}])).default_image().name == "cuda"
    lines = _errors(
        _with(
            images=[
                {**BASE, "default": True},
                {**cuda, "default": True, "groups": ["cms", "atlas"]},
                {**BASE, "default": True},
            ],
            projects={"cms": {"displayName": "CMS"}},
        )
    )
    assert lines == [
        'images[2].name: duplicate name "base" (as images[0])',
        'images[1].default: only one image may be the default (images[0] "base" already is)',
        'images[2].default: only one image may be the default (images[0] "base" already is)',
        'images[1].groups[1]: unknown project "atlas" (projects: cms)',
    ]
    assert _errors(_with(images=[{**BASE, "groups": ["x"]}])) == [
        'images[0].groups[0]: unknown project "x" (projects: none defined)'
    ]


def test_at_least_one_image() -> None:
    assert _errors({"images": []}) == ["images: expected at least 1 item (got [])"]
    assert _errors({"accelerators": []}) == [
        "images: missing required key (Images users may pick; at least one, e.g. `[{name: "
        "base, image: 'quay.io/jupyter/scipy-notebook:2025-01-06', ...}]`.)"
    ]


# -- resources -------------------------------------------------------------------------------
def test_resource_choices_and_defaults() -> None:
    resources = _load(
        _with(
            resources={
                "cpuChoices": [0.5, 1, 2],
                "memoryChoices": ["512Mi", "4G", 8589934592],
                "defaultCpu": 0.5,
                "defaultMemory": "4000M",
                "guaranteeFraction": 0.25,
            }
        )
    ).resources
    assert resources.cpu_choices == [0.5, 1.0, 2.0]
    assert resources.memory_choices == ["512Mi", "4G", "8589934592"]
    assert [parse_memory(m) for m in resources.memory_choices] == [2**29, 4 * 10**9, 8 * 2**30]
    assert resources.default_memory == "4000M"  # the same size as the 4G choice


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            {"cpuChoices": [1, 2], "defaultCpu": 3},
            ["resources.defaultCpu: expected one of cpuChoices (1, 2) (got 3)"],
        ),
        (
            {"memoryChoices": ["4Gi"], "defaultMemory": "4G"},
            ['resources.defaultMemory: expected one of memoryChoices (4Gi) (got "4G")'],
        ),
        (
            {"cpuChoices": [1, 2, 2], "memoryChoices": ["4Gi", "4096Mi"]},
            [
                "resources.cpuChoices[2]: duplicate choice 2 (as cpuChoices[1])",
                'resources.memoryChoices[1]: duplicate choice "4096Mi" (the same size as '
                'memoryChoices[0], "4Gi")',
            ],
        ),
        ({"cpuChoices": []}, ["resources.cpuChoices: expected at least 1 item (got [])"]),
        (
            {"cpuChoices": [1, "2", 0, 0.0001]},
            [
                'resources.cpuChoices[1]: expected a number (got "2")',
                "resources.cpuChoices[2]: expected a number greater than 0 (got 0)",
                "resources.cpuChoices[3]: expected CPU cores in steps of 0.001 (got 0.0001)",
            ],
        ),
        (
            {"memoryChoices": ["4GB", "-1Gi", "1.5", True]},
            [
                'resources.memoryChoices[0]: expected a size like "8Gi", "512Mi", "16G" or a '
                'number of bytes (got "4GB")',
                'resources.memoryChoices[1]: expected a positive size (got "-1Gi")',
                'resources.memoryChoices[2]: expected a whole number of bytes (got "1.5")',
                'resources.memoryChoices[3]: expected a size like "8Gi", "512Mi", "16G" or a '
                "number of bytes (got true)",
            ],
        ),
        (
            {"guaranteeFraction": 0},
            ["resources.guaranteeFraction: expected a number greater than 0 (got 0)"],
        ),
        (
            {"guaranteeFraction": 1.5},
            ["resources.guaranteeFraction: expected a number at most 1 (got 1.5)"],
        ),
    ],
)
def test_resource_errors(resources: dict[str, Any], expected: list[str]) -> None:
    assert _errors(_with(resources=resources)) == expected


# -- quantities ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1Ki", 2**10),
        ("512Mi", 2**29),
        ("1Gi", 2**30),
        ("1.5Gi", 3 * 2**29),
        ("2Ti", 2 * 2**40),
        ("2k", 2000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("1T", 10**12),
        ("0.5Ki", 512),
        ("1e9", 10**9),
        ("1073741824", 2**30),
        (" 8Gi ", 8 * 2**30),
        (1024, 1024),
    ],
)
def test_memory_quantities(text: str | int, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    ("junk", "message"),
    [
        ("", "expected a size like"),
        ("Gi", "expected a size like"),
        ("1 Gi", "expected a size like"),
        ("1gb", "expected a size like"),
        ("1GiB", "expected a size like"),
        ("1KI", "expected a size like"),
        ("1e3Gi", "expected a size like"),
        ("1..5Gi", "expected a size like"),
        ("eight", "expected a size like"),
        (1.5, "expected a size like"),
        (True, "expected a size like"),
        (None, "expected a size like"),
        ("0", "expected a positive size"),
        ("-1Gi", "expected a positive size"),
        (-5, "expected a positive size"),
        ("500m", "expected a whole number of bytes"),
        ("0.3", "expected a whole number of bytes"),
    ],
)
def test_memory_junk_is_rejected(junk: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_memory(junk)


@given(
    st.integers(min_value=1, max_value=10**6),
    st.sampled_from(
        [
            *[("", 1), ("k", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12)],
            *[("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40)],
        ]
    ),
)
def test_memory_suffixes_scale_exactly(number: int, suffix: tuple[str, int]) -> None:
    assert parse_memory(f"{number}{suffix[0]}") == number * suffix[1]


# -- projects --------------------------------------------------------------------------------
def test_project_limits_refer_to_real_choices() -> None:
    lines = _errors(
        _with(
            accelerators=[T4],
            resources={"cpuChoices": [1, 8], "memoryChoices": ["8Gi", "64Gi"]},
            projects={
                "cms": {
                    "displayName": "CMS",
                    "limits": {"maxCpu": 12, "maxMemory": "64G", "accelerators": ["t4", "h100"]},
                },
                "ok": {"displayName": "OK", "limits": {"maxCpu": 8, "maxMemory": "65536Mi"}},
            },
        )
    )
    assert lines == [
        'projects.cms.limits.accelerators[1]: unknown accelerator "h100" (catalogue: t4)',
        "projects.cms.limits.maxCpu: expected one of resources.cpuChoices (1, 8) (got 12)",
        "projects.cms.limits.maxMemory: expected one of resources.memoryChoices (8Gi, 64Gi) "
        '(got "64G")',
    ]


@pytest.mark.parametrize(
    ("projects", "expected"),
    [
        (
            {"CMS": {"displayName": "CMS"}},
            [
                "projects.CMS: invalid key: expected a lowercase name of letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters, like "
                '"a100-1g-10gb" (got "CMS")'
            ],
        ),
        (
            {"cms": {"description": "no name"}},
            [
                "projects.cms.displayName: missing required key (Name shown on forms and the "
                "admin panel, e.g. `CMS`.)"
            ],
        ),
        (
            {"cms": {"displayName": "CMS", "limits": {"maxGpus": -1}}},
            ["projects.cms.limits.maxGpus: expected a number at least 0 (got -1)"],
        ),
        (
            {"cms": {"displayName": "CMS", "limits": {"accelerators": "t4"}}},
            ['projects.cms.limits.accelerators: expected a list (got "t4")'],
        ),
        (
            {"cms": {"displayName": "CMS", "storage": {"quota": "lots"}}},
            [
                'projects.cms.storage.quota: expected a size like "8Gi", "512Mi", "16G" or a '
                'number of bytes (got "lots")'
            ],
        ),
        (
            {"cms": {"displayName": "CMS", "storage": {"sharedFolder": "yes"}}},
            ['projects.cms.storage.sharedFolder: expected true or false (got "yes")'],
        ),
        (
            {"cms": "CMS"},
            ['projects.cms: expected a mapping of keys to values (got "CMS")'],
        ),
    ],
)
def test_project_errors(projects: dict[str, Any], expected: list[str]) -> None:
    assert _errors(_with(projects=projects)) == expected


def test_an_empty_accelerator_list_means_none_and_unset_means_all() -> None:
    projects = {
        "cpu-only": {"displayName": "CPU only", "limits": {"accelerators": []}},
        "all": {"displayName": "All"},
    }
    config = _load(_with(accelerators=[T4], projects=projects))
    assert config.projects["cpu-only"].limits.accelerators == []
    assert config.projects["all"].limits.accelerators is None
    assert config.projects["all"].storage.shared_folder is True


# -- unknown keys, spelling ------------------------------------------------------------------
def test_unknown_keys_at_every_depth_name_their_path() -> None:
    data = _with(
        accelerators=[{**T4, "gpus": 2, "tolerations": [{"key": "k", "seconds": 1}]}],
        resources={"cpus": [1]},
        projects={"cms": {"displayName": "CMS", "limits": {"maxGPUs": 1}, "storage": {"size": 1}}},
        storage={"scratch": {"sizes": ["1Gi"]}},
    )
    # pydantic reports a model's known keys (and what is below them) before its unknown keys
    assert _errors(data) == [
        "accelerators[0].tolerations[0].seconds: unknown key (allowed here: key, operator, "
        "value, effect, tolerationSeconds)",
        "accelerators[0].gpus: unknown key (allowed here: name, description, kind, resource, "
        "nodeSelector, memoryGiB, preferenceWeight, tolerations, maxPerServer)",
        "resources.cpus: unknown key (allowed here: cpuChoices, memoryChoices, defaultCpu, "
        "defaultMemory, guaranteeFraction)",
        'projects.cms.limits.maxGPUs: unknown key; did you mean "maxGpus"? (allowed here: '
        "maxGpus, maxCpu, maxMemory, accelerators)",
        "projects.cms.storage.size: unknown key (allowed here: sharedFolder, quota, gid, bucket)",
        "storage.scratch.sizes: unknown key (allowed here: mountPath, storageClass, sizeChoices, "
        "defaultSize)",
    ]


@pytest.mark.parametrize(
    ("key", "value", "suggestion"),
    [
        ("node_selector", {}, "nodeSelector"),
        ("nodeselector", {}, "nodeSelector"),
        ("memoryGib", 16, "memoryGiB"),
        ("memory_gib", 16, "memoryGiB"),
        ("preferenceWeigth", 1, "preferenceWeight"),
        ("max_per_server", 1, "maxPerServer"),
    ],
)
def test_snake_case_and_near_misses_in_yaml_get_a_suggestion(
    key: str, value: object, suggestion: str
) -> None:
    """YAML is camelCase only (these are Helm values); the error names the right spelling."""
    assert _accelerator_errors(**{key: value}) == [
        f'accelerators[0].{key}: unknown key; did you mean "{suggestion}"? (allowed here: name, '
        "description, kind, resource, nodeSelector, memoryGiB, preferenceWeight, tolerations, "
        "maxPerServer)"
    ]


def test_python_code_uses_snake_case_and_dumps_camel_case() -> None:
    model = Accelerator(
        name="t4",
        description="T4",
        kind="gpu",
        resource="nvidia.com/gpu",
        node_selector={"nvidia.com/gpu.product": "Tesla-T4"},
        memory_gib=16,
        preference_weight=3,
    )
    config = PlatformConfig.model_validate(
        {"accelerators": [model], "images": [BASE], "resources": Resources(default_cpu=2)}
    )
    dumped = config.model_dump(by_alias=True, exclude_defaults=True)
    assert dumped["accelerators"][0]["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert dumped["accelerators"][0]["memoryGiB"] == 16
    assert dumped["resources"] == {"defaultCpu": 2}
    # what Python dumps with aliases loads back from YAML unchanged
    assert _load(config.model_dump(by_alias=True)) == config


def test_the_example_round_trips_through_its_camel_case_dump() -> None:
    config = load_platform_config(EXAMPLE)
    assert _load(config.model_dump(by_alias=True, exclude_none=True)) == config


def test_the_configuration_is_immutable() -> None:
    config = load_platform_config(EXAMPLE)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.accelerators[0].max_per_server = 8  # type: ignore[misc]


# -- YAML and sources ------------------------------------------------------------------------
def test_yaml_syntax_errors_give_line_and_column() -> None:
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config("images:\n  - name: base\n    image: [x\n")
    assert exc.value.lines == [
        "line 4, column 1: not valid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)"
    ]
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config("images:\n\t- name: base\n")
    assert exc.value.lines[0].startswith("line 2, column 1: not valid YAML: found character")


def test_duplicate_keys_are_errors_with_both_lines() -> None:
    text = "images:\n  - name: base\n    image: a:1\n    description: d\n    name: other\n"
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config(text)
    assert exc.value.lines == ['line 5, column 5: duplicate key "name" (first written at line 2)']


def test_yaml_merge_keys_may_be_overridden() -> None:
    text = "x-gpu: &gpu {kind: gpu, resource: nvidia.com/gpu, memoryGiB: 16, description: GPU}\n"
    assert _errors_text(text + "images: []\n") == [
        "images: expected at least 1 item (got [])",
        "x-gpu: unknown key (allowed here: accelerators, images, resources, projects, storage, "
        "jobs)",
    ]
    config = load_platform_config(
        "images: [{name: base, image: 'a:1', description: Base}]\n"
        "accelerators:\n"
        "  - &t4 {name: t4, kind: gpu, resource: nvidia.com/gpu, memoryGiB: 16, description: T4,"
        " nodeSelector: {nvidia.com/gpu.product: Tesla-T4}}\n"
        "  - <<: *t4\n    name: a30\n    nodeSelector: {nvidia.com/gpu.product: NVIDIA-A30}\n"
    )
    assert [a.name for a in config.accelerators] == ["t4", "a30"]


def _errors_text(text: str) -> list[str]:
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config(text)
    return exc.value.lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "",
            "the document is empty: expected a mapping with the keys accelerators, images, "
            "resources and projects",
        ),
        (
            "# only a comment\n",
            "the document is empty: expected a mapping with the keys accelerators, images, "
            "resources and projects",
        ),
        (
            "- images\n",
            "expected a mapping with the keys accelerators, images, resources and projects at "
            'the top level (got ["images"])',
        ),
        (
            "images: !!python/object/apply:os.system [ls]\n",
            "line 1, column 9: not valid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
    ],
)
def test_documents_that_are_not_a_configuration(text: str, expected: str) -> None:
    assert _errors_text(text) == [expected]


def test_sources_path_str_path_and_text(tmp_path: Path) -> None:
    file = tmp_path / "platform.yaml"
    file.write_text(yaml.safe_dump(MINIMAL))
    assert load_platform_config(file) == load_platform_config(str(file))
    assert load_platform_config(file) == load_platform_config(file.read_text())
    assert load_platform_config("{images: [{name: b, image: 'b:1', description: B}]}").images


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda d: d / "missing.yaml",
            "no such file (expected the path of a platform configuration YAML file)",
        ),
        (lambda d: d, "is a directory (expected a platform configuration YAML file)"),
    ],
)
def test_unreadable_sources(tmp_path: Path, make: Any, expected: str) -> None:
    path = make(tmp_path)
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config(str(path))
    assert exc.value.lines == [expected]
    assert exc.value.source == str(path)
    assert str(exc.value) == f"{path}: invalid platform configuration:\n  {expected}"


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes("images: [{description: caf\u00e9}]\n".encode("latin-1"))
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config(file)
    assert exc.value.lines == ["not UTF-8 text (byte 26 cannot be decoded)"]


def test_error_messages_name_the_file(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("images: [{name: base, image: 'a:1', description: d, gpu: yes please}]\n")
    with pytest.raises(PlatformConfigError) as exc:
        load_platform_config(file)
    assert str(exc.value) == (
        f"{file}: invalid platform configuration:\n"
        '  images[0].gpu: expected true or false (got "yes please")'
    )


def test_already_parsed_values_validate_the_same_way() -> None:
    assert validate_platform_config(copy.deepcopy(MINIMAL)).images[0].name == "base"
    with pytest.raises(PlatformConfigError) as exc:
        validate_platform_config({"images": [{**BASE, "gpu": 1}]}, "helm values custom.aiinfn")
    assert str(exc.value) == (
        "helm values custom.aiinfn: invalid platform configuration:\n"
        "  images[0].gpu: expected true or false (got 1)"
    )
    with pytest.raises(PlatformConfigError, match="snake"):
        validate_platform_config({**MINIMAL, "snake_case": 1})


def test_several_problems_are_reported_together() -> None:
    lines = _errors(
        _with(
            accelerators=[{**T4, "resource": "gpu"}, {**T4, "kind": "asic", "memoryGiB": 0}],
            images=[{**BASE, "image": "a b"}],
        )
    )
    assert [line.split(":")[0] for line in lines] == [
        "accelerators[0].resource",
        "accelerators[1].kind",
        "accelerators[1].memoryGiB",
        "images[0].image",
    ]


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), ""),
        (("images",), "images"),
        (("accelerators", 2, "resource"), "accelerators[2].resource"),
        (("projects", "ml-infn", "limits", "maxGpus"), "projects.ml-infn.limits.maxGpus"),
        (
            ("accelerators", 0, "nodeSelector", "nvidia.com/gpu"),
            'accelerators[0].nodeSelector["nvidia.com/gpu"]',
        ),
        (("bad key",), '["bad key"]'),
    ],
)
def test_paths_are_written_as_in_yaml(loc: tuple[int | str, ...], path: str) -> None:
    assert format_loc(loc) == path


# -- jobs: where they run and what one user may pile up ---------------------------------------
def test_jobs_default_to_a_namespace_of_their_own_and_bounded_requests() -> None:
    jobs = _load(MINIMAL).jobs
    assert jobs.namespace == "bunshin" and jobs.allow_hub_namespace is False
    assert jobs.max_finished_jobs_per_user == 20
    assert jobs.max_request_bytes == 1024 * 1024 and jobs.max_env_value_bytes == 4096
    assert (jobs.max_log_bytes_per_pod, jobs.max_log_bytes_per_response) == (2**20, 8 * 2**20)
    assert _load(_with(jobs={"allowHubNamespace": True})).jobs.allow_hub_namespace is True


def test_a_request_limit_smaller_than_a_sandbox_is_refused() -> None:
    lines = _errors(_with(jobs={"maxSandboxBytes": 600000, "maxRequestBytes": 1000000}))
    assert any(
        "maxRequestBytes (1000000) must be at least twice maxSandboxBytes" in line for line in lines
    ), lines
